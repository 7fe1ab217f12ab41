package rescue

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// shortDelays makes the password waits short for one test.
func shortDelays(t *testing.T, wrong, lockout, maxLockout time.Duration) {
	t.Helper()
	w, l, m := wrongPasswordDelay, lockoutDelay, maxLockoutDelay
	wrongPasswordDelay, lockoutDelay, maxLockoutDelay = wrong, lockout, maxLockout
	t.Cleanup(func() { wrongPasswordDelay, lockoutDelay, maxLockoutDelay = w, l, m })
}

// console is a console whose input is typed, all of it, before it is read.
func console(t *testing.T, typed string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	go func() {
		w.WriteString(typed)
		w.Close()
	}()
	return r
}

func TestLockoutGrows(t *testing.T) {
	tests := []struct {
		rounds int
		want   time.Duration
	}{
		{0, 0},
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{3, 20 * time.Second},
		{6, 160 * time.Second},
		{7, 5 * time.Minute}, // 320 s, over the cap
		{1000, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := (&Lock{rounds: tt.rounds}).wait(); got != tt.want {
			t.Errorf("after %d failed rounds the wait is %v, want %v", tt.rounds, got, tt.want)
		}
	}
}

// TestGuessesAcrossOpenings checks that the same Lock, as PID 1 keeps it for the whole boot, makes
// each round of three wrong guesses wait longer than the one before, says so, and forgets the
// waits once the right password is typed.
func TestGuessesAcrossOpenings(t *testing.T) {
	shortDelays(t, 0, 40*time.Millisecond, 100*time.Millisecond)
	l := NewLock(testHash, nil)
	tests := []struct {
		typed    string
		wantErr  error
		wantWait string // "" : no wait announced
		minWait  time.Duration
	}{
		{"a\nb\nc\n", ErrLocked, "", 0},
		{"a\nb\nc\n", ErrLocked, "3 wrong passwords this boot: waiting 40ms before asking again.\n", 40 * time.Millisecond},
		{"a\nb\nc\n", ErrLocked, "6 wrong passwords this boot: waiting 80ms before asking again.\n", 80 * time.Millisecond},
		{"a\nb\nc\n", ErrLocked, "9 wrong passwords this boot: waiting 100ms before asking again.\n", 100 * time.Millisecond},
		{"a\nhello\n", nil, "12 wrong passwords this boot: waiting 100ms before asking again.\n", 100 * time.Millisecond},
		{"a\nb\nc\n", ErrLocked, "", 0},
	}
	for i, tt := range tests {
		var out bytes.Buffer
		t0 := time.Now()
		err := l.Unlock(console(t, tt.typed), &out)
		took := time.Since(t0)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("opening %d: Unlock = %v, want %v", i+1, err, tt.wantErr)
		}
		if tt.wantWait == "" && strings.Contains(out.String(), "waiting") || !strings.HasPrefix(out.String(), tt.wantWait) {
			t.Errorf("opening %d printed:\n%s\nwant it to start with %q", i+1, out.String(), tt.wantWait)
		}
		if took < tt.minWait {
			t.Errorf("opening %d took %v, want a wait of %v at least", i+1, took, tt.minWait)
		}
	}
}

// TestLockedWithoutAsking checks that a configuration that could not be read keeps the shell
// locked, whatever is typed, and asks nothing.
func TestLockedWithoutAsking(t *testing.T) {
	for _, tt := range []struct {
		name, hash string
		err        error
		want       string
	}{
		{"unreadable configuration", "", errors.New("read /etc/dockerinit.toml: input/output error"), "rescue shell locked: read /etc/dockerinit.toml: input/output error"},
		{"malformed hash", "$6$salt$tooshort", nil, "rescue shell locked: password hash: the digest is not 86 characters"},
		{"malformed hash with an error", "$6$salt$tooshort", errors.New("decode: bad"), "rescue shell locked: decode: bad"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := NewLock(tt.hash, tt.err).Unlock(console(t, "hello\n"), &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "mkbootimg") {
				t.Errorf("Unlock = %v, want an error containing %q and what to do", err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("it printed %q, want nothing asked", out.String())
			}
		})
	}
}
