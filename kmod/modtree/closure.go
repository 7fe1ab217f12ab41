package modtree

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// closure is the set of modules to bundle and the order constraints between them.
type closure struct {
	modules map[string]bool
	builtin map[string]bool     // requested names that are built into the kernel
	forced  map[string]bool     // modules and built-ins to load at every boot: the names and what they need
	after   map[string][]string // module -> modules it needs loaded before it (modules.dep)
	soft    map[string][]string // module -> modules only loaded before it (softdep)
}

// UnknownModulesError lists requested names that are neither a module, an alias nor built in.
type UnknownModulesError struct {
	Names []string
	Kver  string
}

func (e *UnknownModulesError) Error() string {
	return fmt.Sprintf("kernel %s has no module, alias or built-in named %s: check the spelling, or install the package that provides it in the image",
		e.Kver, strings.Join(e.Names, ", "))
}

// resolveClosure resolves the requested names (an unknown optional one is skipped) and adds,
// transitively, the hard dependencies of modules.dep and the soft ones of modules.softdep (an
// unknown soft dependency is skipped, as modprobe does). What names brings in is forced; what
// only optional brings in is not.
func resolveClosure(ix *index, kver string, names, optional []string) (*closure, error) {
	c := &closure{modules: map[string]bool{}, builtin: map[string]bool{}, forced: map[string]bool{}, after: map[string][]string{}, soft: map[string][]string{}}
	type edge struct{ from, to string } // from is loaded after to
	var queue, unknown []string
	var soft []edge
	add := func(mods []string) {
		for _, m := range mods {
			if !c.modules[m] {
				c.modules[m] = true
				queue = append(queue, m)
			}
		}
	}
	resolve := func(list []string, required bool) {
		for _, n := range list {
			mods, builtin := ix.resolve(n)
			switch {
			case builtin != "":
				c.builtin[builtin] = true
				c.forced[builtin] = c.forced[builtin] || required
			case mods != nil:
				add(mods)
			case required:
				unknown = append(unknown, n)
			}
		}
	}
	// addDeps drains the queue, adding what its modules need.
	addDeps := func() error {
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			for _, d := range ix.modules[m].deps {
				if _, ok := ix.modules[d]; !ok {
					return fmt.Errorf("module %s depends on %s, which kernel %s does not have: run depmod %s in the image", m, d, kver, kver)
				}
				add([]string{d})
				c.after[m] = append(c.after[m], d)
			}
			sd := ix.softdeps[m]
			for _, n := range sd.pre {
				mods, _ := ix.resolve(n)
				add(mods)
				for _, d := range mods {
					soft = append(soft, edge{m, d})
				}
			}
			for _, n := range sd.post {
				mods, _ := ix.resolve(n)
				add(mods)
				for _, d := range mods {
					soft = append(soft, edge{d, m})
				}
			}
		}
		return nil
	}
	resolve(names, true)
	if unknown != nil {
		return nil, &UnknownModulesError{Names: unknown, Kver: kver}
	}
	if err := addDeps(); err != nil {
		return nil, err
	}
	for m := range c.modules {
		c.forced[m] = true
	}
	resolve(optional, false)
	if err := addDeps(); err != nil {
		return nil, err
	}
	if cycle := c.findCycle(); cycle != nil {
		return nil, fmt.Errorf("modules.dep of kernel %s has a dependency cycle %s: run depmod %s in the image", kver, strings.Join(cycle, " -> "), kver)
	}
	// Soft dependencies only order loading; one that would close a cycle is dropped, which is
	// what modprobe's recursion guard amounts to. A forced module never waits for an optional
	// one: such an edge comes from the optional module's post: softdep, which modprobe would not
	// follow when loading the forced module either.
	for _, e := range soft {
		if e.from != e.to && !slices.Contains(c.after[e.from], e.to) && !slices.Contains(c.soft[e.from], e.to) &&
			(c.forced[e.to] || !c.forced[e.from]) && !c.reaches(e.to, e.from) {
			c.soft[e.from] = append(c.soft[e.from], e.to)
		}
	}
	return c, nil
}

// reaches reports whether from must be loaded after to, directly or not.
func (c *closure) reaches(from, to string) bool {
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		m := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if m == to {
			return true
		}
		if !seen[m] {
			seen[m] = true
			stack = append(stack, c.after[m]...)
			stack = append(stack, c.soft[m]...)
		}
	}
	return false
}

// findCycle returns a hard dependency cycle as a path that starts and ends with one module, or nil.
func (c *closure) findCycle() []string {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var path []string
	var visit func(string) []string
	visit = func(m string) []string {
		switch state[m] {
		case visiting:
			i := slices.Index(path, m)
			return append(slices.Clone(path[i:]), m)
		case done:
			return nil
		}
		state[m] = visiting
		path = append(path, m)
		for _, d := range c.after[m] {
			if cyc := visit(d); cyc != nil {
				return cyc
			}
		}
		path = path[:len(path)-1]
		state[m] = done
		return nil
	}
	for _, m := range slices.Sorted(maps.Keys(c.modules)) {
		if cyc := visit(m); cyc != nil {
			return cyc
		}
	}
	return nil
}

// plan returns the load plan: built-in modules first, then every module after the modules it
// must follow, ties broken by name so the same closure always gives the same plan.
func (c *closure) plan(ix *index) []modindex.Entry {
	var out []modindex.Entry
	for _, b := range slices.Sorted(maps.Keys(c.builtin)) {
		out = append(out, modindex.Entry{Forced: c.forced[b], Name: b, Path: modindex.Builtin})
	}
	placed := map[string]bool{}
	var place func(string)
	place = func(m string) {
		if placed[m] {
			return
		}
		placed[m] = true
		deps := slices.Compact(slices.Sorted(slices.Values(c.after[m])))
		soft := slices.Sorted(slices.Values(c.soft[m]))
		for _, d := range slices.Concat(deps, soft) {
			place(d)
		}
		out = append(out, modindex.Entry{Forced: c.forced[m], Name: m, Path: stripCompression(ix.modules[m].path), Deps: deps, Soft: soft})
	}
	for _, m := range slices.Sorted(maps.Keys(c.modules)) {
		place(m)
	}
	return out
}
