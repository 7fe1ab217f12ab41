package rescue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// helperEnv names what the test binary does when a test runs it as a helper process.
const helperEnv = "RESCUE_TEST_HELPER"

// TestMain lets the test binary stand in for dockerinit: RunChild re-executes /proc/self/exe as
// `rescue-shell`, and the tests run it in the roles a test cannot play itself.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == ChildCommand {
		os.Exit(ChildMain())
	}
	switch os.Getenv(helperEnv) {
	case "pid1":
		os.Exit(pid1Helper())
	case "foreign-parent":
		os.Exit(foreignParent(os.Getenv("CHILD")))
	}
	os.Exit(m.Run())
}

// transcript is a file standing in for the console's output.
func transcript(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "console")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestShellInAChild runs the shell as PID 1 does, in a child process, and checks what each way of
// leaving it tells the parent, which lives on whatever the shell did.
func TestShellInAChild(t *testing.T) {
	testenv.Tools(t, "procps", "kill")
	tests := []struct {
		name, typed string
		wantErr     string   // "": RunChild returns nil, the boot goes on
		wantOut     []string // in what the shell printed
		notOut      string   // never printed
	}{
		{name: "exit", typed: "echo inside\nexit\necho after\n", wantOut: []string{greeting, "inside"}, notOut: "after"},
		{name: "exit with a status still goes on booting", typed: "exit 3\n"},
		{name: "end of input", typed: "echo inside\n", wantOut: []string{"inside"}},
		{name: "a recursion that never ends", typed: "echo before\nf() { f; }; f\necho after\n",
			wantErr: "the rescue shell crashed (exit status 2: ", wantOut: []string{"before", "stack overflow"}, notOut: "after"},
		{name: "a panic in the interpreter", typed: "wait 1\necho after\n",
			wantErr: "the rescue shell crashed (exit status 2: ", wantOut: []string{"wait with args not handled yet"}, notOut: "after"},
		{name: "killed", typed: "PATH=/usr/bin:/bin\nkill -9 $$\necho after\n",
			wantErr: "the rescue shell crashed (killed by SIGKILL", notOut: "after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := transcript(t)
			err := RunChild(console(t, tt.typed), out, out)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("RunChild = %v, want %q", err, tt.wantErr)
			}
			got := readAll(t, out)
			for _, w := range tt.wantOut {
				if !strings.Contains(got, w) {
					t.Errorf("the shell did not print %q; it printed:\n%s", w, got)
				}
			}
			if tt.notOut != "" && strings.Contains(got, tt.notOut) {
				t.Errorf("the shell printed %q, which it should not have reached:\n%s", tt.notOut, got)
			}
		})
	}
}

const greeting = "dockerinit rescue shell."

