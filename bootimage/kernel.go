package bootimage

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/dockerinit/dockerinit/imageroot"
)

// Kernel is one kernel found in an image root, with the module tree that matches it. Its paths
// are the image's, slash-separated and relative to the image root; read them through it
// (imageroot), which resolves their symlinks inside the image.
type Kernel struct {
	Version string // the directory name under lib/modules
	Image   string // the kernel image, e.g. boot/vmlinuz-6.1.0-28-amd64 or vmlinuz (a link to it)
	Modules string // lib/modules/<Version> or usr/lib/modules/<Version> ("" when the image has none)
}

// modulesDir finds lib/modules/<kver> in an image root (usr/lib/modules on merged-/usr systems).
func modulesDir(img *imageroot.Root, kver string) string {
	for _, dir := range []string{"usr/lib/modules/", "lib/modules/"} {
		if fi, err := img.Stat(dir + kver); err == nil && fi.IsDir() {
			return dir + kver
		}
	}
	return ""
}

// FindKernels lists the kernels of an image root: /boot/vmlinuz-<ver> (Debian, Ubuntu),
// /usr/lib/modules/<ver>/vmlinuz (Arch, Fedora) and /vmlinuz (a link to one of those).
func FindKernels(img *imageroot.Root) ([]Kernel, error) {
	found := map[string]string{} // version -> image path
	add := func(ver, p string) {
		if _, ok := found[ver]; ok || ver == "" {
			return
		}
		if fi, err := img.Stat(p); err == nil && fi.Mode().IsRegular() {
			found[ver] = p
		}
	}
	entries, _ := fs.ReadDir(img, "boot")
	for _, e := range entries {
		if ver, ok := strings.CutPrefix(e.Name(), "vmlinuz-"); ok {
			add(ver, "boot/"+e.Name())
		}
	}
	for _, dir := range []string{"usr/lib/modules", "lib/modules"} {
		entries, _ := fs.ReadDir(img, dir)
		for _, e := range entries {
			add(e.Name(), dir+"/"+e.Name()+"/vmlinuz")
		}
	}
	for _, link := range []string{"vmlinuz", "boot/vmlinuz"} {
		if target, err := img.ReadLink(link); err == nil {
			if ver, ok := strings.CutPrefix(path.Base(target), "vmlinuz-"); ok {
				add(ver, link)
			}
		}
	}
	var out []Kernel
	for ver, p := range found {
		out = append(out, Kernel{Version: ver, Image: p, Modules: modulesDir(img, ver)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// PickKernel chooses the kernel to boot: the one named by version, or the only one there is.
func PickKernel(img *imageroot.Root, version string) (Kernel, error) {
	ks, err := FindKernels(img)
	if err != nil {
		return Kernel{}, err
	}
	var vers []string
	for _, k := range ks {
		if k.Version == version || (version == "" && len(ks) == 1) {
			return k, nil
		}
		vers = append(vers, k.Version)
	}
	switch {
	case len(ks) == 0:
		return Kernel{}, fmt.Errorf("no kernel in the image: looked for /boot/vmlinuz-*, /usr/lib/modules/*/vmlinuz and /vmlinuz; install one in the image (Debian: linux-image-amd64, Arch: linux, Fedora: kernel-core)")
	case version == "":
		return Kernel{}, fmt.Errorf("the image has %d kernels (%s): choose one with --kernel-version", len(ks), strings.Join(vers, ", "))
	}
	return Kernel{}, fmt.Errorf("--kernel-version %s: not in the image, which has %s", version, strings.Join(vers, ", "))
}
