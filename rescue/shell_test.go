package rescue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSystem records what the commands asked of the machine.
type fakeSystem struct {
	calls     []string // "mount SRC DIR TYPE FLAGS DATA", "umount DIR FLAGS", "load A B", "reboot CMD"
	mountErrs []error  // returned by the next Mount calls, in order
	umountErr error
	loadErr   error
	log       string
}

func (f *fakeSystem) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.calls = append(f.calls, strings.Join([]string{"mount", source, target, fstype, flagNames(flags), data}, " "))
	if len(f.mountErrs) > 0 {
		err := f.mountErrs[0]
		f.mountErrs = f.mountErrs[1:]
		return err
	}
	return nil
}

func (f *fakeSystem) Unmount(target string, flags int) error {
	f.calls = append(f.calls, fmt.Sprintf("umount %s %d", target, flags))
	return f.umountErr
}

func (f *fakeSystem) KernelLog() ([]byte, error) { return []byte(f.log), nil }

func (f *fakeSystem) LoadModules(names ...string) error {
	f.calls = append(f.calls, "load "+strings.Join(names, " "))
	return f.loadErr
}

func (f *fakeSystem) Reboot(cmd int) error {
	switch cmd {
	case unix.LINUX_REBOOT_CMD_RESTART:
		f.calls = append(f.calls, "reboot restart")
	case unix.LINUX_REBOOT_CMD_POWER_OFF:
		f.calls = append(f.calls, "reboot poweroff")
	default:
		f.calls = append(f.calls, "reboot ?")
	}
	return nil
}

// flagNames spells mount(2) flags for readable expectations.
func flagNames(flags uintptr) string {
	var names []string
	for _, f := range []struct {
		bit  uintptr
		name string
	}{{unix.MS_RDONLY, "RDONLY"}, {unix.MS_NOSUID, "NOSUID"}, {unix.MS_NODEV, "NODEV"}, {unix.MS_NOEXEC, "NOEXEC"},
		{unix.MS_REMOUNT, "REMOUNT"}, {unix.MS_BIND, "BIND"}, {unix.MS_REC, "REC"}, {unix.MS_NOATIME, "NOATIME"}} {
		if flags&f.bit != 0 {
			names = append(names, f.name)
			flags &^= f.bit
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	if names == nil {
		return "0"
	}
	return strings.Join(names, "|")
}

// session is one run of the shell over a script.
type session struct {
	out, errOut string
	err         error
}

// runShell runs the shell on script as its console input, behind the password of hash, with root
// as the place of /proc, /sys and /dev; it returns what was printed, the prompts included.
func runShell(t *testing.T, root string, sys System, hash, script string) session {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		w.WriteString(script)
		w.Close()
	}()
	var out, errOut bytes.Buffer
	err = NewLock(hash, nil).Unlock(r, &out)
	if err == nil {
		err = Run(context.Background(), Options{Console: r, Stdout: &out, Stderr: &errOut, Root: root, System: sys})
	}
	return session{out: out.String(), errOut: errOut.String(), err: err}
}

// stripPrompts removes the shell's prompts and greeting, leaving what the commands printed.
func stripPrompts(s string) string {
	s = regexp.MustCompile(`(?m)^(?:rescue:[^#\n]*# |> )+`).ReplaceAllString(s, "")
	return strings.TrimPrefix(s, "dockerinit rescue shell. `help` lists the commands; `exit` goes on booting; a failed boot resumes at the step that failed.\n")
}

func TestInterpreter(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, script string
		wantOut      string // exactly, prompts removed
		wantErr      string // a substring of stderr; "" = stderr empty
	}{
		{name: "variables, loops and conditions",
			script:  "x=world\nfor i in 1 2; do echo \"hello $x $i\"; done\nif true; then echo yes; else echo no; fi\n",
			wantOut: "hello world 1\nhello world 2\nyes\n"},
		{name: "a statement over several lines",
			script:  "for i in a b\ndo\necho $i\ndone\n",
			wantOut: "a\nb\n"},
		{name: "redirections and pipes between built-in commands",
			script:  "cd " + dir + "\necho one > f\necho two >> f\ncat f | cat\ncat < f\n",
			wantOut: "one\ntwo\none\ntwo\n"},
		{name: "exit status of a failing command",
			script:  "cat /nonexistent; echo status $?\n",
			wantOut: "status 1\n", wantErr: "cat: open /nonexistent: no such file or directory"},
		{name: "unknown command",
			script:  "nosuchcommand arg; echo status $?\n",
			wantOut: "status 127\n", wantErr: "nosuchcommand: no such command; `help` lists the built-in ones"},
		{name: "wrong use of a command says how to use it",
			script:  "lsmod extra; echo status $?\n",
			wantOut: "status 2\n", wantErr: "lsmod: usage: lsmod"},
		{name: "-h prints the usage and succeeds",
			script:  "umount -h; echo status $?\n",
			wantOut: "usage: umount [-l] [-f] DIR...\n  -f\tforce (network file systems)\n  -l\tdetach now, clean up when no longer busy\nstatus 0\n"},
		{name: "exit ends the shell: nothing after it runs",
			script:  "echo before\nexit\necho after\n",
			wantOut: "before\n"},
		{name: "exit inside a line",
			script:  "echo a; exit 3; echo b\necho c\n",
			wantOut: "a\n"},
		{name: "a syntax error is reported",
			script:  "echo )\n",
			wantOut: "", wantErr: "syntax error: 1:6: a command can only contain words and redirects"},
		{name: "commands from $PATH still run",
			script:  "PATH=/usr/bin:/bin\nenv -u X true && echo ran\n",
			wantOut: "ran\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runShell(t, t.TempDir(), &fakeSystem{}, "", tt.script)
			if s.err != nil {
				t.Fatalf("Run: %v", s.err)
			}
			if got := stripPrompts(s.out); got != tt.wantOut {
				t.Errorf("output %q, want %q\nwhole output:\n%s", got, tt.wantOut, s.out)
			}
			if tt.wantErr == "" && s.errOut != "" || !strings.Contains(s.errOut, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", s.errOut, tt.wantErr)
			}
		})
	}
}

