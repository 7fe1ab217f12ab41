package bench

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The floor is the bench's tiny static /init (bench/floor/floor.c): the least any initramfs must do
// on the bench's kernel and VM to reach the same real init on the same disk. What it loads comes
// from a boot of dockerinit's own initramfs, which prints /proc/modules between these markers
// (FloorModulesCmdline), so that the floor loads exactly what dockerinit loaded on this VM, and no
// list kept by hand can drift from it.
const (
	FloorName = "floor"
	// GoFloorName is the floor's work done in Go (bench/floor/gofloor).
	GoFloorName = "floor (Go)"
	// FloorFirstLine is the floor's kernel log line as it starts, its counterpart of dockerinit's
	// first line: Boot.FirstLineS reads either.
	FloorFirstLine     = "floor: /init started"
	floorModulesBegin  = "DIFLOOR modules"
	floorModulesEnd    = "DIFLOOR end"
	floorPlanComment   = "#"
	floorPlanForced    = "forced"
	floorPlanOptional  = "optional"
	floorPlanBuiltin   = "builtin"
	floorPlanSoftDepOf = "soft:"
)

// FloorModulesInit is the init= and init arguments of the boot that reads the modules dockerinit
// loaded: the image's shell prints the start marker ParseBoot wants, /proc/modules between the
// markers, and powers off. The kernel hands the quoted words after "--" to dockerinit, which
// passes them on to the real init. The markers are split by ” in the command, which the shell
// joins, since the kernel echoes its command line on the console, where they must not count.
func FloorModulesInit() string {
	split := func(marker string) string { return marker[:len(marker)-2] + "''" + marker[len(marker)-2:] }
	return `init=/bin/sh -- -c "echo ` + split(startMarker) + `$(cat /proc/uptime); echo ` + split(floorModulesBegin) +
		`; cat /proc/modules; echo ` + split(floorModulesEnd) + `; echo o >/proc/sysrq-trigger; sleep 60"`
}

// ParseLoadedModules reads the module names between the floor markers of a console, in the order
// /proc/modules lists them.
func ParseLoadedModules(console []byte) ([]string, error) {
	var names []string
	in, ended := false, false
	for line := range strings.Lines(string(console)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case !in && strings.HasSuffix(line, floorModulesBegin):
			in = true
		case in && strings.HasSuffix(line, floorModulesEnd):
			in, ended = false, true
		case in:
			// "btrfs 1646592 0 - Live 0x0000000000000000", kernel lines may interleave.
			f := strings.Fields(line)
			if len(f) >= 3 && !strings.HasPrefix(line, "[") {
				if _, err := strconv.Atoi(f[1]); err == nil {
					names = append(names, f[0])
				}
			}
		}
		if ended {
			break
		}
	}
	switch {
	case !ended:
		return nil, fmt.Errorf("the console has no %q ... %q block: the boot did not print /proc/modules", floorModulesBegin, floorModulesEnd)
	case len(names) == 0:
		return nil, fmt.Errorf("/proc/modules was empty after dockerinit's boot: nothing for the floor to load")
	}
	return names, nil
}

// PlanEntry is one line of dockerinit's load plan (lib/modules/<kver>/dockerinit.modules, written
// by kmod/modtree): "forced|optional NAME PATH [DEP...] [soft:DEP...]", dependencies first.
type PlanEntry struct {
	Name string
	Path string   // relative to lib/modules/<kver>/, or "builtin"
	Deps []string // hard and soft: the loader starts a module after both
}

// ParsePlan reads a load plan as the bench needs it.
func ParsePlan(text string) ([]PlanEntry, error) {
	var out []PlanEntry
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, floorPlanComment) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != floorPlanForced && f[0] != floorPlanOptional) {
			return nil, fmt.Errorf("load plan line %d: want \"forced|optional NAME PATH [DEP...]\", found %q", n+1, line)
		}
		e := PlanEntry{Name: f[1], Path: f[2]}
		for _, d := range f[3:] {
			e.Deps = append(e.Deps, strings.TrimPrefix(d, floorPlanSoftDepOf))
		}
		out = append(out, e)
	}
	return out, nil
}

// FloorModule is one module the floor loads: its path in the initramfs and the positions, in the
// floor's list, of the modules it waits for.
type FloorModule struct {
	Name string
	Path string // lib/modules/<kver>/...
	Deps []int
}

