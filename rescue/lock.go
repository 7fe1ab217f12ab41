package rescue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/rescue/password"
)

// ErrLocked is returned after three wrong passwords.
var ErrLocked = errors.New("rescue shell: wrong password three times")

// The waits that slow down guessing at the console; variables so that tests can shorten them.
var (
	// wrongPasswordDelay follows each wrong password, as login does.
	wrongPasswordDelay = 2 * time.Second
	// lockoutDelay comes before the second round of three guesses, and doubles before each
	// further round, up to maxLockoutDelay: the failure prompt lets the user type shell again
	// as often as they like, so three guesses a round alone would not bound the guessing.
	lockoutDelay    = 5 * time.Second
	maxLockoutDelay = 5 * time.Minute
)

// Lock guards the rescue shell for one boot. PID 1 makes it once, before anything can change the
// configuration it comes from, and keeps it in memory: what it decided holds for every opening
// of the shell, and the wrong guesses count across them.
type Lock struct {
	hash   string
	err    error // when set, the shell stays locked whatever is typed
	rounds int   // rounds of three wrong guesses so far
}

// NewLock is the lock of a configuration whose [rescue] table gave hash ("": no password) or
// could not be read (err): then the shell stays locked, since a configuration that cannot be read
// may hold a password. A malformed hash locks it too.
func NewLock(hash string, err error) *Lock {
	if err == nil && hash != "" {
		err = password.Check(hash)
	}
	if err != nil {
		err = fmt.Errorf("rescue shell locked: %w (fix the [rescue] table of the configuration given to mkbootimg)", err)
	}
	return &Lock{hash: hash, err: err}
}

// Unlock asks at console for the password, if there is one, up to three times, after waiting as
// long as the rounds failed before require; the right password starts the count over. It
// returns nil when the shell may open, ErrLocked after three wrong passwords, another error when
// the shell stays locked.
func (l *Lock) Unlock(console *os.File, out io.Writer) error {
	if l.err != nil {
		return l.err
	}
	if l.hash == "" {
		return nil
	}
	if d := l.wait(); d > 0 {
		fmt.Fprintf(out, "%d wrong passwords this boot: waiting %v before asking again.\n", 3*l.rounds, d)
		time.Sleep(d)
	}
	for range 3 {
		pw, err := readSecret(console, out, "Password for the rescue shell: ")
		if err != nil {
			return fmt.Errorf("rescue shell: read the password from the console: %w", err)
		}
		// NewLock checked the hash: an error here is a wrong password.
		if password.Verify(l.hash, pw) == nil {
			l.rounds = 0 // the waits are for guessing, not for the owner coming back
			return nil
		}
		time.Sleep(wrongPasswordDelay)
		fmt.Fprintln(out, "Wrong password.")
	}
	l.rounds++
	return ErrLocked
}

// wait is how long the next round waits: nothing for the first, then lockoutDelay doubling.
func (l *Lock) wait() time.Duration {
	if l.rounds == 0 {
		return 0
	}
	d := lockoutDelay
	for i := 1; i < l.rounds && d < maxLockoutDelay; i++ {
		d *= 2
	}
	return min(d, maxLockoutDelay)
}

// readSecret prints prompt and reads one line with the terminal's echo off (turned off before the
// prompt shows, so that nothing typed after it is echoed). It reads a byte at a time so that
// nothing after the line is taken from the shell that reads next.
func readSecret(f *os.File, out io.Writer, prompt string) (string, error) {
	if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		quiet := *t
		quiet.Lflag &^= unix.ECHO
		if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &quiet); err == nil {
			defer unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
		}
	}
	fmt.Fprint(out, prompt)
	defer fmt.Fprintln(out) // the Enter that was not echoed
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := f.Read(b)
		if n == 1 && b[0] == '\n' {
			break
		}
		if n == 1 && len(line) < 4096 { // the rest of a longer line is dropped, never run
			line = append(line, b[0])
		}
		if n == 0 && err != nil {
			return "", err
		}
	}
	return strings.TrimSuffix(string(line), "\r"), nil
}
