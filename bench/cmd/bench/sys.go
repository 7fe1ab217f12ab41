package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/hostdeps"
)

var started = time.Now()

// logf says what the bench is doing, with the time since it started: a run takes many minutes.
func logf(format string, a ...any) {
	el := time.Since(started).Round(time.Second)
	fmt.Fprintf(os.Stderr, "bench [%02d:%02d] %s\n", int(el.Minutes()), int(el.Seconds())%60, fmt.Sprintf(format, a...))
}

// missingPackages names, once each, the Debian packages of the list make deps installs
// (internal/hostdeps) with a command that lookPath cannot find.
func missingPackages(lookPath func(string) (string, error)) []string {
	return hostdeps.Missing(lookPath)
}

// output runs a command and returns its stdout; on failure the error holds its stderr.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// runLogged runs a command with its output appended to logPath; on failure the error holds the
// log's last lines.
func runLogged(ctx context.Context, logPath string, cmd *exec.Cmd) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n$ %s\n", strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w; last lines of %s:\n%s", strings.Join(cmd.Args, " "), err, logPath, tail(logPath, 15))
	}
	return ctx.Err()
}

// timed runs cmd (output to logPath) and returns its wall-clock time in seconds.
func timed(ctx context.Context, logPath string, cmd *exec.Cmd) (float64, error) {
	start := time.Now()
	err := runLogged(ctx, logPath, cmd)
	return time.Since(start).Seconds(), err
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// undo is the cleanup of everything the bench set up, run in reverse order at the end, on
// failure and on Ctrl-C: unmounts before the removal of what was mounted on.
type undo struct{ steps []func() error }

func (u *undo) push(f func() error) { u.steps = append(u.steps, f) }

func (u *undo) run() {
	for i := len(u.steps) - 1; i >= 0; i-- {
		if err := u.steps[i](); err != nil {
			logf("cleanup: %v", err)
		}
	}
	u.steps = nil
}

// mount mounts with mount(8) (which sets up loop devices) and unmounts at cleanup; the returned
// function unmounts earlier, once.
func (u *undo) mount(ctx context.Context, dir string, args ...string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := output(ctx, "mount", append(args, dir)...); err != nil {
		return nil, err
	}
	done := false
	unmount := func() error {
		if done {
			return nil
		}
		done = true
		return unmountDir(dir)
	}
	u.push(unmount)
	return unmount, nil
}

// unmountDir unmounts dir, detaching it lazily if it is still busy so that nothing can later be
// removed through it.
func unmountDir(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// removeTree deletes dir, after checking that nothing is mounted below it: a chroot's /dev or
// /proc left mounted must stop the removal, not be emptied through it.
func removeTree(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounted, err := mountsBelow(abs)
	if err != nil {
		return err
	}
	if len(mounted) > 0 {
		return fmt.Errorf("not removing %s: %s still mounted below it; unmount by hand (umount -R %s) and remove it",
			abs, strings.Join(mounted, ", "), abs)
	}
	return os.RemoveAll(abs)
}

// mountsBelow lists the mount points at or below dir, from /proc/self/mountinfo.
func mountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// syncfs flushes the file system holding path, so that a timed copy includes its writes.
func syncfs(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// lockFixture takes the fixture's lock, which the QEMU tests and make demo hold while they
// write to its disk, and returns its release.
func lockFixture(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the fixture: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		logf("waiting for another user of %s (a test run or make demo) to finish", dir)
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock the fixture %s: %w", dir, err)
		}
	}
	return func() { f.Close() }, nil
}
