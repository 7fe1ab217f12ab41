package qemutests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// consoleLine is one line of the serial console, as a user reads it.
type consoleLine struct {
	at   time.Duration // host time since QEMU started
	text string
}

// vm is one QEMU run whose serial console is read as a stream.
type vm struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	start time.Time

	mu      sync.Mutex
	lines   []consoleLine
	partial string        // the line being printed: prompts have no newline
	changed chan struct{} // closed and replaced on every console update
	exited  chan struct{} // closed once QEMU has exited and its output is read
	exitErr error
	stderr  bytes.Buffer
	next    int      // lines before this index were consumed by waitFor
	log     *os.File // the whole console, written as it arrives

	// partialMatched: waitFor matched the unfinished line, whose first partialLen bytes are then
	// consumed once it is finished. The rest is not: a prompt has no newline, so a kernel message
	// printed after it ("retrying the boot ...") ends up on the prompt's line.
	partialMatched bool
	partialLen     int
	nextFrom       int // bytes of lines[next] consumed already
}

// errGuestStuck stops a wait early: the guest will not get any further.
var errGuestStuck = errors.New("the guest failed")

// stuckLines are console lines after which a boot cannot succeed: waiting on
// would only spend the timeout.
var stuckLines = []string{"Kernel panic", "dockerinit: boot failed"}

// startVM boots kernel+initrd with the rig's disk as a virtio disk and cmdline as the kernel
// command line.
func startVM(t *testing.T, name string, r *rig, cmdline string) *vm {
	t.Helper()
	return startWithDisks(t, name, r, cmdline, []string{"-drive", "file=" + r.disk + ",if=virtio,format=raw,cache=unsafe"})
}

// startWithDisks boots kernel+initrd with devices (QEMU arguments) as the machine's disks.
func startWithDisks(t *testing.T, name string, r *rig, cmdline string, devices []string) *vm {
	t.Helper()
	accel := []string{"-accel", "tcg"}
	if os.Getenv("DOCKERINIT_KVM") == "1" {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	args := append([]string{
		"-machine", "q35", "-m", "1024", "-smp", "2", "-nographic", "-no-reboot", "-nic", "none",
		"-kernel", filepath.Join(r.boot, "vmlinuz"),
		"-initrd", filepath.Join(r.boot, "initramfs.img"),
		"-append", cmdline,
	}, append(devices, accel...)...)
	t.Logf("boot %s: qemu-system-x86_64 %s", name, quoteArgs(args))
	// snapshot=on overlays go to $TMPDIR: keep them out of a small /tmp.
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	return startConsole(t, name, cmd, r.logDir)
}

// startConsole runs cmd and reads its output as a serial console. cmd is killed when the
// test ends; on failure the last console lines go to the test log. The whole console is
// written to logDir/NAME.log as it arrives.
func startConsole(t *testing.T, name string, cmd *exec.Cmd, logDir string) *vm {
	t.Helper()
	v := &vm{name: name, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	v.cmd.Stderr = &lockedWriter{mu: &v.mu, w: &v.stderr}
	// Nothing outlives a killed test binary; stop kills the whole process group.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatalf("boot %s: %v", name, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	var err error
	if v.log, err = os.Create(logPath); err != nil {
		t.Fatalf("boot %s: %v", name, err)
	}
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("boot %s: %v", name, err)
	}
	if v.stdin, err = v.cmd.StdinPipe(); err != nil {
		t.Fatalf("boot %s: %v", name, err)
	}
	t.Logf("boot %s: console in %s", name, logPath)
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("boot %s: start %s: %v", name, cmd.Path, err)
	}
	go v.read(stdout)
	t.Cleanup(func() {
		v.stop()
		v.log.Close()
		if t.Failed() {
			t.Logf("boot %s: last 80 console lines:\n%s", name, v.tail(80))
		}
	})
	return v
}

// lockedWriter lets QEMU's stderr be read while it is written.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (v *vm) read(stdout io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := stdout.Read(buf)
		if n > 0 {
			v.mu.Lock()
			at := time.Since(v.start)
			chunk := v.partial + string(buf[:n])
			for {
				line, rest, found := strings.Cut(chunk, "\n")
				if !found {
					break
				}
				v.addLine(consoleLine{at: at, text: cleanConsole(line)})
				chunk = rest
			}
			v.partial = chunk
			v.notify()
			v.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	err := v.cmd.Wait()
	v.mu.Lock()
	if v.partial != "" {
		v.addLine(consoleLine{at: time.Since(v.start), text: cleanConsole(v.partial)})
		v.partial = ""
	}
	v.exitErr = err
	v.notify()
	v.mu.Unlock()
	close(v.exited)
}

