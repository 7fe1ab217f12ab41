package btrfs

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is the btrfs control device: devtmpfs creates it once the btrfs module is loaded
// (or at boot when btrfs is built in).
const ControlPath = "/dev/btrfs-control"

// Ioctls of the control device, from <linux/btrfs.h>; both take struct btrfs_ioctl_vol_args
// whose name is the path of a block device.
const (
	iocScanDev      = 0x50009404 // _IOW(0x94, 4, struct btrfs_ioctl_vol_args)
	iocDevicesReady = 0x90009427 // _IOR(0x94, 39, struct btrfs_ioctl_vol_args)
)

// RegisterDevice tells the kernel that the block device at dev belongs to a btrfs file system
// (BTRFS_IOC_SCAN_DEV on control, normally ControlPath), as `btrfs device scan` does: a
// multi-device file system mounts only once the kernel knows all its members.
func RegisterDevice(control, dev string) error {
	_, err := controlIoctl(control, dev, iocScanDev)
	if err != nil {
		return fmt.Errorf("register btrfs device %s: %w", dev, err)
	}
	return nil
}

// DevicesReady registers the block device at dev, like RegisterDevice, and reports whether the
// kernel now knows every member of its btrfs file system (BTRFS_IOC_DEVICES_READY, what udev's
// "btrfs ready" asks). A single-device file system is always ready.
func DevicesReady(control, dev string) (bool, error) {
	r, err := controlIoctl(control, dev, iocDevicesReady)
	if err != nil {
		return false, fmt.Errorf("ask whether btrfs device %s is complete: %w", dev, err)
	}
	// The kernel answers 0 when every member is there, 1 when some are missing.
	return r == 0, nil
}

func controlIoctl(control, dev string, req uintptr) (uintptr, error) {
	var args volArgs
	if len(dev) >= len(args.Name) {
		return 0, fmt.Errorf("device path of %d bytes: the kernel takes at most %d", len(dev), len(args.Name)-1)
	}
	copy(args.Name[:], dev)
	f, err := os.OpenFile(control, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s does not exist: the btrfs module is not loaded (or not in the initramfs)", control)
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&args)))
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}
