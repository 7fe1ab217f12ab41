package blockdev

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/internal/safego"
	"golang.org/x/sys/unix"
)

// scriptedSocket stands in for the uevent socket: each Read gives the next step's message, or
// its error, or panics with its value, as a bug in reading would.
type scriptedSocket []struct {
	msg   string
	err   error
	panic any
}

func (s *scriptedSocket) Read(b []byte) (int, error) {
	step := (*s)[0]
	*s = (*s)[1:]
	if step.panic != nil {
		panic(step.panic)
	}
	return copy(b, step.msg), step.err
}

func TestWatchUevents(t *testing.T) {
	const (
		blockAdd = "add@/devices/virtual/block/vdb\x00ACTION=add\x00SUBSYSTEM=block\x00"
		netAdd   = "add@/devices/virtual/net/eth0\x00ACTION=add\x00SUBSYSTEM=net\x00"
	)
	broken := errors.New("socket broke")
	tests := []struct {
		name    string
		socket  scriptedSocket
		signals int    // nils sent before the error
		wantErr string // the error sent last
	}{
		{name: "a block device is added", socket: scriptedSocket{{msg: blockAdd}, {err: broken}},
			signals: 1, wantErr: "read uevent socket: socket broke"},
		{name: "another subsystem's event is no signal", socket: scriptedSocket{{msg: netAdd}, {err: broken}},
			wantErr: "read uevent socket: socket broke"},
		{name: "lost events ask for a rescan", socket: scriptedSocket{{err: os.NewSyscallError("recvmsg", unix.ENOBUFS)}, {err: broken}},
			signals: 1, wantErr: "read uevent socket: socket broke"},
		{name: "a panic is an error", socket: scriptedSocket{{msg: blockAdd}, {panic: "boom"}},
			signals: 1, wantErr: "internal error while reading block device uevents (a bug in dockerinit: please report it with this message): panic: boom\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed := make(chan error) // unbuffered: every signal is seen
			go watchUevents(t.Context(), &tt.socket, changed)
			for i := range tt.signals {
				if err := <-changed; err != nil {
					t.Fatalf("signal %d = %v, want nil", i, err)
				}
			}
			select {
			case err := <-changed:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("last = %v, want an error containing %q", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("watchUevents sent nothing after the socket failed")
			}
		})
	}
}

// TestFindReportsReaderPanic checks that a panic in the uevent reader ends Find with an error,
// where in PID 1 it used to panic the kernel.
func TestFindReportsReaderPanic(t *testing.T) {
	ft := newFakeTree(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	changed := make(chan error, 1)
	go watchUevents(ctx, &scriptedSocket{{panic: "boom"}}, changed)
	_, err := find(ctx, Spec{"LABEL", "linux"}, ft.sysBlock, ft.devDir, changed)
	var pe *safego.PanicError
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "wait for LABEL=linux: internal error while reading block device uevents") {
		t.Errorf("find = %v, want the reader's panic as an error", err)
	}
}
