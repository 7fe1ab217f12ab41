package modtree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/imageroot"
	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// hostDirs are the parts of the module tree whose drivers can stand between the kernel and the
// root disk or the rescue shell's keyboard: disk controllers and disks, USB host controllers and
// storage, virtio, Intel VMD, SCSI HBAs, keyboards.
var hostDirs = []string{
	"kernel/drivers/ata/", "kernel/drivers/scsi/", "kernel/drivers/nvme/", "kernel/drivers/block/",
	"kernel/drivers/mmc/", "kernel/drivers/usb/storage/", "kernel/drivers/usb/host/", "kernel/drivers/virtio/",
	"kernel/drivers/pci/controller/", "kernel/drivers/message/", "kernel/drivers/hid/",
	"kernel/drivers/input/keyboard/", "kernel/drivers/input/serio/",
}

// hostFS are the file systems a host bundle always has, for a top layer on an ESP or USB stick;
// other file systems (ext4, xfs, ...: megabytes each) only when this machine uses them.
var hostFS = []string{"vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1", "nls_utf8"}

// Host returns the optional module names (for Bundle) of an initramfs that boots only the
// machine whose sysfs is at sys (normally /sys), as mkbootimg --modules host does: the modules of
// the image's kernel that this machine uses, because its running kernel has them (sys/module) or
// one of its devices asks for them (the modaliases under sys/devices), and that are in Generic or
// drive disks, their controllers, USB or keyboards (its file systems among Generic's included);
// plus hostFS. Sound, network and graphics drivers stay out: they are the bulk of what a machine
// loads and the boot does not need them. img and modulesDir are as for Bundle.
func Host(img *imageroot.Root, modulesDir, kver, sys string) ([]string, error) {
	_, dc, ix, err := openTree(img, modulesDir, kver)
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	used, err := hostModules(sys)
	if err != nil {
		return nil, err
	}
	devices, err := modindex.DeviceModaliases(filepath.Join(sys, "devices"))
	if err != nil {
		return nil, fmt.Errorf("this machine's devices: %w", err)
	}
	for _, m := range devices {
		mods, _ := ix.resolve(m)
		used = append(used, mods...)
	}
	generic := map[string]bool{}
	for _, g := range Generic {
		mods, _ := ix.resolve(g)
		for _, m := range mods {
			generic[m] = true
		}
	}
	out := slices.Clone(hostFS)
	for _, m := range used {
		mp, ok := ix.modules[m]
		if ok && (generic[m] || slices.ContainsFunc(hostDirs, func(d string) bool { return strings.HasPrefix(mp.path, d) })) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// hostModules lists the modules the running kernel has, loaded or built in (those with
// parameters or a version show in sys/module too), names normalised.
func hostModules(sys string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(sys, "module"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s/module does not exist: --modules host needs the sysfs of the machine to boot (is /sys mounted?)", sys)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, modindex.Name(e.Name()))
	}
	return out, nil
}
