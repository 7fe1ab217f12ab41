package blockdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// listenUevents subscribes to the kernel's uevents and sends nil on the
// returned channel whenever a block device is added or changes (coalesced:
// one pending signal is enough to trigger a rescan), or an error if the
// socket fails. The socket closes when ctx is done.
func listenUevents(ctx context.Context) (<-chan error, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("open uevent socket: %w", err)
	}
	// Module loading at boot sends bursts of events; a larger buffer makes
	// overruns (ENOBUFS, handled below) rarer. Best effort: the default works.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	// Group 1 is the kernel's own broadcast; udev's re-broadcast is group 2.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind uevent socket: %w", err)
	}
	// A non-blocking fd goes through Go's poller, so Close unblocks Read.
	f := os.NewFile(uintptr(fd), "uevent")
	context.AfterFunc(ctx, func() { f.Close() })
	changed := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			switch {
			case errors.Is(err, unix.ENOBUFS): // events were lost: rescan to be safe
			case err != nil:
				if ctx.Err() == nil {
					select {
					case changed <- fmt.Errorf("read uevent socket: %w", err):
					case <-ctx.Done():
					}
				}
				return
			default:
				if action, subsystem := parseUevent(buf[:n]); subsystem != "block" || (action != "add" && action != "change") {
					continue
				}
			}
			select {
			case changed <- nil:
			default: // a rescan is already pending
			}
		}
	}()
	return changed, nil
}

// parseUevent reads a kernel uevent, "ACTION@DEVPATH\0KEY=VALUE\0...",
// for its action and subsystem.
func parseUevent(msg []byte) (action, subsystem string) {
	header, rest, _ := bytes.Cut(msg, []byte{0})
	if a, _, ok := bytes.Cut(header, []byte("@")); ok {
		action = string(a)
	}
	for field := range bytes.SplitSeq(rest, []byte{0}) {
		k, v, _ := bytes.Cut(field, []byte("="))
		switch string(k) {
		case "ACTION":
			action = string(v)
		case "SUBSYSTEM":
			subsystem = string(v)
		}
	}
	return action, subsystem
}
