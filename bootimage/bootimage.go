// Package bootimage assembles what boots an image: the image's own kernel, and an initramfs
// holding dockerinit, its configuration and the kernel's modules, so that kernel, initramfs and
// /lib/modules always match. It only reads the image (and the Docker root it lives in).
package bootimage

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/imageroot"
	"github.com/dockerinit/dockerinit/imagestore"
	"github.com/dockerinit/dockerinit/initramfs"
	"github.com/dockerinit/dockerinit/internal/atomicfile"
	"github.com/dockerinit/dockerinit/kmod/modtree"
)

// Options say what to build from and where to write.
type Options struct {
	DockerRoot string // with Image: read the image's root straight from the Docker data root
	Image      string
	RootFS     string // or: an unpacked root file system
	Kernel     string // kernel version to use when the image has several
	Init       string // the dockerinit binary to put at /init
	Config     bootparam.Config
	Modules    []string // module names or aliases to add to the module set
	NoModules  bool     // kernels with everything built in
	HostSys    string   // bundle only what the machine with this sysfs (/sys) uses: --modules host
	Out        string   // directory for vmlinuz and initramfs.img
}

// Result says what was written.
type Result struct {
	Image         string // the image reference, if any
	ImageID       string
	Kernel        Kernel
	VMLinuz       string
	Initramfs     string
	InitramfsSize int64
	Modules       int    // module files in the initramfs
	Cmdline       string // the kernel command line to boot with
	OSRelease     []byte // the image's os-release, nil when it has none (for a UKI's .osrel)
}

// Build writes Out/vmlinuz and Out/initramfs.img, as one pair as far as two fixed names allow
// (see writeFiles).
func Build(o Options) (*Result, error) {
	if o.Out == "" {
		return nil, fmt.Errorf("no output directory: pass --out DIR")
	}
	res := &Result{}
	root, forced, done, err := o.imageRoot(res)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := o.refuseOutputInside(); err != nil {
		return nil, err
	}
	// Every read of the image goes through image: its symlinks resolve inside it, never on the host.
	image, err := imageroot.Open(root)
	if err != nil {
		return nil, err
	}
	defer image.Close()
	k, err := PickKernel(image, o.Kernel)
	if err != nil {
		return nil, err
	}
	res.Kernel = k
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, err := fs.ReadFile(image, p); err == nil {
			res.OSRelease = b
			break
		}
	}
	cfg := o.Config
	if o.Image != "" {
		cfg.Image = o.Image
	}
	res.Cmdline = Cmdline(cfg, o.DockerRoot)
	// Validate the configuration as the init will see it: embedded TOML + the printed command line.
	if _, err := bootparam.Resolve(cfg, "", res.Cmdline); err != nil {
		return nil, fmt.Errorf("the boot configuration would not boot: %w", err)
	}
	toml, err := cfg.Encode()
	if err != nil {
		return nil, err
	}
	initBin, err := os.ReadFile(o.Init)
	if err != nil {
		return nil, fmt.Errorf("read the dockerinit binary: %w (build it with `make build`, or pass --init PATH)", err)
	}
	entries := append(initramfs.Base(),
		initramfs.File("init", 0o755, initBin),
		initramfs.File("etc/dockerinit.toml", 0o644, toml),
	)
	if !o.NoModules {
		if k.Modules == "" {
			return nil, fmt.Errorf("the image has kernel %s but no lib/modules/%s: install the kernel's modules in the image, or pass --modules none for a kernel with everything built in", k.Version, k.Version)
		}
		// The store's file system (and overlayfs) is always loaded; the generic set (or this machine's share of it) is bundled and
		// loaded only for the hardware present.
		optional := modtree.Generic
		if o.HostSys != "" {
			if optional, err = modtree.Host(image, path.Dir(k.Modules), k.Version, o.HostSys); err != nil {
				return nil, fmt.Errorf("--modules host: %w", err)
			}
		}
		files, err := modtree.Bundle(image, path.Dir(k.Modules), k.Version, append(forced, o.Modules...), optional...)
		if err != nil {
			return nil, fmt.Errorf("modules of kernel %s: %w", k.Version, err)
		}
		for _, f := range files {
			entries = append(entries, initramfs.File(f.Path, f.Mode.Perm(), f.Data))
			if strings.HasSuffix(f.Path, ".ko") {
				res.Modules++
			}
		}
	}
	var img bytes.Buffer
	if err := initramfs.Write(&img, entries); err != nil {
		return nil, err
	}
	kernel, err := fs.ReadFile(image, k.Image)
	if err != nil {
		return nil, fmt.Errorf("read kernel %s of the image: %w", k.Version, err)
	}
	if err := atomicfile.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	res.VMLinuz, res.Initramfs = filepath.Join(o.Out, "vmlinuz"), filepath.Join(o.Out, "initramfs.img")
	// The initramfs is 0600: its dockerinit.toml may hold the rescue shell's password hash.
	if err := writeFiles(o.Out, outFile{"vmlinuz", kernel, 0o644}, outFile{"initramfs.img", img.Bytes(), 0o600}); err != nil {
		return nil, err
	}
	res.InitramfsSize = int64(img.Len())
	return res, nil
}

