// Package testenv owns the one rule for tests that need something of the machine (root, a tool,
// QEMU): outside CI they skip with a loud reason, in CI (CI=true) they fail, so a skipped
// assertion is never passed off as green.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need stops the test unless ok: a failure in CI, a loud skip elsewhere.
func Need(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	msg := "THIS TEST DID NOT RUN: it needs " + what
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Root needs the test to run as root; why says what for.
func Root(t testing.TB, why string) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "root ("+why+")")
}

// Tools needs every tool on $PATH; install names the Debian packages that hold them.
func Tools(t testing.TB, install string, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	Need(t, len(missing) == 0, strings.Join(missing, ", ")+" (apt-get install "+install+")")
}

// Daemon starts a daemon (dockerd, containerd) whose output goes to log, and stops it when the
// test ends: SIGTERM, then SIGKILL after 20 s. ready is polled until it succeeds (at most 30 s).
func Daemon(t testing.TB, log string, ready func() error, name string, args ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop within 20 s of SIGTERM; killing it", name)
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-exited:
			data, _ := os.ReadFile(log)
			t.Fatalf("%s exited while starting: %s", name, data)
		default:
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(log)
			t.Fatalf("%s did not answer within 30 s: %v\n%s", name, err, data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