// FloorModules is the floor's load list: the modules loaded (names from /proc/modules), in plan
// order, each waiting for those of its plan dependencies that were loaded too (a soft dependency
// that failed, as crc32c_intel does on a CPU without SSE4.2, is not waited for). A loaded module
// the plan does not hold, or holds as built in, is an error: the list and the plan disagree.
func FloorModules(plan []PlanEntry, loaded []string, kver string) ([]FloorModule, error) {
	isLoaded := map[string]bool{}
	for _, n := range loaded {
		isLoaded[n] = true
	}
	pos := map[string]int{}
	var out []FloorModule
	for _, e := range plan {
		if !isLoaded[e.Name] {
			continue
		}
		if e.Path == floorPlanBuiltin {
			return nil, fmt.Errorf("module %s is loaded but the load plan says it is built in", e.Name)
		}
		m := FloorModule{Name: e.Name, Path: "lib/modules/" + kver + "/" + e.Path}
		for _, d := range e.Deps {
			if i, ok := pos[d]; ok {
				m.Deps = append(m.Deps, i)
			}
		}
		pos[e.Name] = len(out)
		out = append(out, m)
	}
	var stray []string
	for _, n := range loaded {
		if _, ok := pos[n]; !ok {
			stray = append(stray, n)
		}
	}
	if len(stray) > 0 {
		slices.Sort(stray)
		return nil, fmt.Errorf("loaded modules %s are not in dockerinit's load plan", strings.Join(stray, ", "))
	}
	return out, nil
}

// FloorRoot is what the floor mounts and runs: the root device node, its file system and mount
// options, and the real init.
type FloorRoot struct {
	Device, FSType, Options, Init string
}

// FloorHeader is bench/floor/plan.h for mods and root: the floor's whole configuration, compiled
// in so that it reads nothing at boot.
func FloorHeader(mods []FloorModule, root FloorRoot) (string, error) {
	fsModule, err := checkFloor(mods, root)
	if err != nil {
		return "", err
	}
	maxDeps := 0
	for _, m := range mods {
		maxDeps = max(maxDeps, len(m.Deps))
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("/* Generated by make bench (bench/floor.go): the floor's modules and root. */\n")
	p("#define ROOT_DEV %s\n#define ROOT_FSTYPE %s\n#define ROOT_OPTS %s\n#define REAL_INIT %s\n",
		cString(root.Device), cString(root.FSType), cString(root.Options), cString(root.Init))
	p("#define FLOOR_FIRST_LINE %s\n", cString(FloorFirstLine))
	p("#define FS_MODULE %d\n#define MAX_DEPS %d\n#define MODULES { \\\n", fsModule, maxDeps+1)
	for i, m := range mods {
		deps := ""
		for _, d := range m.Deps {
			deps += strconv.Itoa(d) + ", "
		}
		p("\t{ %s, { %s-1 } }, /* %d %s */ \\\n", cString("/"+m.Path), deps, i, m.Name)
	}
	p("}\n")
	return b.String(), nil
}

// GoFloorLdflags is the -ldflags value that gives bench/floor/gofloor the same configuration as
// FloorHeader gives the C floor: each value set with -X, so that it too reads nothing at boot.
// The go command splits the value at white space outside quotes, so a value holding white space
// is single-quoted, and one holding a quote refused.
func GoFloorLdflags(mods []FloorModule, root FloorRoot) (string, error) {
	fsModule, err := checkFloor(mods, root)
	if err != nil {
		return "", err
	}
	var list []string
	for _, m := range mods {
		var deps []string
		for _, d := range m.Deps {
			deps = append(deps, strconv.Itoa(d))
		}
		list = append(list, "/"+m.Path+":"+strings.Join(deps, ","))
	}
	flags := []string{"-s", "-w"}
	for _, v := range []struct{ name, value string }{
		{"modules", strings.Join(list, ";")}, {"rootDev", root.Device}, {"rootFSType", root.FSType},
		{"rootOpts", root.Options}, {"realInit", root.Init}, {"fsModule", strconv.Itoa(fsModule)},
		{"firstLine", FloorFirstLine},
	} {
		if strings.ContainsAny(v.value, "\n'\"") {
			return "", fmt.Errorf("the Go floor's %s %q holds a quote or a line break, which -ldflags cannot pass", v.name, v.value)
		}
		arg := "main." + v.name + "=" + v.value
		if strings.ContainsAny(arg, " \t") {
			arg = "'" + arg + "'"
		}
		flags = append(flags, "-X", arg)
	}
	return strings.Join(flags, " "), nil
}

// checkFloor refuses a floor that could not boot: no modules, or a module waiting for a later
// one. It returns the position of root's file system module, -1 when it is built in.
func checkFloor(mods []FloorModule, root FloorRoot) (int, error) {
	if len(mods) == 0 {
		return 0, fmt.Errorf("no modules: the floor loads what dockerinit loaded, and that was nothing")
	}
	for i, m := range mods {
		for _, d := range m.Deps {
			if d >= i {
				return 0, fmt.Errorf("module %s waits for a later one: the list is not in dependency order", m.Name)
			}
		}
	}
	return slices.IndexFunc(mods, func(m FloorModule) bool { return m.Name == root.FSType }), nil
}

// cString quotes s as a C string literal.
func cString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
