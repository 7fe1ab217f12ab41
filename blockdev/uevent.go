package blockdev

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dockerinit/dockerinit/internal/safego"
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
	go watchUevents(ctx, f, changed)
	return changed, nil
}

// watchUevents signals block device events read from src on changed until a read fails, and then
// sends the error, unless ctx is done (then the failure is the socket closing). A panic is sent as
// an error too: in PID 1 it would otherwise panic the kernel.
func watchUevents(ctx context.Context, src io.Reader, changed chan<- error) {
	err := readUevents(src, changed)
	if ctx.Err() != nil {
		return
	}
	select {
	case changed <- err:
	case <-ctx.Done():
	}
}

// readUevents runs until a read from src fails, and returns why (never nil).
func readUevents(src io.Reader, changed chan<- error) (err error) {
	defer safego.Recover("reading block device uevents", &err)
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		switch {
		case errors.Is(err, unix.ENOBUFS): // events were lost: rescan to be safe
		case err != nil:
			return fmt.Errorf("read uevent socket: %w", err)
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
}
