package bootimage

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel is one kernel found in an image root, with the module tree that matches it.
type Kernel struct {
	Version string // the directory name under lib/modules
	Image   string // host path of the kernel image (symlinks resolved inside the image root)
	Modules string // host path of lib/modules/<Version> ("" when the image has none)
}

// resolveIn returns the host path of rel inside root, resolving symlinks as if root were "/":
// an image's absolute symlinks (/vmlinuz -> /boot/...) must not lead to the build host's files.
func resolveIn(root, rel string) (string, error) {
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rootFd)
	fd, err := unix.Openat2(rootFd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return "", &os.PathError{Op: "resolve", Path: path.Join(root, rel), Err: err}
	}
	defer unix.Close(fd)
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", rel, err)
	}
	return p, nil
}

// modulesDir finds lib/modules/<kver> in an image root (usr/lib/modules on merged-/usr systems).
func modulesDir(root, kver string) string {
	for _, dir := range []string{"usr/lib/modules/", "lib/modules/"} {
		if p, err := resolveIn(root, dir+kver); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return p
			}
		}
	}
	return ""
}

// FindKernels lists the kernels of an image root: /boot/vmlinuz-<ver> (Debian, Ubuntu),
// /usr/lib/modules/<ver>/vmlinuz (Arch, Fedora) and /vmlinuz (a link to one of those).
func FindKernels(root string) ([]Kernel, error) {
	found := map[string]string{} // version -> image path
	add := func(ver, rel string) {
		if _, ok := found[ver]; ok || ver == "" {
			return
		}
		if p, err := resolveIn(root, rel); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				found[ver] = p
			}
		}
	}
	for _, dir := range []string{"boot"} {
		p, err := resolveIn(root, dir)
		if err != nil {
			continue
		}
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if ver, ok := strings.CutPrefix(e.Name(), "vmlinuz-"); ok {
				add(ver, dir+"/"+e.Name())
			}
		}
	}
	for _, dir := range []string{"usr/lib/modules", "lib/modules"} {
		p, err := resolveIn(root, dir)
		if err != nil {
			continue
		}
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			add(e.Name(), dir+"/"+e.Name()+"/vmlinuz")
		}
	}
	for _, link := range []string{"vmlinuz", "boot/vmlinuz"} {
		if target, err := os.Readlink(path.Join(root, link)); err == nil {
			if ver, ok := strings.CutPrefix(path.Base(target), "vmlinuz-"); ok {
				add(ver, link)
			}
		}
	}
	var out []Kernel
	for ver, img := range found {
		out = append(out, Kernel{Version: ver, Image: img, Modules: modulesDir(root, ver)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// PickKernel chooses the kernel to boot: the one named by version, or the only one there is.
func PickKernel(root, version string) (Kernel, error) {
	ks, err := FindKernels(root)
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