func TestPromptShowsDirectory(t *testing.T) {
	dir := t.TempDir()
	s := runShell(t, t.TempDir(), &fakeSystem{}, "", "cd "+dir+"\n")
	if !strings.HasPrefix(s.out, "dockerinit rescue shell. `help` lists the commands; `exit` goes on booting; a failed boot resumes at the step that failed.\n") {
		t.Errorf("no greeting saying how to get help and retry: %q", s.out)
	}
	if !strings.Contains(s.out, "rescue:"+dir+"# ") {
		t.Errorf("after cd %s the prompt does not show it: %q", dir, s.out)
	}
}

func TestCoreCommands(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, script, want string
	}{
		{"mkdir, touch and ls with relative paths", "mkdir -p a/b\ntouch a/b/f a/g\nls a\nls a/b\n", "b\ng\nf\n"},
		{"cp and mv", "echo data > src\ncp src copy\nmv copy moved\ncat moved\nls\n", "data\nmoved\nsrc\n"},
		{"cp -r", "mkdir -p t/d\necho x > t/d/f\ncp -r t t2\ncat t2/d/f\n", "x\n"},
		{"rm -r", "mkdir -p r/s\ntouch r/s/f\nrm -r r\nls\n", ""},
		{"find -name", "mkdir -p x/y\ntouch x/y/needle x/hay\nfind x -name needle\n", "/x/y/needle\n"}, // u-root's find prints the resolved path
		{"chmod", "touch m\nchmod 0600 m\nls -l m\n", "-rw-------"},
		{"shasum", "printf abc > h\nshasum -a 256 h\n", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad h\n"},
		{"base64", "printf hi > b\nbase64 b\n", "aGk=\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.Mkdir(work, 0o755); err != nil {
				t.Fatal(err)
			}
			s := runShell(t, t.TempDir(), &fakeSystem{}, "", "cd "+work+"\n"+tt.script)
			if s.err != nil || s.errOut != "" {
				t.Fatalf("Run: %v, stderr %q", s.err, s.errOut)
			}
			got := strings.ReplaceAll(stripPrompts(s.out), work, "")
			if strings.HasPrefix(tt.want, "-") {
				if !strings.HasPrefix(got, tt.want) {
					t.Errorf("output %q, want it to start with %q", got, tt.want)
				}
				return
			}
			if got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	s := runShell(t, t.TempDir(), &fakeSystem{}, "", "help\n")
	for name := range commands() {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` +\S`).MatchString(s.out) {
			t.Errorf("help does not list %s:\n%s", name, s.out)
		}
	}
	for _, w := range []string{"`exit`", "retrying a failed boot", "cd"} {
		if !strings.Contains(s.out, w) {
			t.Errorf("help does not mention %q:\n%s", w, s.out)
		}
	}
}