// addLine records a finished console line; v.mu is held.
func (v *vm) addLine(l consoleLine) {
	if v.partialMatched && v.next == len(v.lines) {
		v.nextFrom = v.partialLen // a waitFor already returned this much while it was unfinished
	}
	v.partialMatched = false
	v.lines = append(v.lines, l)
	fmt.Fprintln(v.log, l)
}

// notify wakes the waiters; v.mu is held.
func (v *vm) notify() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// waitFor waits until a console line after the previous match matches re, and returns it.
// It fails early when QEMU exits or the kernel panics.
func (v *vm) waitFor(re *regexp.Regexp, timeout time.Duration) (consoleLine, error) {
	deadline := time.After(timeout)
	for {
		v.mu.Lock()
		for i := v.next; i < len(v.lines); i++ {
			l := v.lines[i]
			if i == v.next {
				l.text = l.text[min(v.nextFrom, len(l.text)):]
			}
			if re.MatchString(l.text) {
				v.next, v.nextFrom = i+1, 0
				v.mu.Unlock()
				return l, nil
			}
			if slices.ContainsFunc(stuckLines, func(s string) bool { return strings.Contains(l.text, s) }) {
				v.next, v.nextFrom = i+1, 0
				v.mu.Unlock()
				return consoleLine{}, fmt.Errorf("waiting for %q: %w: %s", re, errGuestStuck, l.text)
			}
		}
		if v.next < len(v.lines) {
			v.next, v.nextFrom = len(v.lines), 0
		}
		if p := cleanConsole(v.partial); p != "" && re.MatchString(p) {
			v.partialMatched, v.partialLen = true, len(p)
			v.mu.Unlock()
			return consoleLine{at: time.Since(v.start), text: p}, nil
		}
		changed := v.changed
		select {
		case <-v.exited:
			err := v.exitErr
			stderr := strings.TrimSpace(v.stderr.String())
			v.mu.Unlock()
			return consoleLine{}, fmt.Errorf("waiting for %q: QEMU exited (%v) before it appeared; QEMU stderr: %q", re, err, stderr)
		default:
		}
		v.mu.Unlock()
		select {
		case <-changed:
		case <-v.exited:
		case <-deadline:
			return consoleLine{}, fmt.Errorf("waiting for %q: nothing matched in %v", re, timeout)
		}
	}
}

// waitExit waits for the guest to power off.
func (v *vm) waitExit(timeout time.Duration) error {
	select {
	case <-v.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("QEMU still running %v after the guest was asked to power off", timeout)
	}
}

// send types s on the serial console.
func (v *vm) send(s string) error {
	_, err := io.WriteString(v.stdin, s)
	return err
}

// stop kills QEMU if it still runs.
func (v *vm) stop() {
	select {
	case <-v.exited:
		return
	default:
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	<-v.exited
}

// transcript returns every console line so far.
func (v *vm) transcript() []consoleLine {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]consoleLine(nil), v.lines...)
}

func (v *vm) tail(n int) string {
	lines := v.transcript()
	lines = lines[max(0, len(lines)-n):]
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintln(&b, l)
	}
	return b.String()
}

// String shows when the line arrived, for the logs.
func (l consoleLine) String() string { return fmt.Sprintf("%7.2fs | %s", l.at.Seconds(), l.text) }

// quoteArgs prints a command line that can be pasted into a shell.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if strings.ContainsAny(a, " '\"$") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// timings reports where a finished boot spent its time, from the console: when the kernel
// ran /init and when the first line matching initStarted (the image's init) appeared.
func (v *vm) timings(t *testing.T, initStarted *regexp.Regexp) {
	t.Helper()
	var runInit, started *consoleLine
	lines := v.transcript()
	for i := range lines {
		switch {
		case runInit == nil && strings.Contains(lines[i].text, "Run /init as init process"):
			runInit = &lines[i]
		case runInit != nil && initStarted.MatchString(lines[i].text):
			started = &lines[i]
		}
		if started != nil {
			break
		}
	}
	if runInit == nil || started == nil {
		t.Logf("boot %s timings: no \"Run /init\" line followed by %q on the console", v.name, initStarted)
		return
	}
	runInitAt, _ := kernelTime(runInit.text)
	msg := fmt.Sprintf("boot %s timings: kernel ran /init at %.2fs (guest clock); host: QEMU start to /init %.2fs, to %q %.2fs",
		v.name, runInitAt.Seconds(), runInit.at.Seconds(), initStarted, started.at.Seconds())
	if _, val, ok := parseMarker(started.text); ok {
		if up, found := strings.CutPrefix(val, "uptime="); found {
			if d, ok := seconds(up); ok {
				msg += fmt.Sprintf("; image's init started at %.2fs (guest clock): initramfs took %.2fs", d.Seconds(), (d - runInitAt).Seconds())
			}
		}
	}
	t.Log(msg)
}

