package kmod

import (
	"context"
	"errors"
	"fmt"

	"github.com/dockerinit/dockerinit/internal/safego"
	"github.com/dockerinit/dockerinit/internal/uevent"
	"golang.org/x/sys/unix"
)

// Watch loads the bundled modules for every device the kernel adds, as its "add" uevent with
// MODALIAS= arrives, until ctx is done; then it returns nil. This is what udev does for devices
// that appear after the Coldplug scan: virtio devices once virtio_pci is loaded, SCSI disks behind
// ahci, USB devices once a host controller driver is. The socket is opened by NewLoader, so events
// sent between NewLoader and Watch are not lost. Call it once, in its own goroutine. A panic while
// watching is returned as an error, as a failed socket is: that goroutine's panic would end PID 1.
func (l *Loader) Watch(ctx context.Context) (err error) {
	defer safego.Recover("loading modules for new devices", &err)
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
			if e := uevent.Parse(buf[:n]); e.Action == "add" && e.Modalias != "" {
				l.plug([]string{e.Modalias})
			}
		}
	}
}