// TestShellChildRefusesStrangers checks that `dockerinit rescue-shell` runs the shell for RunChild
// only, never for a process that did not start it that way: that would skip the password.
func TestShellChildRefusesStrangers(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	socket := func(t *testing.T) *os.File {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
		t.Cleanup(func() { a.Close(); b.Close() })
		return b
	}
	tests := []struct {
		name  string
		cmd   func(t *testing.T) *exec.Cmd
		wants string
	}{
		{"typed in a booted system", func(t *testing.T) *exec.Cmd {
			return exec.Command(self, ChildCommand)
		}, "descriptor 3 is not its socket"},
		{"descriptor 3 is a file", func(t *testing.T) *exec.Cmd {
			c := exec.Command(self, ChildCommand)
			c.ExtraFiles = []*os.File{transcript(t)}
			return c
		}, "descriptor 3 is not its socket: socket operation on non-socket"},
		{"the socket of another process passed on", func(t *testing.T) *exec.Cmd {
			c := exec.Command("/bin/sh", "-c", `"$0" `+ChildCommand+`; exit $?`, self)
			c.ExtraFiles = []*os.File{socket(t)}
			return c
		}, "not from the parent, pid"},
		{"a parent running another program", func(t *testing.T) *exec.Cmd {
			other := filepath.Join(t.TempDir(), "other")
			copyFile(t, self, other)
			c := exec.Command(other)
			c.Env = append(os.Environ(), helperEnv+"=foreign-parent", "CHILD="+self)
			return c
		}, "runs another program"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cmd(t)
			c.Stdin = strings.NewReader("echo SHELL-RAN\n")
			out, err := c.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitCannotRun {
				t.Errorf("exit: %v, want status %d", err, exitCannotRun)
			}
			for _, w := range []string{"dockerinit rescue-shell: not started by dockerinit", tt.wants, "`shell` is typed at the prompt of a failed boot"} {
				if !strings.Contains(string(out), w) {
					t.Errorf("it printed:\n%s\nwant %q", out, w)
				}
			}
			if strings.Contains(string(out), "SHELL-RAN") || strings.Contains(string(out), greeting) {
				t.Errorf("the shell ran:\n%s", out)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// foreignParent starts child as RunChild does, from a program that is not the child's.
func foreignParent(child string) int {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return 3
	}
	pid, err := syscall.ForkExec(child, []string{child, ChildCommand}, &syscall.ProcAttr{
		Env: os.Environ(), Files: []uintptr{0, 1, 2, uintptr(fds[1])}})
	if err != nil {
		fmt.Println(err)
		return 3
	}
	ws, err := waitPid(pid)
	if err != nil {
		fmt.Println(err)
		return 3
	}
	return ws.ExitStatus()
}

// TestPID1 runs RunChild in a process that is PID 1, in a PID namespace of its own, as dockerinit
// is at boot: a crash of the shell leaves it running, and it reaps every process the shell leaves
// behind, the orphans that PID 1 adopts included.
func TestPID1(t *testing.T) {
	testenv.Root(t, "a PID namespace, where the test binary is PID 1")
	testenv.Tools(t, "coreutils util-linux", "sleep", "setsid")
	c := exec.Command("/proc/self/exe")
	c.Env = append(os.Environ(), helperEnv+"=pid1")
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("PID 1 helper: %v\n%s", err, out)
	}
	for _, w := range []string{
		"crash: the rescue shell crashed (exit status 2: a Go panic",
		"again: <nil>",
		"orphans: <nil>",
		"left: none",
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("PID 1 printed:\n%s\nwant %q", out, w)
		}
	}
}

// pid1Helper is TestPID1's PID 1. It prints what happened, one "what: result" line each.
func pid1Helper() int {
	// A /proc of this PID namespace, in a mount namespace of its own so that the host keeps its.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Println("mount --make-rprivate /:", err)
		return 1
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		fmt.Println("mount /proc:", err)
		return 1
	}
	if os.Getpid() != 1 {
		fmt.Println("not PID 1 but", os.Getpid())
		return 1
	}
	run := func(what, typed string) {
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Println(what+":", err)
			return
		}
		go func() {
			io.WriteString(w, typed)
			w.Close()
		}()
		devNull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		defer devNull.Close()
		err = RunChild(r, devNull, devNull)
		r.Close()
		fmt.Printf("%s: %v\n", what, err)
	}
	run("crash", "f() { f; }; f\n")
	run("again", "echo alive\n")
	// One left running in the shell's process group, killed as the shell ends; one in a session
	// of its own, which outlives the shell and ends an orphan, PID 1's to reap.
	run("orphans", "PATH=/usr/bin:/bin\nsleep 60 &\nsetsid sleep 0.2 &\nsleep 0.1\n")
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		left = otherProcesses()
		if len(left) == 0 {
			break
		}
	}
	if len(left) == 0 {
		left = []string{"none"}
	}
	fmt.Printf("left: %s\n", strings.Join(left, ", "))
	return 0
}

// otherProcesses lists the processes of this PID namespace but PID 1, with their name and state
// (Z: a zombie), from its /proc.
func otherProcesses() []string {
	entries, _ := os.ReadDir("/proc")
	var others []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // it ended meanwhile
		}
		// pid (comm) state ...: comm may hold spaces, so cut at the last parenthesis.
		s := string(stat)
		end := strings.LastIndexByte(s, ')')
		comm, state := s[strings.IndexByte(s, '(')+1:end], strings.TrimSpace(s[end+1:])[:1]
		others = append(others, fmt.Sprintf("%d %s %s", pid, comm, state))
	}
	return others
}
