package modtree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// index is what a kernel's modules directory says about its modules, names normalised.
type index struct {
	modules        map[string]modulePath // loadable modules by name
	softdeps       map[string]softdeps
	aliases        []modindex.Alias // of loadable modules, in file order
	builtin        map[string]bool
	builtinAliases []modindex.Alias
}

// loadIndex reads the depmod files of the kernel modules directory in dir. When depmod never ran
// (modules.dep is missing, as in a kernel package unpacked with dpkg -x), the same facts are
// read from every module's .modinfo instead, which is slower but gives the same closure.
func loadIndex(dir fs.FS, dc *decompressor) (*index, error) {
	ix := &index{}
	var err error
	if ix.builtin, err = parseOptional(dir, "modules.builtin", parseBuiltin); err != nil {
		return nil, err
	}
	if b, err := fs.ReadFile(dir, "modules.builtin.modinfo"); err == nil {
		ix.builtinAliases = builtinAliases(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if ix.modules, err = parseOptional(dir, "modules.dep", parseDep); err != nil {
		return nil, err
	}
	if ix.modules == nil {
		if err := ix.scan(dir, dc); err != nil {
			return nil, fmt.Errorf("no modules.dep (depmod did not run), reading every module's .modinfo instead: %w", err)
		}
		return ix, nil
	}
	if ix.softdeps, err = parseOptional(dir, "modules.softdep", parseSoftdep); err != nil {
		return nil, err
	}
	if ix.aliases, err = parseOptional(dir, "modules.alias", modindex.ParseAliases); err != nil {
		return nil, err
	}
	return ix, nil
}

// parseOptional parses the file name of dir with parse, or returns the zero value if the file
// does not exist.
func parseOptional[T any](dir fs.FS, name string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := dir.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return zero, nil
	}
	if err != nil {
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// scan fills the index from the .modinfo of every module file under dir, as depmod would.
func (ix *index) scan(dir fs.FS, dc *decompressor) error {
	var paths []string
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && isModuleFile(p) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(paths)
	infos := make([][]modinfoField, len(paths))
	err = parallel(len(paths), func(i int) error {
		var err error
		infos[i], err = dc.modinfo(dir, paths[i])
		if err != nil {
			return fmt.Errorf("%s: %w", paths[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ix.modules, ix.softdeps = map[string]modulePath{}, map[string]softdeps{}
	for i, p := range paths {
		name := moduleName(p)
		if old, dup := ix.modules[name]; dup && searchRank(old.path) <= searchRank(p) {
			continue
		}
		mp := modulePath{path: p}
		var sd softdeps
		for _, f := range infos[i] {
			switch f.key {
			case "depends":
				for d := range strings.SplitSeq(f.value, ",") {
					if d != "" {
						mp.deps = append(mp.deps, modindex.Name(d))
					}
				}
			case "softdep":
				sd = addSoftdeps(sd, strings.Fields(f.value))
			case "alias":
				// A pattern with white space could not be written to modules.alias.
				if f.value != "" && !strings.ContainsAny(f.value, " \t\n") {
					ix.aliases = append(ix.aliases, modindex.Alias{Pattern: modindex.Name(f.value), Module: name})
				}
			}
		}
		ix.modules[name] = mp
		ix.softdeps[name] = sd
	}
	return nil
}

// searchRank orders two files of one module name as depmod's default search does: updates/
// first, then the kernel's own tree, then anything else (extra/, ...).
func searchRank(p string) int {
	switch {
	case strings.HasPrefix(p, "updates/"):
		return 0
	case strings.HasPrefix(p, "kernel/"):
		return 1
	}
	return 2
}

// isModuleFile reports whether p names a kernel module, compressed or not.
func isModuleFile(p string) bool {
	b := path.Base(p)
	for _, ext := range []string{".ko", ".ko.gz", ".ko.xz", ".ko.zst"} {
		if strings.HasSuffix(b, ext) {
			return true
		}
	}
	return false
}

// resolve returns what a requested name stands for, in the order kmod looks: a module of that
// name, the modules whose alias patterns match it (all of them, like modprobe), then a built-in
// module of that name or alias. builtin is the built-in module's name; both empty means unknown.
func (ix *index) resolve(name string) (mods []string, builtin string) {
	name = modindex.Name(name)
	if _, ok := ix.modules[name]; ok {
		return []string{name}, ""
	}
	for _, a := range ix.aliases {
		if _, ok := ix.modules[a.Module]; ok && !slices.Contains(mods, a.Module) && modindex.Match(a.Pattern, name) {
			mods = append(mods, a.Module)
		}
	}
	if mods != nil {
		slices.Sort(mods)
		return mods, ""
	}
	if ix.builtin[name] {
		return nil, name
	}
	for _, a := range ix.builtinAliases {
		if modindex.Match(a.Pattern, name) {
			return nil, a.Module
		}
	}
	return nil, ""
}

// aliasesOf returns the alias entries of the closure's modules and built-ins (so that a loader
// asked for "fs-ext4" knows there is nothing to load), grouped by module name and in index order
// within a module, which is the same whether the index came from depmod or a scan.
func (ix *index) aliasesOf(c *closure) []modindex.Alias {
	var out []modindex.Alias
	for _, a := range ix.aliases {
		if c.modules[a.Module] {
			out = append(out, a)
		}
	}
	for _, a := range ix.builtinAliases {
		if c.builtin[a.Module] {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b modindex.Alias) int { return strings.Compare(a.Module, b.Module) })
	return out
}

// firmwareOf returns the firmware= names in a module's .modinfo.
func firmwareOf(info []modinfoField) []string {
	var out []string
	for _, f := range info {
		if f.key == "firmware" && f.value != "" {
			out = append(out, f.value)
		}
	}
	return out
}
