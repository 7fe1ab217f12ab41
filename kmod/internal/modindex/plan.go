package modindex

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// PlanFile is the load plan's name inside lib/modules/<kver>/ of the initramfs.
const PlanFile = "dockerinit.modules"

// Builtin stands in the path column of a plan line for a module compiled into the kernel: it is
// listed so the boot report can say so, and there is nothing to load.
const Builtin = "builtin"

// Entry is one plan line, "forced|optional NAME PATH [DEP...] [soft:DEP...]". Path is relative to
// lib/modules/<kver>/ (or Builtin). Deps and Soft name entries that appear earlier in the plan:
// the module needs Deps loaded (modules.dep), and only comes after Soft (softdep), which may fail
// without harm, as crc32c_intel does on a CPU without SSE4.2. A Forced module is loaded at every
// boot (it was asked for at build time, or one that was needs it); the others only for a device
// or when asked for by name. A forced module depends only on forced ones.
type Entry struct {
	Forced bool
	Name   string
	Path   string
	Deps   []string
	Soft   []string
}

const (
	softPrefix = "soft:"
	forced     = "forced"
	optional   = "optional"
)

// FormatPlan writes entries, which must already be in dependency order, one line each.
func FormatPlan(w io.Writer, kver string, entries []Entry) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# dockerinit load plan for kernel %s: forced|optional NAME PATH [DEP...] [soft:DEP...], dependencies first\n", kver)
	for _, e := range entries {
		kind := optional
		if e.Forced {
			kind = forced
		}
		line := append([]string{kind, e.Name, e.Path}, e.Deps...)
		for _, s := range e.Soft {
			line = append(line, softPrefix+s)
		}
		fmt.Fprintln(bw, strings.Join(line, " "))
	}
	return bw.Flush()
}

// ParsePlan reads a plan and checks that every name is unique and every dependency is listed
// before it, which also rules out cycles: a loader may then wait on dependencies without deadlock.
// It also checks that forced modules depend only on forced ones, so loading the forced modules
// never drags in an optional one.
func ParsePlan(r io.Reader) ([]Entry, error) {
	var out []Entry
	isForced := map[string]bool{}
	err := Lines(r, "plan", func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != forced && f[0] != optional) {
			return fmt.Errorf("plan line %d: expected \"forced|optional NAME PATH [DEP...]\", found %q; rebuild the initramfs with mkbootimg", n, line)
		}
		e := Entry{Forced: f[0] == forced, Name: f[1], Path: f[2]}
		for _, d := range f[3:] {
			if s, ok := strings.CutPrefix(d, softPrefix); ok {
				e.Soft = append(e.Soft, s)
			} else {
				e.Deps = append(e.Deps, d)
			}
		}
		if e.Path != Builtin && !filepath.IsLocal(e.Path) {
			return fmt.Errorf("plan line %d: module path %q leaves the modules directory", n, e.Path)
		}
		if _, dup := isForced[e.Name]; dup {
			return fmt.Errorf("plan line %d: module %s listed twice", n, e.Name)
		}
		for _, d := range slices.Concat(e.Deps, e.Soft) {
			depForced, listed := isForced[d]
			if !listed {
				return fmt.Errorf("plan line %d: %s depends on %s, which is not listed before it; rebuild the initramfs with mkbootimg", n, e.Name, d)
			}
			if e.Forced && !depForced {
				return fmt.Errorf("plan line %d: forced module %s depends on %s, which is optional; rebuild the initramfs with mkbootimg", n, e.Name, d)
			}
		}
		isForced[e.Name] = e.Forced
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
