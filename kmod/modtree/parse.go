package modtree

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// moduleName returns the normalised name of the module at path p: its base name up to ".ko".
func moduleName(p string) string {
	base := path.Base(p)
	if i := strings.Index(base, ".ko"); i > 0 {
		base = base[:i]
	}
	return modindex.Name(base)
}

// modulePath is one modules.dep line: a module's path relative to the kernel's modules
// directory, and the modules it needs loaded first.
type modulePath struct {
	path string
	deps []string // names
}

// parseDep reads modules.dep, "PATH: DEPPATH...", into name -> path and dependency names.
// depmod lists dependencies transitively, which is fine for ordering.
func parseDep(r io.Reader) (map[string]modulePath, error) {
	out := map[string]modulePath{}
	err := modindex.Lines(r, "modules.dep", func(n int, line string) error {
		p, rest, ok := strings.Cut(line, ":")
		p = strings.TrimSpace(p)
		if !ok || p == "" || !strings.Contains(path.Base(p), ".ko") {
			return fmt.Errorf("modules.dep line %d: expected \"PATH.ko: DEP.ko...\", found %q", n, line)
		}
		if !filepath.IsLocal(p) {
			return fmt.Errorf("modules.dep line %d: path %q is not relative to the modules directory: run a current depmod in the image", n, p)
		}
		mp := modulePath{path: p}
		for _, d := range strings.Fields(rest) {
			mp.deps = append(mp.deps, moduleName(d))
		}
		name := moduleName(p)
		if _, dup := out[name]; dup {
			return fmt.Errorf("modules.dep line %d: module %s listed twice", n, name)
		}
		out[name] = mp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// softdeps are a module's soft dependencies, as names or aliases to resolve: pre are loaded
// before it, post after it.
type softdeps struct{ pre, post []string }

// parseSoftdep reads modules.softdep, lines "softdep MODULE [pre: NAME...] [post: NAME...]"; a
// module may have several lines.
func parseSoftdep(r io.Reader) (map[string]softdeps, error) {
	out := map[string]softdeps{}
	err := modindex.Lines(r, "modules.softdep", func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return fmt.Errorf("modules.softdep line %d: expected \"softdep MODULE pre: ... post: ...\", found %q", n, line)
		}
		name := modindex.Name(f[1])
		out[name] = addSoftdeps(out[name], f[2:])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// addSoftdeps adds the words of "pre: a b post: c" (a modinfo softdep= value, or a
// modules.softdep line after the module name) to sd. Words before any "pre:" or "post:" are
// ignored, as kmod does: some modules (cifs) declare softdep=gcm, which modprobe never loads.
func addSoftdeps(sd softdeps, words []string) softdeps {
	var list *[]string
	for _, w := range words {
		switch {
		case w == "pre:":
			list = &sd.pre
		case w == "post:":
			list = &sd.post
		case list != nil:
			*list = append(*list, modindex.Name(w))
		}
	}
	return sd
}

// parseBuiltin reads modules.builtin, one path a line, into the set of built-in module names.
func parseBuiltin(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	err := modindex.Lines(r, "modules.builtin", func(_ int, line string) error {
		out[moduleName(line)] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// modinfoField is one "key=value" string of a module's .modinfo section.
type modinfoField struct{ key, value string }

// parseModinfo splits a .modinfo section (NUL-separated "key=value" strings, with NUL padding)
// into its fields; strings without '=' are skipped.
func parseModinfo(b []byte) []modinfoField {
	var out []modinfoField
	for s := range bytes.SplitSeq(b, []byte{0}) {
		if k, v, ok := bytes.Cut(s, []byte{'='}); ok && len(k) > 0 {
			out = append(out, modinfoField{string(k), string(v)})
		}
	}
	return out
}

// readModinfo returns the fields of the .modinfo section of the ELF module in r.
func readModinfo(r io.ReaderAt) ([]modinfoField, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF kernel module: %w", err)
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("no .modinfo section: not a kernel module")
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo: %w", err)
	}
	return parseModinfo(b), nil
}

// builtinAliases reads modules.builtin.modinfo, the .modinfo fields of built-in modules as
// "module.key=value" strings, and returns their aliases.
func builtinAliases(b []byte) []modindex.Alias {
	var out []modindex.Alias
	for _, f := range parseModinfo(b) {
		if mod, key, ok := strings.Cut(f.key, "."); ok && key == "alias" && mod != "" && f.value != "" {
			out = append(out, modindex.Alias{Pattern: modindex.Name(f.value), Module: modindex.Name(mod)})
		}
	}
	return out
}