func TestConsole(t *testing.T) {
	script := func(sh string) *exec.Cmd { return exec.Command("sh", "-c", sh) }
	for _, tc := range []struct {
		name, script, want string
		timeout            time.Duration
		wantErr            error  // errors.Is
		errText            string // else a part of the error
		wantLine           string
	}{
		{name: "prompt without newline", script: "printf 'boot\\r\\nhost login: '; sleep 10", want: `login: *$`, wantLine: "host login: "},
		{name: "colours stripped", script: "printf '[\\033[0;32m  OK  \\033[0m] Reached target \\033[1mMulti-User System\\033[0m.\\n'; sleep 10",
			want: `^\[  OK  \] Reached target Multi-User System\.$`, wantLine: "[  OK  ] Reached target Multi-User System."},
		{name: "kernel message on a line's end", script: "printf '@@12:0:end[    4.739659] sr 2:0:0:0: [sr0] scsi3-mmc drive\\n'; sleep 10",
			want: `@@12:0:end` + lineEnd, wantLine: "@@12:0:end[    4.739659] sr 2:0:0:0: [sr0] scsi3-mmc drive"},
		{name: "panic fails fast", script: "echo '[ 1.0] Kernel panic - not syncing: Attempted to kill init!'; sleep 10", want: "never", wantErr: errGuestStuck},
		{name: "dockerinit failure fails fast", script: "echo 'dockerinit: boot failed: no root'; sleep 10", want: "never", wantErr: errGuestStuck},
		{name: "exit fails fast", script: "echo bye; echo oops >&2; exit 3", want: "never", errText: `QEMU exited (exit status 3) before it appeared; QEMU stderr: "oops"`},
		{name: "timeout", script: "sleep 10", want: "never", timeout: 200 * time.Millisecond, errText: "nothing matched in 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			start := time.Now()
			v := startConsole(t, "console", script(tc.script), t.TempDir())
			l, err := v.waitFor(regexp.MustCompile(tc.want), timeout)
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("waitFor = %v, want %v", err, tc.wantErr)
			case tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)):
				t.Errorf("waitFor = %v, want an error saying %q", err, tc.errText)
			case tc.wantLine != "" && (err != nil || l.text != tc.wantLine):
				t.Errorf("waitFor = %q, %v; want %q", l.text, err, tc.wantLine)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("waitFor took %v: it must return as soon as the console decides", d)
			}
		})
	}
}

func TestConsoleSend(t *testing.T) {
	v := startConsole(t, "send", exec.Command("sh", "-c", "read -r name; echo \"hello $name\""), t.TempDir())
	if err := v.send("root\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.waitFor(regexp.MustCompile(`^hello root$`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := v.waitExit(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestConsolePromptThenMessage: a kernel message printed after a prompt lands on the prompt's
// line; a wait for the message after the wait for the prompt must still see it, and the prompt
// must not count twice.
func TestConsolePromptThenMessage(t *testing.T) {
	v := startConsole(t, "prompt-message", exec.Command("sh", "-c", "printf 'Press Enter: '; sleep 1; printf '[ 1.0] dockerinit: retrying\\nnext\\n'; sleep 10"), t.TempDir())
	if _, err := v.waitFor(regexp.MustCompile(`Press Enter: $`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := v.waitFor(regexp.MustCompile(`dockerinit: retrying$`), 5*time.Second); err != nil {
		t.Fatalf("the message after the prompt was lost: %v", err)
	}
	if l, err := v.waitFor(regexp.MustCompile(`Press Enter|next`), 5*time.Second); err != nil || l.text != "next" {
		t.Errorf("after the message: %q, %v; want the next line, not the prompt again", l.text, err)
	}
}