func TestPanickingCommandDoesNotKillTheShell(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("boom; echo status $?\necho alive\n")
	w.Close()
	var out, errOut bytes.Buffer
	sh, err := newShell(Options{Console: r, Stdout: &out, Stderr: &errOut, Root: t.TempDir(), System: &fakeSystem{}})
	if err != nil {
		t.Fatal(err)
	}
	sh.commands["boom"] = command{"panics", func(*call) error { panic("kaboom") }}
	if err := sh.interact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stripPrompts(out.String()); got != "status 1\nalive\n" {
		t.Errorf("output %q", got)
	}
	if !strings.Contains(errOut.String(), "boom: internal error (please report it): kaboom") {
		t.Errorf("stderr %q does not report the panic", errOut.String())
	}
}

// testHash is `openssl passwd -6 -salt saltsalt hello`.
const testHash = "$6$saltsalt$YTeBOLnmm3CoeJTzBuijUEtOEWCqrw/nQ8/AeMmON4LGp3k0ZiMjC1OdqzWFUAfDQBvYkOch9BWtQTBcZ1E/p0"

func TestPassword(t *testing.T) {
	wrongPasswordDelay = 0
	tests := []struct {
		name, hash, input string
		wantErr           error  // nil: the shell ran
		wantErrText       string // for errors that are not ErrLocked
		wantOut           string // printed by the script, when the shell ran
		wrongs            int
		noPrompt          bool // the shell is locked without asking
	}{
		{name: "right password", hash: testHash, input: "hello\necho inside\n", wantOut: "inside"},
		{name: "right at the third try", hash: testHash, input: "x\nHello\nhello\necho inside\n", wantOut: "inside", wrongs: 2},
		{name: "carriage return from a serial console", hash: testHash, input: "hello\r\necho inside\n", wantOut: "inside"},
		{name: "three wrong passwords lock", hash: testHash, input: "a\nb\nc\necho inside\n", wantErr: ErrLocked, wrongs: 3},
		{name: "no input", hash: testHash, input: "", wantErrText: "read the password from the console: EOF"},
		{name: "malformed hash locks", hash: "$6$x$short", input: "hello\necho inside\n", wantErrText: "rescue shell locked: password hash: the digest is not 86 characters", noPrompt: true},
		{name: "no hash asks nothing", input: "echo inside\n", wantOut: "inside", noPrompt: true},
		{name: "the rest of an overlong password line is not run", hash: testHash, input: strings.Repeat("x", 5000) + "; echo inside\n", wantErrText: "read the password from the console: EOF", wrongs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runShell(t, t.TempDir(), &fakeSystem{}, tt.hash, tt.input)
			switch {
			case tt.wantErr != nil && !errors.Is(s.err, tt.wantErr):
				t.Errorf("Run = %v, want %v", s.err, tt.wantErr)
			case tt.wantErrText != "" && (s.err == nil || !strings.Contains(s.err.Error(), tt.wantErrText)):
				t.Errorf("Run = %v, want an error containing %q", s.err, tt.wantErrText)
			case tt.wantErr == nil && tt.wantErrText == "" && s.err != nil:
				t.Errorf("Run: %v", s.err)
			}
			if got := strings.Count(s.out, "Wrong password."); got != tt.wrongs {
				t.Errorf("%d wrong password messages, want %d:\n%s", got, tt.wrongs, s.out)
			}
			if ran := strings.Contains(s.out, "inside"); ran != (tt.wantOut != "") {
				t.Errorf("the shell ran: %v, want %v:\n%s", ran, tt.wantOut != "", s.out)
			}
			if strings.Contains(s.out, "hello") {
				t.Errorf("the password was printed:\n%s", s.out)
			}
			if asked := strings.HasPrefix(s.out, "Password for the rescue shell: "); asked == tt.noPrompt {
				t.Errorf("the password was asked for first: %v, want %v:\n%s", asked, !tt.noPrompt, s.out)
			}
		})
	}
}
