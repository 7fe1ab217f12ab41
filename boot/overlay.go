package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/safego"
)

// An overlay store's image becomes the new root as an overlay mount: the image's layers read-only
// below, and above them the rw layer's upper folder, where everything the booted system writes
// goes. The rw layer is a folder at the top of the root file system (rootflags=subvol= names it,
// as the subvolume on btrfs stores), holding upper/ and work/. Each boot starts from an empty one:
// the last boot's is renamed aside at once (O(1), whatever it holds) and deleted in the
// background, so that a boot never waits in proportion to what the last one wrote.

// Names inside and beside the rw layer folder.
const (
	upperDir    = "upper"
	workDir     = "work"
	oldSuffix   = ".dockerinit-old." // <rw>.dockerinit-old.<n>: a previous rw layer, being deleted
	newSuffix   = ".dockerinit-new"  // <rw>.dockerinit-new: the next rw layer, being made
	maxMountOpt = 4095               // the kernel copies mount options into one page
)

// mountOverlay makes a fresh rw layer folder at rw and mounts the overlay of the image's layers
// under it on newRootDir.
func (s *Sequence) mountOverlay(rw string) error {
	name := s.p.RWLayer
	if err := os.MkdirAll(filepath.Dir(rw), 0o755); err != nil {
		return err
	}
	// What a power cut left: an rw layer being made, and the one in use, go aside to be deleted.
	if err := retireRWDir(rw+newSuffix, name+newSuffix); err != nil {
		return err
	}
	if err := retireRWDir(rw, name); err != nil {
		return err
	}
	if err := makeRWDir(rw+newSuffix, s.img.ID); err != nil {
		return err
	}
	if err := os.Rename(rw+newSuffix, rw); err != nil {
		return fmt.Errorf("put the new rw layer in place: %w", err)
	}
	if err := syncDir(filepath.Dir(rw)); err != nil {
		return err
	}
	removing := make(chan struct{})
	s.removing = removing
	go func() {
		defer close(removing)
		removeOldRWDirs(s.log, rw)
	}()

	opts, err := OverlayOptions(s.img.Root.Layers, filepath.Join(rw, upperDir), filepath.Join(rw, workDir))
	if err != nil {
		return fmt.Errorf("image %s: %w", s.p.Image, err)
	}
	s.loadFSModule("overlay", "")
	// The layers are named relative to their folder, as the stores name them (l/<short id>), so
	// that 128 of them fit in the one page of mount options; mount(2) resolves them against the
	// working directory, which nothing else in the initramfs depends on.
	layers := storePath(s.img.Root.Dir)
	if err := os.Chdir(layers); err != nil {
		return fmt.Errorf("image %s: its layers' folder: %w", s.p.Image, err)
	}
	defer os.Chdir("/")
	if err := s.mount("overlay", newRootDir, "overlay", 0, opts); err != nil {
		return fmt.Errorf("%w (the layers are relative to %s)", err, layers)
	}
	return nil
}

// OverlayOptions gives the mount options of the overlay: lowerdir lists the layers uppermost
// first. volatile: the upper folder is thrown away at the next boot, so syncing it buys nothing.
func OverlayOptions(layers []string, upper, work string) (string, error) {
	for _, l := range layers {
		if l == "" || strings.ContainsAny(l, ",:\\") {
			return "", fmt.Errorf("layer folder %q cannot be named in overlay mount options (',', ':' and '\\' are separators)", l)
		}
	}
	if len(layers) == 0 {
		return "", errors.New("no layers to mount")
	}
	opts := "lowerdir=" + strings.Join(layers, ":") + ",upperdir=" + upper + ",workdir=" + work + ",volatile"
	if len(opts) > maxMountOpt {
		return "", fmt.Errorf("its %d layers make overlay mount options of %d bytes, over the kernel's limit of %d; flatten the image (fewer layers, e.g. docker build --squash or a multi-stage build)",
			len(layers), len(opts), maxMountOpt)
	}
	return opts, nil
}

// makeRWDir makes an empty rw layer folder at dir, marked as dockerinit's, with its upper and
// work folders, all on disk before it is renamed into place.
func makeRWDir(dir, imageID string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("make the rw layer: %w", err)
	}
	if err := markRWLayer(dir, imageID); err != nil {
		return err
	}
	for _, d := range []string{upperDir, workDir} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("make the rw layer: %w", err)
		}
	}
	return syncDir(dir)
}

// retireRWDir renames the rw layer folder dir aside, to be deleted, if it is there and is
// dockerinit's: it carries the mark, or it is an empty folder (made, then cut off by a power cut
// before the mark). Anything else is refused, as on btrfs: subvol= may name what is not ours.
func retireRWDir(dir, name string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("rootflags=subvol=%s: /%s exists and is not a folder; refusing to delete what dockerinit did not make: rename it or choose another subvol=", name, name)
	}
	if _, err := unix.Lgetxattr(dir, rwMarkXattr, nil); err != nil {
		if rmErr := os.Remove(dir); rmErr == nil { // only an empty folder goes
			return nil
		}
		return fmt.Errorf("rootflags=subvol=%s: /%s is a folder that dockerinit did not make (it has no %s mark); refusing to delete it: choose another subvol= for the rw layer, or, if it really is an old rw layer, delete it yourself and boot again",
			name, name, rwMarkXattr)
	}
	old := dir + oldSuffix + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("move the previous rw layer aside: %w", err)
	}
	return nil
}

// removeOldRWDirs deletes the previous rw layers of rw, marked ones only, until done or until the
// switch of root ends this process; what is left goes at a later boot.
func removeOldRWDirs(log *Logger, rw string) {
	var err error
	defer safego.Recover("deleting previous rw layers", &err)
	entries, _ := os.ReadDir(filepath.Dir(rw))
	prefix := filepath.Base(rw) + oldSuffix
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		old := filepath.Join(filepath.Dir(rw), e.Name())
		if _, err := unix.Lgetxattr(old, rwMarkXattr, nil); err != nil {
			continue
		}
		t0 := time.Now()
		if err := os.RemoveAll(old); err != nil {
			log.Warnf("delete the previous rw layer %s: %v", old, err)
			continue
		}
		log.Debugf("deleted the previous rw layer %s in %v", old, time.Since(t0).Round(time.Millisecond))
	}
}

// syncDir makes dir's entries durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// detach unmounts dir lazily: a mount still in use (the top level under an overlay) goes from the
// tree at once and from the kernel when its last user does.
func (s *Sequence) detach(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	s.forget(dir)
	return nil
}
