package kmod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Watch loads the bundled modules for every device the kernel adds, as its "add" uevent with
// MODALIAS= arrives, until ctx is done; then it returns nil. This is what udev does for devices
// that appear after the Coldplug scan: virtio devices once virtio_pci is loaded, SCSI disks behind
// ahci, USB devices once a host controller driver is. The socket is opened by NewLoader, so events
// sent between NewLoader and Watch are not lost. Call it once, in its own goroutine.
func (l *Loader) Watch(ctx context.Context) error {
	l.mu.Lock()
	if l.watched {
		l.mu.Unlock()
		return errors.New("kmod: Watch called twice: the uevent socket is read by the first call")
	}
	l.watched = true
	src, err := l.events, l.eventsErr
	if src != nil {
		l.watchCtx = ctx
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if src == nil { // nothing bundled has a device alias: no event can start a load
		<-ctx.Done()
		return nil
	}
	defer func() {
		l.mu.Lock()
		l.watchCtx = nil
		l.idle.Broadcast()
		l.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer func() {
		if stop() {
			src.Close()
		}
	}()
	buf := make([]byte, 16<<10) // the kernel sends at most a few KiB per event
	for {
		n, err := src.Read(buf)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS): // events were lost: scan sysfs again for new devices
			l.mu.Lock()
			dir := l.sysDevices
			l.mu.Unlock()
			if dir != "" {
				l.Coldplug(dir)
			}
		case err != nil:
			return fmt.Errorf("read uevent socket: %w (devices that appear from now on get no modules)", err)
		default:
			if action, modalias := parseUevent(buf[:n]); action == "add" && modalias != "" {
				l.plug([]string{modalias})
			}
		}
	}
}

// openUevents subscribes to the kernel's own uevent broadcast (netlink group 1; udev's
// re-broadcast is group 2). The socket is non-blocking so that it goes through Go's poller and
// Close unblocks a Read.
func openUevents() (io.ReadCloser, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("open uevent socket: %w", err)
	}
	// Loading modules sends bursts of events; a larger buffer makes overruns (ENOBUFS, answered
	// with a rescan) rarer. Best effort: the default works too.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind uevent socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "uevent socket"), nil
}

// parseUevent reads a kernel uevent, "ACTION@DEVPATH\0KEY=VALUE\0...", for its action and the
// device's modalias.
func parseUevent(msg []byte) (action, modalias string) {
	header, rest, _ := bytes.Cut(msg, []byte{0})
	if a, _, ok := bytes.Cut(header, []byte("@")); ok {
		action = string(a)
	}
	for field := range bytes.SplitSeq(rest, []byte{0}) {
		k, v, _ := bytes.Cut(field, []byte("="))
		switch string(k) {
		case "ACTION":
			action = string(v)
		case "MODALIAS":
			modalias = string(v)
		}
	}
	return action, modalias
}
