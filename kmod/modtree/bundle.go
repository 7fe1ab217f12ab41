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
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/dockerinit/dockerinit/imageroot"
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
// they need, in an initramfs booted with kernel kver. img is the image's root and modulesDir the
// path of its lib/modules in it: lib/modules, or usr/lib/modules on merged-/usr systems. Every
// path, and every symlink met on the way, resolves inside img, as it will once the image is "/":
// an image's links never lead to the build host's files. Names are module names or aliases
// ("btrfs", "fs-vfat", "crc32c"; '-' and '_' are equal); a built-in one adds nothing to load.
// The modules of names, with their hard and soft dependencies, are marked forced in the load
// plan: loaded at every boot. The modules of optional (e.g. Generic) that are not also forced are
// only bundled, for the loader to load when a device's modalias or a caller asks for them. A name
// in names that the kernel lacks is an error; one in optional is skipped. Modules are
// decompressed; the firmware they name is taken from the firmware directory beside modulesDir
// (lib/firmware) when it is there. The output is sorted by path and identical for identical
// inputs.
func Bundle(img *imageroot.Root, modulesDir, kver string, names []string, optional ...string) ([]File, error) {
	dir, dc, ix, err := openTree(img, modulesDir, kver)
	if err != nil {
		return nil, err
	}
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

	fw, err := firmwareFiles(img, path.Join(path.Dir(modulesDir), "firmware"), slices.Concat(firmware...), dc)
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
// the caller closes dc.
func openTree(img *imageroot.Root, modulesDir, kver string) (dir fs.FS, dc *decompressor, ix *index, err error) {
	if dir, err = openModules(img, modulesDir, kver); err != nil {
		return nil, nil, nil, err
	}
	if dc, err = newDecompressor(); err != nil {
		return nil, nil, nil, err
	}
	if ix, err = loadIndex(dir, dc); err != nil {
		dc.Close()
		return nil, nil, nil, fmt.Errorf("kernel %s modules: %w", kver, err)
	}
	return dir, dc, ix, nil
}

// openModules returns the modules directory of kernel kver under modulesDir in img.
func openModules(img *imageroot.Root, modulesDir, kver string) (fs.FS, error) {
	if kver == "" || strings.ContainsRune(kver, '/') || !filepath.IsLocal(kver) {
		return nil, fmt.Errorf("kernel version %q: expected a directory name under %s, like 6.1.0-28-amd64", kver, modulesDir)
	}
	p := path.Join(modulesDir, kver)
	fi, err := img.Stat(p)
	if err == nil && !fi.IsDir() {
		err = &fs.PathError{Op: "open", Path: p, Err: syscall.ENOTDIR}
	}
	if err != nil {
		return nil, fmt.Errorf("kernel %s modules: %w (is %s the image's lib/modules, and %s a directory in it?)", kver, err, modulesDir, kver)
	}
	return fs.Sub(img, p)
}

// firmwareFiles returns the firmware files named, decompressed, as lib/firmware/NAME (where the
// kernel's loader looks), from the directory fwDir of img. A name is found as itself or with a
// compression suffix; one that is missing is skipped, as the driver may not need it on this
// machine.
func firmwareFiles(img *imageroot.Root, fwDir string, names []string, dc *decompressor) ([]File, error) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	if len(names) == 0 {
		return nil, nil
	}
	fw, err := fs.Sub(img, fwDir)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	var out []File
	for _, name := range names {
		if !fs.ValidPath(name) || name == "." {
			continue // not a path the kernel would look up under /lib/firmware either
		}
		data, err := fs.ReadFile(fw, name)
		for _, ext := range compressions {
			if !errors.Is(err, fs.ErrNotExist) {
				break
			}
			data, err = dc.read(fw, name+ext)
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("firmware %s (in the image's %s): %w", name, fwDir, err)
		}
		out = append(out, File{Path: path.Join("lib/firmware", name), Data: data, Mode: 0o644})
	}
	return out, nil
}
