package bootimage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/imagestore"
)

// An image kept as overlay layers has no one folder holding its root file system: the kernel and
// modules may be in any layer, and an upper layer may delete them. The kernel's own overlayfs
// stacks the layers, read-only and with no upper folder, so that whiteouts and opaque folders
// mean at build time what they mean at boot; nothing is written to the store.

// mountLayers mounts the layers of root (a store's image on this machine, Dir relative to "/")
// read-only on a new temporary folder and returns it, with what unmounts and removes it.
func mountLayers(root imagestore.Root) (string, func(), error) {
	dir := filepath.Join("/", filepath.FromSlash(root.Dir))
	if len(root.Layers) == 1 {
		// overlayfs wants two lower layers without an upper: one layer is the root itself.
		return filepath.Join(dir, filepath.FromSlash(root.Layers[0])), func() {}, nil
	}
	mnt, err := os.MkdirTemp("", "mkbootimg-image-")
	if err != nil {
		return "", nil, err
	}
	opts := "lowerdir=" + strings.Join(root.Layers, ":")
	if len(opts) > 4095 {
		os.Remove(mnt)
		return "", nil, fmt.Errorf("the image's %d layers make overlay mount options longer than the kernel's 4095 bytes; flatten the image", len(root.Layers))
	}
	if err := mountIn(dir, mnt, opts); err != nil {
		os.Remove(mnt)
		return "", nil, fmt.Errorf("mount the image's %d layers read-only (overlayfs; mkbootimg needs root for it): %w", len(root.Layers), err)
	}
	return mnt, func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
		os.Remove(mnt)
	}, nil
}

// mountIn mounts an overlay with opts, whose layers are relative to dir (the stores' short
// names keep many layers within the one page of mount options), on mnt. The working directory
// changes for the one system call and is put back.
func mountIn(dir, mnt, opts string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.Chdir(dir); err != nil {
		return err
	}
	defer os.Chdir(wd)
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, opts); err != nil {
		return fmt.Errorf("mount -t overlay -o %s (in %s): %w", opts, dir, err)
	}
	return nil
}
