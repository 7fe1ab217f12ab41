package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/btrfs"
	"github.com/dockerinit/dockerinit/imagestore"
	"github.com/dockerinit/dockerinit/switchroot"
)

// The root file system holds the image store; the new root is made from the image's layers in
// one of two ways, which the store tells (imagestore.RootKind): a btrfs snapshot of a layer that
// holds the whole root, or an overlay of the layers under a fresh upper folder. Only these steps
// differ between the two; no step names a store.

// mountTopLevel mounts the root file system whole: on btrfs its top level, whatever subvolume is
// the default, and writable for the snapshot whatever ro/rw says about the new root.
func (s *Sequence) mountTopLevel() error {
	flags := s.p.Root.Flags
	if s.dev.FSType == "btrfs" {
		flags = joinFlags(flags, "subvolid=5")
	}
	return s.mount(s.dev.Path, topLevelDir, s.dev.FSType, 0, flags)
}

// storePath gives a path of the store, relative to the root file system's top, in the initramfs.
func storePath(rel string) string { return filepath.Join(topLevelDir, filepath.FromSlash(rel)) }

func (s *Sequence) resolveImage() error {
	root := storePath(s.p.DockerPath)
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("docker_path=%s: no directory %s on %s; its top holds: %s. Set docker_path= to the image store's folder relative to the top of the file system (var/lib/docker, var/lib/containerd, var/lib/containers/storage)",
			s.p.DockerPath, "/"+s.p.DockerPath, s.dev.Path, listDir(topLevelDir))
	}
	store, err := imagestore.Open(topLevelDir, s.p.DockerPath, imagestore.Options{Namespace: s.p.Namespace})
	if err != nil {
		return fmt.Errorf("docker_path=%s: %w", s.p.DockerPath, err)
	}
	img, err := s.pickImage(store)
	if err != nil {
		return err
	}
	switch img.Root.Kind {
	case imagestore.Snapshot:
		layer := storePath(img.Root.Paths()[0])
		if ok, err := btrfs.IsSubvolume(layer); err != nil || !ok {
			return fmt.Errorf("image %s: its layer %s is not a btrfs subvolume (%v): the image store looks damaged; inspect the image with the store's tool", s.p.Image, img.Layer, err)
		}
	case imagestore.Overlay:
	default:
		return fmt.Errorf("image %s: %s gives no layers to boot from", s.p.Image, store.Kind())
	}
	s.img, s.store = img, store
	s.log.Infof("image %s is %s from %s, top layer %s", s.p.Image, shortID(img.ID), store.Kind(), img.Layer)
	return nil
}

// storeDirs are the store's folders in the initramfs: what the rw layer and the top layer must
// never reach.
func (s *Sequence) storeDirs() []string { return s.storeDirsOf(s.store) }

func (s *Sequence) storeDirsOf(store imagestore.Store) []string {
	var dirs []string
	for _, d := range store.Dirs() {
		dirs = append(dirs, storePath(d))
	}
	return dirs
}

// rwLayer is the rw layer's path in the initramfs, checked against the store.
func (s *Sequence) rwLayer() (string, error) {
	return rwLayerPath(topLevelDir, s.p.RWLayer, s.storeDirs()...)
}

// makeRWLayer makes the new root from the image: afresh at every boot.
func (s *Sequence) makeRWLayer() error {
	rw, err := s.rwLayer()
	if err != nil {
		return err
	}
	if s.img.Root.Kind == imagestore.Overlay {
		if s.opts.Mode == Prepare {
			if err := s.checkPreparedOverlay(); err != nil {
				return err
			}
		}
		return s.mountOverlay(rw)
	}
	return s.snapshotLayer(rw)
}

// snapshotLayer replaces the rw layer with a snapshot of the image's layer.
func (s *Sequence) snapshotLayer(rw string) error {
	if s.dev.FSType != "btrfs" {
		return fmt.Errorf("image %s is kept as btrfs subvolumes, but root=%s is %s: the store and its root file system disagree; check root=", s.p.Image, s.p.Root.Device, s.dev.FSType)
	}
	layer := storePath(s.img.Root.Paths()[0])
	if _, err := os.Lstat(rw); err == nil {
		ok, err := btrfs.IsSubvolume(rw)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("rootflags=subvol=%s: /%s exists and is not a btrfs subvolume; refusing to delete what dockerinit did not make: rename it or choose another subvol=", s.p.RWLayer, s.p.RWLayer)
		}
		if err := ownRWLayer(rw, s.p.RWLayer, filepath.Dir(layer)); err != nil {
			return err
		}
		if err := btrfs.Delete(rw); err != nil {
			return fmt.Errorf("delete the previous rw layer /%s: %w", s.p.RWLayer, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(rw), 0o755); err != nil {
		return err
	}
	if err := btrfs.Snapshot(layer, rw); err != nil {
		return fmt.Errorf("snapshot image %s to /%s: %w", s.p.Image, s.p.RWLayer, err)
	}
	// Unmarked, the next boot still knows the layer by its parent's UUID (see ownRWLayer).
	return markRWLayer(rw, s.img.ID)
}

// newRoot is where the new root is, writable, before "mount new root": the snapshot under the
// top level, or the overlay already mounted.
func (s *Sequence) newRoot() string {
	if s.img.Root.Kind == imagestore.Overlay {
		return newRootDir
	}
	return filepath.Join(topLevelDir, s.p.RWLayer)
}

func (s *Sequence) checkInit() error {
	return switchroot.CheckInit(s.newRoot(), s.p.Init)
}

// mountNewRoot mounts the snapshot as the new root, or makes the overlay read-only when ro asks;
// then the top level goes, which an overlay still uses (a lazy unmount).
func (s *Sequence) mountNewRoot() error {
	if s.img.Root.Kind == imagestore.Overlay {
		if s.p.ReadOnly {
			if err := unix.Mount("", newRootDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("make the new root read-only (ro): %w", err)
			}
		}
		return s.detach(topLevelDir)
	}
	var flags uintptr
	if s.p.ReadOnly {
		flags = unix.MS_RDONLY
	}
	if err := s.mount(s.dev.Path, newRootDir, "btrfs", flags, joinFlags(s.p.Root.Flags, "subvol="+s.p.RWLayer)); err != nil {
		return err
	}
	return s.unmount(topLevelDir)
}

// rootFSOK says whether the root device's file system can hold the stores.
func rootFSOK(fstype string) bool { return slices.Contains(bootparam.RootFSTypes, fstype) }
