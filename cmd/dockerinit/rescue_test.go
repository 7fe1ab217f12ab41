package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// TestRescueShellIsNoBackdoor runs the hidden `dockerinit rescue-shell` as someone in a booted
// system could: it must refuse and run no shell, since only PID 1 starts it, after the password.
func TestRescueShellIsNoBackdoor(t *testing.T) {
	testenv.Tools(t, "golang", "go")
	bin := filepath.Join(t.TempDir(), "dockerinit")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		args                []string
		wantStatus          int
		wantOut, notWantOut string
	}{
		{[]string{"rescue-shell"}, 1, "dockerinit rescue-shell: not started by dockerinit", "SHELL-RAN"},
		{[]string{"help"}, 2, "dockerinit status", "rescue-shell"}, // hidden from the usage
	} {
		c := exec.Command(bin, tt.args...)
		c.Stdin = strings.NewReader("echo SHELL-RAN\n")
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tt.wantStatus {
			t.Errorf("dockerinit %s: %v, want exit status %d", tt.args, err, tt.wantStatus)
		}
		if !strings.Contains(string(out), tt.wantOut) || strings.Contains(string(out), tt.notWantOut) {
			t.Errorf("dockerinit %s printed:\n%s\nwant %q and not %q", tt.args, out, tt.wantOut, tt.notWantOut)
		}
	}
}
