package btrfs

import (
	"fmt"
	"io/fs"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iocGetSubvolInfo is _IOR(0x94, 60, struct btrfs_ioctl_get_subvol_info_args) (Linux 4.18).
const iocGetSubvolInfo = 0x81f8943c

// timespec is struct btrfs_ioctl_timespec (8 + 4 bytes, padded to 16).
type timespec struct {
	Sec  uint64
	Nsec uint32
	_    uint32
}

// subvolInfoArgs is struct btrfs_ioctl_get_subvol_info_args.
type subvolInfoArgs struct {
	TreeID       uint64
	Name         [256]byte
	ParentID     uint64
	DirID        uint64
	Generation   uint64
	Flags        uint64
	UUID         [16]byte
	ParentUUID   [16]byte
	ReceivedUUID [16]byte
	Ctransid     uint64
	Otransid     uint64
	Stransid     uint64
	Rtransid     uint64
	Ctime        timespec
	Otime        timespec
	Stime        timespec
	Rtime        timespec
	_            [8]uint64
}

// UUID is a subvolume's UUID as btrfs stores it; the zero UUID means none.
type UUID [16]byte

func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// IsZero reports whether u is unset: a subvolume made by `subvolume create` has no parent UUID.
func (u UUID) IsZero() bool { return u == UUID{} }

// SubvolumeInfo is what the boot needs to know of a subvolume to tell where it came from.
type SubvolumeInfo struct {
	ID         uint64
	UUID       UUID
	ParentUUID UUID // the UUID of the subvolume it is a snapshot of; zero for none
}

// Info returns the identity of the subvolume whose root is path.
func Info(path string) (SubvolumeInfo, error) {
	if err := requireSubvolume(path); err != nil {
		return SubvolumeInfo{}, err
	}
	fd, err := openDir(path)
	if err != nil {
		return SubvolumeInfo{}, err
	}
	defer unix.Close(fd)
	var a subvolInfoArgs
	if err := ioctl(fd, iocGetSubvolInfo, unsafe.Pointer(&a)); err != nil {
		return SubvolumeInfo{}, &fs.PathError{Op: "BTRFS_IOC_GET_SUBVOL_INFO", Path: path, Err: err}
	}
	return SubvolumeInfo{ID: a.TreeID, UUID: a.UUID, ParentUUID: a.ParentUUID}, nil
}