// imageRoot returns the host path of the root file system to take the kernel from, the modules
// every boot loads (the store's file system, and overlayfs for a store of layers), and what
// undoes the mount of the image's layers.
func (o Options) imageRoot(res *Result) (root string, forced []string, done func(), err error) {
	switch {
	case o.RootFS != "" && o.DockerRoot != "":
		return "", nil, nil, fmt.Errorf("--rootfs and --store (--docker-root) both given: use one")
	case o.RootFS != "":
		forced, err := forcedModules(0, o.Config.Root.FSType)
		return o.RootFS, forced, func() {}, err
	case o.DockerRoot == "":
		return "", nil, nil, fmt.Errorf("nothing to build from: pass --store DIR --image NAME[:TAG], or --rootfs DIR")
	case o.Image == "":
		return "", nil, nil, fmt.Errorf("--store needs --image NAME[:TAG] (the image to boot)")
	}
	store, err := OpenStore(o.DockerRoot, o.Config.Root.Namespace)
	if err != nil {
		return "", nil, nil, err
	}
	img, err := store.Resolve(o.Image)
	if err != nil {
		return "", nil, nil, err
	}
	res.Image, res.ImageID = o.Image, img.ID
	// The configured type is the store's where it boots (mkbootimg disk's data image); else the
	// file system --store is on here.
	fstype := first(o.Config.Root.FSType, locate(o.DockerRoot).fstype)
	if forced, err = forcedModules(img.Root.Kind, fstype); err != nil {
		return "", nil, nil, fmt.Errorf("image %s: %w", o.Image, err)
	}
	root, done, err = mountLayers(img.Root)
	if err != nil {
		return "", nil, nil, fmt.Errorf("image %s: %w", o.Image, err)
	}
	return root, forced, done, nil
}

// forcedModules are the modules every boot loads for a store on fstype ("": unknown) keeping
// its images as kind (0: unknown, an unpacked root): the file system, and overlayfs for layers.
func forcedModules(kind imagestore.RootKind, fstype string) ([]string, error) {
	switch {
	case kind == imagestore.Snapshot && fstype != "" && fstype != "btrfs":
		return nil, fmt.Errorf("its store keeps it as btrfs subvolumes, but the root file system is %s: a btrfs store boots from btrfs only; check --root-fstype or the data image", fstype)
	case fstype == "":
		fstype = "btrfs"
	}
	forced := []string{fstype}
	// On ext4 and xfs a store can only be one of layers; on btrfs only the store knows.
	if kind == imagestore.Overlay || (kind == 0 && fstype != "btrfs") {
		forced = append(forced, "overlay")
	}
	return forced, nil
}

// OpenStore opens the image store in the folder dir of this machine.
func OpenStore(dir, namespace string) (imagestore.Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	store, err := imagestore.Open("/", abs, imagestore.Options{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	return store, nil
}

// refuseOutputInside keeps every write out of the Docker root: a boot image written there could
// land in an image layer.
func (o Options) refuseOutputInside() error {
	if o.DockerRoot == "" {
		return nil
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		if r, err := filepath.EvalSymlinks(a); err == nil {
			return r
		}
		return a
	}
	dr, out := abs(o.DockerRoot), abs(o.Out)
	if out == dr || strings.HasPrefix(out, dr+string(filepath.Separator)) {
		return fmt.Errorf("--out %s is inside the Docker root %s: choose a directory outside it (e.g. /boot/docker-IMAGE)", o.Out, o.DockerRoot)
	}
	return nil
}
