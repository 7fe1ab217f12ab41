package kmod

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// PID 1 links this package: it must not pull in the decompressors and parsers of kmod/modtree.
func TestBootImportsStaySmall(t *testing.T) {
	testenv.Tools(t, "golang", "go")
	gobin, _ := exec.LookPath("go")
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"golang.org/x/sys/unix":                                   true,
		"github.com/dockerinit/dockerinit/kmod":                   true,
		"github.com/dockerinit/dockerinit/kmod/internal/modindex": true,
		"github.com/dockerinit/dockerinit/internal/uevent":        true, // stdlib + x/sys too
		"github.com/dockerinit/dockerinit/internal/safego":        true, // stdlib only
		"github.com/dockerinit/dockerinit/internal/smallfile":     true, // stdlib only
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("kmod depends on %s; the boot half may use only the standard library and x/sys", p)
		}
	}
}
