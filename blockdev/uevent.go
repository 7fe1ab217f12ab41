package blockdev

import (
	"context"
	"errors"
	"fmt"

	"github.com/dockerinit/dockerinit/internal/uevent"
	"golang.org/x/sys/unix"
)

// listenUevents subscribes to the kernel's uevents and sends nil on the
// returned channel whenever a block device is added or changes (coalesced:
// one pending signal is enough to trigger a rescan), or an error if the
// socket fails. The socket closes when ctx is done.
func listenUevents(ctx context.Context) (<-chan error, error) {
	f, err := uevent.Open()
	if err != nil {
		return nil, err
	}
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
				if e := uevent.Parse(buf[:n]); e.Subsystem != "block" || (e.Action != "add" && e.Action != "change") {
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
