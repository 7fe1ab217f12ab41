// Package modtree owns reading a kernel's module tree at build time: the closure of the modules
// an initramfs needs, from the image's modules.dep, modules.softdep, modules.alias and
// modules.builtin, emitted as decompressed files with their firmware, the load plan kmod runs at
// boot, and a modules.alias trimmed to them for coldplug.
package modtree

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// File is one file for the initramfs. Path is relative to the initramfs root, slash-separated,
// e.g. "lib/modules/6.1.0-28-amd64/kernel/fs/btrfs/btrfs.ko".
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// Bundle returns the files that let kmod.Loader load the named and optional modules, and what
// they need, in an initramfs booted with kernel kver. modulesDir is the image's <root>/lib/modules
// or <root>/usr/lib/modules. Names are module names or aliases ("btrfs", "fs-vfat", "crc32c"; '-'
// and '_' are equal); a built-in one adds nothing to load. The modules of names, with their hard
// and soft dependencies, are marked forced in the load plan: loaded at every boot. The modules of
// optional (e.g. Generic) that are not also forced are only bundled, for the loader to load when
// a device's modalias or a caller asks for them. A name in names that the kernel lacks is an
// error; one in optional is skipped. Modules are decompressed; the firmware they name is taken
// from the firmware directory beside modulesDir when it is there. The output is sorted by path
// and identical for identical inputs.
func Bundle(modulesDir, kver string, names []string, optional ...string) ([]File, error) {
	dir, dc, ix, err := openTree(modulesDir, kver)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	defer dc.Close()
	c, err := resolveClosure(ix, kver, names, optional)
	if err != nil {
		return nil, err
	}
	plan := c.plan(ix)
	prefix := "lib/modules/" + kver + "/"

	var mods []modindex.Entry
	for _, e := range plan {
		if e.Path != modindex.Builtin {
			mods = append(mods, e)
		}
	}
	files := make([]File, len(mods))
	firmware := make([][]string, len(mods))
	err = parallel(len(mods), func(i int) error {
		src := ix.modules[mods[i].Name].path
		data, err := dc.read(dir, src)
		if err != nil {
			return fmt.Errorf("module %s: %w", mods[i].Name, err)
		}
		info, err := readModinfo(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("module %s (%s): %w", mods[i].Name, src, err)
		}
		firmware[i] = firmwareOf(info)
		files[i] = File{Path: prefix + mods[i].Path, Data: data, Mode: 0o644}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", kver, err)
	}

	fw, err := firmwareFiles(filepath.Join(filepath.Dir(modulesDir), "firmware"), slices.Concat(firmware...), dc)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", kver, err)
	}
	files = append(files, fw...)

	var planBuf, aliasBuf bytes.Buffer
	if err := modindex.FormatPlan(&planBuf, kver, plan); err != nil {
		return nil, err
	}
	if err := modindex.FormatAliases(&aliasBuf, ix.aliasesOf(c)); err != nil {
		return nil, err
	}
	files = append(files,
		File{Path: prefix + modindex.PlanFile, Data: planBuf.Bytes(), Mode: 0o644},
		File{Path: prefix + "modules.alias", Data: aliasBuf.Bytes(), Mode: 0o644})
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

// openTree opens the modules directory of kernel kver with a decompressor and reads its index;
// the caller closes dir and dc.
func openTree(modulesDir, kver string) (dir *os.Root, dc *decompressor, ix *index, err error) {
	if dir, err = openModules(modulesDir, kver); err != nil {
		return nil, nil, nil, err
	}
	if dc, err = newDecompressor(); err != nil {
		dir.Close()
		return nil, nil, nil, err
	}
	if ix, err = loadIndex(dir, dc); err != nil {
		dc.Close()
		dir.Close()
		return nil, nil, nil, fmt.Errorf("kernel %s modules: %w", kver, err)
	}
	return dir, dc, ix, nil
}

// openModules opens the modules directory of kernel kver under modulesDir.
func openModules(modulesDir, kver string) (*os.Root, error) {
	if kver == "" || strings.ContainsRune(kver, '/') || !filepath.IsLocal(kver) {
		return nil, fmt.Errorf("kernel version %q: expected a directory name under %s, like 6.1.0-28-amd64", kver, modulesDir)
	}
	dir, err := os.OpenRoot(filepath.Join(modulesDir, kver))
	if err != nil {
		return nil, fmt.Errorf("kernel %s modules: %w (is %s the image's lib/modules, and %s a directory in it?)", kver, err, modulesDir, kver)
	}
	return dir, nil
}

// firmwareFiles returns the firmware files named, decompressed, as lib/firmware/NAME (where the
// kernel's loader looks). A name is found as itself or with a compression suffix; one that is
// missing is skipped, as the driver may not need it on this machine.
func firmwareFiles(fwDir string, names []string, dc *decompressor) ([]File, error) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	if len(names) == 0 {
		return nil, nil
	}
	root, err := os.OpenRoot(fwDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	defer root.Close()
	var out []File
	for _, name := range names {
		if !filepath.IsLocal(name) {
			continue // not a path the kernel would look up under /lib/firmware either
		}
		data, err := root.ReadFile(name)
		for _, ext := range compressions {
			if !errors.Is(err, fs.ErrNotExist) {
				break
			}
			data, err = dc.read(root, name+ext)
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("firmware %s: %w", name, err)
		}
		out = append(out, File{Path: path.Join("lib/firmware", name), Data: data, Mode: 0o644})
	}
	return out, nil
}
