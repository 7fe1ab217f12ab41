package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// Package init of these modules runs before main on every boot: they
// compile regexps at init, ~28 ms under QEMU TCG. imagestore parses
// references by hand instead (imagestore/ref.go); keep it that way.
func TestInitLeavesOutSlowInitModules(t *testing.T) {
	testenv.Tools(t, "golang", "go")
	gobin, _ := exec.LookPath("go")
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/distribution/reference", "github.com/opencontainers/go-digest"}
	for _, p := range strings.Fields(string(out)) {
		for _, mod := range forbidden {
			if p == mod || strings.HasPrefix(p, mod+"/") {
				t.Errorf("dockerinit depends on %s; PID 1 must not link %s, whose package init slows every boot (see imagestore/ref.go); find which package imports it with `go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/dockerinit`", p, mod)
			}
		}
	}
}
