package rescue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ChildCommand is the hidden dockerinit subcommand that RunChild starts: the shell's process.
const ChildCommand = "rescue-shell"

// authFd is the descriptor on which RunChild hands its child the proof that it started it.
const authFd = 3

// childMaxStack bounds the shell process's goroutine stacks, as ulimit -s bounds a C program's: a
// recursion that never ends, such as `f() { f; }; f`, then crashes the shell within a second or
// so, where the runtime's 1 GiB would take the interpreter minutes and more memory than a small
// machine has. Shell functions still recurse over a thousand levels deep.
const childMaxStack = 8 << 20

// exitCannotRun is the child's exit status when it did not run the shell, having said why.
const exitCannotRun = 1

// RunChild runs the shell in a child process on the console files in, out and errOut, and
// returns when it ends: nil when the user left it (exit, Ctrl-D), an error when it could not start
// or crashed. The caller has asked for the password (Lock.Unlock): the child asks for none.
//
// A child process, because a Go program cannot recover from every failure: a recursion that never
// ends overflows the goroutine stack and the runtime ends the process, which, as PID 1, panics the
// kernel. The child is this same program, /proc/self/exe (still there after a failed switch_root
// deleted it from the initramfs), run as `dockerinit rescue-shell`.
func RunChild(in, out, errOut *os.File) error {
	// The proof for ChildMain: a socket whose peer credentials name this process.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("start the rescue shell: socketpair: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	pid1 := os.Getpid() == 1
	attr := &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{in.Fd(), out.Fd(), errOut.Fd(), uintptr(fds[1])},
		// As PID 1, the shell gets a process group of its own, to be killed with what it leaves
		// running, which would otherwise outlive the initramfs. The console is no controlling
		// terminal there (the kernel never makes /dev/console one), so the group reads it as
		// any would; on a terminal that is (dockerinit prepare), the group would be a background
		// one, stopped as it reads.
		Sys: &syscall.SysProcAttr{Setpgid: pid1},
	}
	fork := func() (int, error) {
		return syscall.ForkExec("/proc/self/exe", []string{os.Args[0], ChildCommand}, attr)
	}
	var pid int
	var wait func() (unix.WaitStatus, error)
	if pid1 {
		pid, wait, err = pid1Reaper().start(fork)
	} else {
		pid, err = fork()
		wait = func() (unix.WaitStatus, error) { return waitPid(pid) }
	}
	if err != nil {
		return fmt.Errorf("start the rescue shell: run /proc/self/exe %s: %w", ChildCommand, err)
	}
	ws, err := wait()
	if pid1 {
		// Pids are handed out in a cycle, so the shell's is not yet reused as a group id here.
		_ = unix.Kill(-pid, unix.SIGKILL)
	}
	if err != nil {
		return fmt.Errorf("the rescue shell (pid %d): wait: %w", pid, err)
	}
	return shellEnd(ws)
}

// shellEnd turns how the shell's process ended into RunChild's answer.
func shellEnd(ws unix.WaitStatus) error {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited() && ws.ExitStatus() == exitCannotRun:
		return errors.New("the rescue shell could not run; it said why above")
	case ws.Exited():
		return fmt.Errorf("the rescue shell crashed (exit status %d: a Go panic or fatal error, such as a stack overflow from a recursion that never ends; its report is above). Type shell to open a new one", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("the rescue shell crashed (killed by %s; SIGKILL may be the kernel out of memory). Type shell to open a new one", unix.SignalName(ws.Signal()))
	}
	return fmt.Errorf("the rescue shell ended with wait status %#x", uint32(ws))
}

// waitPid waits for the child pid to end and reaps it.
func waitPid(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			return ws, err
		}
	}
}

// reaper waits for every child of PID 1. Every orphan of the machine becomes PID 1's child (what
// the shell's commands started and left running), and stays a zombie until PID 1 waits for it;
// so the reaper waits for whichever child ends, as SIGCHLD comes, and hands the shells' ends to
// RunChild. It must be PID 1's only waiter: a wait for one pid elsewhere (os/exec) would race
// with it, and the boot starts no other process.
type reaper struct {
	mu     sync.Mutex
	shells map[int]chan unix.WaitStatus // by pid, the shells RunChild waits for
}

// pid1Reaper starts the reaper when PID 1 starts its first child: before, there are no orphans.
var pid1Reaper = sync.OnceValue(func() *reaper {
	r := &reaper{shells: map[int]chan unix.WaitStatus{}}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGCHLD)
	go func() {
		for range sig {
			r.reap()
		}
	}()
	return r
})

// start runs fork and registers the child it made; under the lock, so that a child that ends at
// once is not reaped before it is known, nor one whose exec failed, which ForkExec reaps itself.
func (r *reaper) start(fork func() (int, error)) (int, func() (unix.WaitStatus, error), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	done := make(chan unix.WaitStatus, 1)
	r.shells[pid] = done
	return pid, func() (unix.WaitStatus, error) { return <-done, nil }, nil
}

// reap waits for every child that has ended. A signal coalesces with one pending, so it goes on
// until none is left. A panic here is reported rather than fatal: the next SIGCHLD reaps again.
func (r *reaper) reap() {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(os.Stderr, "dockerinit: internal error while reaping processes (please report it): %v\n%s", v, debug.Stack())
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return // no child left (ECHILD), or none has ended
		}
		if done, ok := r.shells[pid]; ok {
			done <- ws
			delete(r.shells, pid)
		}
	}
}

// ChildMain is `dockerinit rescue-shell`: the shell on descriptors 0 to 2, for RunChild. It
// returns the process's exit status.
//
// It runs only when RunChild started it: otherwise `dockerinit rescue-shell`, typed in a booted
// system (through a sudo rule that allows dockerinit, say), would be a way around the password. An environment variable or a bare descriptor
// number could be set by anyone; what RunChild hands over cannot: a socket whose peer credentials
// name the parent process, which must run this same program.
func ChildMain() int {
	if err := checkParent(); err != nil {
		fmt.Fprintf(os.Stderr, "dockerinit %s: %v\n", ChildCommand, err)
		return exitCannotRun
	}
	debug.SetMaxStack(childMaxStack)
	err := Run(context.Background(), Options{Console: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Root: "/", System: &Host{}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitCannotRun
	}
	return 0
}

// checkParent reports whether RunChild of this program, in the parent process, started this one.
func checkParent() error {
	const how = "dockerinit starts it itself when `shell` is typed at the prompt of a failed boot (or with dockerinit.rescue), after the rescue password"
	ppid := os.Getppid()
	cred, err := unix.GetsockoptUcred(authFd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	unix.Close(authFd) // the shell's commands must not inherit it
	if err != nil {
		return fmt.Errorf("not started by dockerinit (descriptor %d is not its socket: %v); %s", authFd, err, how)
	}
	if int(cred.Pid) != ppid {
		return fmt.Errorf("not started by dockerinit (the socket on descriptor %d is from pid %d, not from the parent, pid %d); %s", authFd, cred.Pid, ppid, how)
	}
	var self, parent unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return fmt.Errorf("stat /proc/self/exe: %w", err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", ppid), &parent); err != nil {
		return fmt.Errorf("not started by dockerinit (the parent's program, /proc/%d/exe: %v); %s", ppid, err, how)
	}
	if self.Dev != parent.Dev || self.Ino != parent.Ino {
		return fmt.Errorf("not started by dockerinit (the parent, pid %d, runs another program); %s", ppid, how)
	}
	return nil
}
