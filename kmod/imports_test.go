package kmod

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// PID 1 links this package: it must not pull in the decompressors and parsers of kmod/modtree.
func TestBootImportsStaySmall(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go not in PATH: cannot check what the init links")
		}
		t.Skip("SKIPPED, NOT TESTED: go not in PATH: cannot check what the init links")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"golang.org/x/sys/unix":                                   true,
		"github.com/dockerinit/dockerinit/kmod":                   true,
		"github.com/dockerinit/dockerinit/kmod/internal/modindex": true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("kmod depends on %s; the boot half may use only the standard library and x/sys", p)
		}
	}
}
