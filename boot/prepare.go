package boot

// dockerinit prepare runs inside another initramfs (initramfs-tools, dracut, mkinitcpio), which
// mounts root= itself. A btrfs store's rw layer is a subvolume it mounts with
// rootflags=subvol=; an overlay store's root is an overlay that prepare mounts, leaving it at
// newRootDir, and that MountPrepared lays over the caller's root once it mounted root=.

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/imagestore"
)

// checkPreparedOverlay refuses what would make the caller's own mount of root= fail after
// prepare made the overlay: it passes rootflags= to the file system as they are, and a read-only
// mount of a device the overlay holds read-write is refused by the kernel ("would change RO
// state").
func (s *Sequence) checkPreparedOverlay() error {
	if s.p.RWLayerInRootflags {
		return fmt.Errorf("image %s boots as an overlay of its layers (%s), and the initramfs running dockerinit prepare mounts root= itself with rootflags=subvol=%s, which %s does not take: remove subvol= from rootflags= and name the rw layer folder in %s instead (rwlayer = %q under [root]), then rebuild the initramfs",
			s.p.Image, s.store.Kind(), s.p.RWLayer, s.dev.FSType, configPath, s.p.RWLayer)
	}
	if s.p.ReadOnly {
		return fmt.Errorf("image %s boots as an overlay of its layers (%s), whose rw layer is on root=: the initramfs running dockerinit prepare cannot mount root= read-only under it (ro is on the kernel command line); replace ro with rw",
			s.p.Image, s.store.Kind())
	}
	return nil
}

// releaseTopLevel ends dockerinit prepare's use of the root file system; an overlay it made stays
// mounted for MountPrepared.
func (s *Sequence) releaseTopLevel() error {
	if s.img.Root.Kind != imagestore.Overlay {
		return s.unmount(topLevelDir)
	}
	if s.removing != nil {
		// Exiting would cut the deletion of the last boot's rw layer short, and the next one
		// would start further behind: here, unlike dockerinit's own initramfs, the boot waits.
		t0 := time.Now()
		<-s.removing
		s.log.Debugf("the previous rw layers are deleted (waited %v)", time.Since(t0).Round(time.Millisecond))
	}
	return s.detach(topLevelDir)
}

// MountPrepared lays the overlay root that dockerinit prepare left over dir, where the caller's
// initramfs has mounted root= by now; the caller then switches to dir as usual. It reports false,
// doing nothing, when prepare left none: a btrfs rw layer is what the caller mounted.
func MountPrepared(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(newRootDir, &st); errors.Is(err, os.ErrNotExist) || (err == nil && st.Type != unix.OVERLAYFS_SUPER_MAGIC) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("the new root dockerinit prepare made at %s: %w", newRootDir, err)
	}
	if !mounted(dir) {
		return false, fmt.Errorf("%s is not a mount point: mount root= there before dockerinit mount-root", dir)
	}
	// A bind, not a move: a move fails where / is a shared mount (systemd in the initramfs).
	if err := unix.Mount(newRootDir, dir, "", unix.MS_BIND, ""); err != nil {
		return false, fmt.Errorf("lay the new root over %s: %w", dir, err)
	}
	if err := unix.Unmount(newRootDir, unix.MNT_DETACH); err != nil {
		return true, fmt.Errorf("unmount %s, now at %s: %w", newRootDir, dir, err)
	}
	return true, nil
}
