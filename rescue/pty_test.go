package rescue

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// terminal is a pseudo-terminal standing in for the console: the shell gets the pts side, which
// hands it a line a read and echoes what is typed, as the kernel's console does.
type terminal struct {
	master, pts *os.File
	mu          sync.Mutex
	screen      bytes.Buffer // what the master side read: echo and output
	done        chan struct{}
}

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	testenv.Need(t, err == nil, fmt.Sprintf("a pseudo-terminal (/dev/ptmx: %v)", err))
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{master: m, pts: pts, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			term.mu.Lock()
			term.screen.Write(b[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pts.Close(); m.Close(); <-term.done })
	return term
}

// text is the screen so far, with the terminal's \r\n as \n.
func (term *terminal) text() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return strings.ReplaceAll(term.screen.String(), "\r\n", "\n")
}

// waitFor waits until the screen shows want n times.
func (term *terminal) waitFor(t *testing.T, want string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Count(term.text(), want) >= n {
			return
		}
	}
	t.Fatalf("the terminal never showed %q %d times; it shows:\n%s", want, n, term.text())
}

func (term *terminal) typ(t *testing.T, s string) {
	t.Helper()
	if _, err := term.master.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestOnATerminal runs the shell as the console runs it: the password is not echoed, and the
// shell goes on after a syntax error and leaves at Ctrl-D.
func TestOnATerminal(t *testing.T) {
	wrongPasswordDelay = 0
	term := newTerminal(t)
	res := make(chan error, 1)
	root := t.TempDir()
	go func() {
		if err := NewLock(testHash, nil).Unlock(term.pts, term.pts); err != nil {
			res <- err
			return
		}
		res <- Run(context.Background(), Options{Console: term.pts, Stdout: term.pts, Stderr: term.pts,
			Root: root, System: &fakeSystem{}})
	}()
	term.waitFor(t, "Password for the rescue shell: ", 1)
	term.typ(t, "wrong\n")
	term.waitFor(t, "Password for the rescue shell: ", 2)
	term.typ(t, "hello\n")
	term.waitFor(t, "# ", 1)
	term.typ(t, "echo )\n")
	term.waitFor(t, "# ", 2)
	term.typ(t, "echo still here\n")
	term.waitFor(t, "still here\n", 2) // the echo of the line, then the output
	term.typ(t, "\x04")
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Ctrl-D did not end the shell:\n%s", term.text())
	}
	screen := term.text()
	for _, secret := range []string{"wrong", "hello"} {
		if strings.Contains(screen, secret) {
			t.Errorf("the password %q was echoed:\n%s", secret, screen)
		}
	}
	for _, want := range []string{"Wrong password.\n", "syntax error: 1:6:", "echo still here\nstill here\n"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the screen lacks %q:\n%s", want, screen)
		}
	}
	if tm, err := unix.IoctlGetTermios(int(term.pts.Fd()), unix.TCGETS); err != nil || tm.Lflag&unix.ECHO == 0 {
		t.Errorf("echo is not back on after the password (%v)", err)
	}
}
