// Package hostdeps is the one list of the Debian packages this project needs on the machine
// that builds and tests it (the file packages beside this one), for the Go code that checks
// them before it starts. qemu-tests/deps.sh installs the same list.
package hostdeps

import (
	_ "embed"
	"slices"
	"strings"
)

//go:embed packages
var list string

// Package is one line of the list.
type Package struct {
	Name string
	// Commands tell that the package is installed: names looked up on $PATH, or absolute paths.
	Commands []string
}

// Packages returns the list, in its order.
func Packages() []Package {
	var pkgs []Package
	for line := range strings.Lines(list) {
		line, _, _ = strings.Cut(line, "#")
		if f := strings.Fields(line); len(f) > 0 {
			pkgs = append(pkgs, Package{Name: f[0], Commands: f[1:]})
		}
	}
	return pkgs
}

// Missing names, once each and in the list's order, the packages with a command that lookPath
// cannot find; nil when there is none.
func Missing(lookPath func(string) (string, error)) []string {
	var missing []string
	for _, p := range Packages() {
		for _, c := range p.Commands {
			if _, err := lookPath(c); err != nil && !slices.Contains(missing, p.Name) {
				missing = append(missing, p.Name)
			}
		}
	}
	return missing
}
