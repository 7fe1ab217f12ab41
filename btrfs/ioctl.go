package btrfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ioctl numbers and layouts from <linux/btrfs.h> and <linux/btrfs_tree.h>,
// checked by compiling against the kernel headers (x/sys has none of them).
const (
	iocTreeSearch   = 0xd0009411 // _IOWR(0x94, 17, struct btrfs_ioctl_search_args)
	iocInoLookup    = 0xd0009412 // _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)
	iocSnapDestroy  = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	iocSnapCreateV2 = 0x50009417 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)

	firstFreeObjectID = 256 // inode number of every subvolume's root directory
	rootTreeObjectID  = 1   // the tree that holds ROOT_REF items
	rootRefKey        = 156 // BTRFS_ROOT_REF_KEY: (parent id, 156, child id) -> btrfs_root_ref

	// nameMax is the longest directory entry name btrfs accepts.
	nameMax = 255
)

// volArgs is struct btrfs_ioctl_vol_args.
type volArgs struct {
	Fd   int64
	Name [4088]byte
}

// volArgsV2 is struct btrfs_ioctl_vol_args_v2.
type volArgsV2 struct {
	Fd      int64
	Transid uint64
	Flags   uint64
	_       [4]uint64
	Name    [4040]byte
}

// inoLookupArgs is struct btrfs_ioctl_ino_lookup_args.
type inoLookupArgs struct {
	TreeID   uint64
	ObjectID uint64
	Name     [4080]byte
}

// searchKey is struct btrfs_ioctl_search_key.
type searchKey struct {
	TreeID      uint64
	MinObjectID uint64
	MaxObjectID uint64
	MinOffset   uint64
	MaxOffset   uint64
	MinTransID  uint64
	MaxTransID  uint64
	MinType     uint32
	MaxType     uint32
	NrItems     uint32
	_           uint32
	_           [4]uint64
}

// searchArgs is struct btrfs_ioctl_search_args: the key, then NrItems
// (struct btrfs_ioctl_search_header, item) pairs packed in Buf.
type searchArgs struct {
	Key searchKey
	Buf [4096 - 104]byte
}

// searchHeaderSize is sizeof(struct btrfs_ioctl_search_header).
const searchHeaderSize = 32

// rootRefSize is sizeof(struct btrfs_root_ref), which the name follows.
const rootRefSize = 18

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}
