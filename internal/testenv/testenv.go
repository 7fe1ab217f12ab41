// Package testenv owns the one rule for tests that need something of the machine (root, a tool,
// QEMU): outside CI they skip with a loud reason, in CI (CI=true) they fail, so a skipped
// assertion is never passed off as green.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
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
