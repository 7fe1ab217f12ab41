// Package btrfs owns the btrfs subvolume operations the boot needs
// (snapshot, delete with nested subvolumes, is-subvolume), done with raw
// ioctls: no btrfs-progs in the initramfs and no cgo.
package btrfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NotSubvolumeError reports a path that had to be a btrfs subvolume and is not.
type NotSubvolumeError struct {
	Path   string
	Reason string // what was found instead
}

func (e *NotSubvolumeError) Error() string {
	return fmt.Sprintf("%s is not a btrfs subvolume (%s); give the path of a subvolume, as `btrfs subvolume list` shows them", e.Path, e.Reason)
}

// IsSubvolume reports whether path is the root of a btrfs subvolume: on a
// btrfs file system and inode 256. A symlink is never a subvolume.
func IsSubvolume(path string) (bool, error) {
	reason, err := notSubvolumeReason(path)
	return reason == "" && err == nil, err
}

// notSubvolumeReason returns "" when path is a subvolume, else what it is.
func notSubvolumeReason(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return "", &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "not a directory", nil
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return "", &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	if sfs.Type != unix.BTRFS_SUPER_MAGIC {
		return fmt.Sprintf("file system magic %#x, btrfs is %#x", sfs.Type, unix.BTRFS_SUPER_MAGIC), nil
	}
	if st.Ino != firstFreeObjectID {
		return fmt.Sprintf("a plain directory: inode %d, a subvolume root is inode %d", st.Ino, firstFreeObjectID), nil
	}
	return "", nil
}

func requireSubvolume(path string) error {
	reason, err := notSubvolumeReason(path)
	if err != nil {
		return err
	}
	if reason != "" {
		return &NotSubvolumeError{Path: path, Reason: reason}
	}
	return nil
}

// Snapshot creates a writable snapshot of subvolume src at dst. dst must not
// exist and its parent must, on the same btrfs file system. A snapshot of a
// read-only subvolume is writable too.
func Snapshot(src, dst string) error {
	if err := snapshot(src, dst); err != nil {
		return fmt.Errorf("snapshot %s to %s: %w", src, dst, err)
	}
	return nil
}

func snapshot(src, dst string) error {
	if err := requireSubvolume(src); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists; delete it first or choose another name: %w", dst, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent, name, err := splitName(dst)
	if err != nil {
		return err
	}
	srcFd, err := openDir(src)
	if err != nil {
		return err
	}
	defer unix.Close(srcFd)
	parentFd, err := openDir(parent)
	if err != nil {
		return fmt.Errorf("the parent directory of the snapshot must exist: %w", err)
	}
	defer unix.Close(parentFd)

	args := volArgsV2{Fd: int64(srcFd)} // Flags 0: writable, whatever src is
	copy(args.Name[:], name)
	err = ioctl(parentFd, iocSnapCreateV2, unsafe.Pointer(&args))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s and %s are on different file systems; a snapshot must stay on the btrfs of its source: %w", src, parent, err)
	case errors.Is(err, unix.ENOTTY):
		return fmt.Errorf("%s is not on btrfs; the snapshot must be created on the btrfs of its source: %w", parent, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s is read-only (a read-only subvolume or mount); create the snapshot in a writable directory: %w", parent, err)
	}
	return fmt.Errorf("BTRFS_IOC_SNAP_CREATE_V2: %w", err)
}

// Delete deletes the subvolume at path, first deleting any subvolumes nested
// anywhere inside it (deepest first), as a booted system may have created
// some (systemd makes /var/lib/machines one).
func Delete(path string) error {
	abs, err := filepath.Abs(path)
	if err == nil {
		err = requireSubvolume(abs)
	}
	if err == nil {
		err = deleteTree(abs)
	}
	if err != nil {
		return fmt.Errorf("delete subvolume %s: %w", path, err)
	}
	return nil
}

// deleteTree tries the plain destroy first: nested subvolumes are rare, and
// only the kernel's ENOTEMPTY makes it worth looking for them.
func deleteTree(path string) error {
	err := destroy(path)
	if !errors.Is(err, unix.ENOTEMPTY) {
		return err
	}
	nested, err := nestedSubvolumes(path)
	if err != nil {
		return fmt.Errorf("find subvolumes nested in %s: %w", path, err)
	}
	for _, p := range nested {
		if err := deleteTree(p); err != nil {
			return err
		}
	}
	return destroy(path)
}

func destroy(path string) error {
	parent, name, err := splitName(path)
	if err != nil {
		return err
	}
	fd, err := openDir(parent)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var args volArgs
	copy(args.Name[:], name)
	err = ioctl(fd, iocSnapDestroy, unsafe.Pointer(&args))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s is in use (mounted, or a swap file is active in it); unmount it first: %w", path, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("deleting %s needs CAP_SYS_ADMIN, and it must not be the default subvolume: %w", path, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s is read-only, so %s cannot be removed from it: %w", parent, name, err)
	case errors.Is(err, unix.ENOTEMPTY):
		return fmt.Errorf("%s still holds nested subvolumes (see `btrfs subvolume list -o %s`): %w", path, path, err)
	}
	return fmt.Errorf("BTRFS_IOC_SNAP_DESTROY %s: %w", path, err)
}

// splitName splits path into its parent directory and a name the kernel
// takes as one directory entry.
func splitName(path string) (parent, name string, err error) {
	path = filepath.Clean(path)
	parent, name = filepath.Dir(path), filepath.Base(path)
	if name == "/" || name == "." || name == ".." || strings.ContainsRune(name, 0) {
		return "", "", fmt.Errorf("%q does not end in a subvolume name", path)
	}
	if len(name) > nameMax {
		return "", "", fmt.Errorf("subvolume name %.20q... is %d bytes, btrfs allows %d", name, len(name), nameMax)
	}
	return parent, name, nil
}

func openDir(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}
