package safego

import (
	"errors"
	"strings"
	"testing"
)

func TestRecover(t *testing.T) {
	earlier := errors.New("set before the panic")
	tests := []struct {
		name    string
		fn      func() error
		want    error  // nil: a *PanicError
		wantMsg string // substring of a *PanicError's message
	}{
		{name: "no panic keeps the result", fn: func() error { return earlier }, want: earlier},
		{name: "no panic, no error", fn: func() error { return nil }},
		{name: "panic with a value", fn: func() error { panic("boom") },
			wantMsg: "internal error while testing (a bug in dockerinit: please report it with this message): panic: boom\n"},
		{name: "runtime error", fn: func() error {
			var s []int
			_ = s[3]
			return nil
		}, wantMsg: "panic: runtime error: index out of range [3] with length 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := func() (err error) {
				defer Recover("testing", &err)
				return tt.fn()
			}()
			if tt.wantMsg == "" {
				if err != tt.want {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
				return
			}
			var pe *PanicError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *PanicError", err)
			}
			if pe.Where != "testing" || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want one containing %q", err, tt.wantMsg)
			}
			if !strings.Contains(pe.Stack, "safego.TestRecover") {
				t.Errorf("stack does not show where the panic came from:\n%s", pe.Stack)
			}
		})
	}
}
