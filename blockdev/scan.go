package blockdev

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Scan lists the block devices under sysBlock (/sys/class/block: disks and
// partitions, sorted by name) and probes each one's node under devDir
// (/dev). Devices with size 0 (empty loop devices, drives without media)
// and devices whose node cannot be opened or read are left out: they cannot
// be the device anyone is looking for. Only an unreadable sysBlock is an
// error.
func Scan(sysBlock, devDir string) ([]Device, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w (is sysfs mounted on /sys?)", err)
	}
	tables := map[string]*partTable{} // by disk name, read once per scan
	var devs []Device
	for _, e := range entries {
		d, ok := scanOne(sysBlock, devDir, e.Name(), tables)
		if ok {
			devs = append(devs, d)
		}
	}
	return devs, nil
}

// OpenDevice opens a block device to read its superblock. O_NONBLOCK, as blkid does: an optical
// drive then answers at once, where a plain open waits for it to check for a disc (and tries to
// close its tray).
func OpenDevice(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
}

// From linux/cdrom.h.
const (
	cdromDriveStatus = 0x5326     // CDROM_DRIVE_STATUS
	cdslCurrent      = 0x7ffffffe // CDSL_CURRENT: the disc in the drive
	cdsDiscOK        = 4          // CDS_DISC_OK
)

// hasMedium reports whether the removable device in f has something to read. An optical drive
// without a disc reports its full size, and reading it fails only after a round of I/O errors
// (0.16 s under QEMU, with kernel log noise): ask the drive first, as blkid does. A device that
// is not removable, or not an optical drive, has a medium when it has a size.
func hasMedium(f *os.File, sysBlock, name string) bool {
	if removable, err := readSysInt(filepath.Join(sysBlock, name, "removable")); err != nil || removable != 1 {
		return true
	}
	status, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cdromDriveStatus, cdslCurrent)
	return errno != 0 || status == cdsDiscOK
}

func scanOne(sysBlock, devDir, name string, tables map[string]*partTable) (Device, bool) {
	size, err := readSysInt(filepath.Join(sysBlock, name, "size"))
	if err != nil || size <= 0 {
		return Device{}, false
	}
	d := Device{Name: name, Path: filepath.Join(devDir, name), Size: size * 512} // sysfs counts 512-byte sectors
	f, err := OpenDevice(d.Path)
	if err != nil {
		return Device{}, false
	}
	if !hasMedium(f, sysBlock, name) {
		f.Close()
		return Device{}, false
	}
	id, err := probe(f)
	f.Close()
	if err != nil {
		return Device{}, false
	}
	d.FSType, d.Label, d.UUID, d.SubUUID = id.fsType, id.label, id.uuid, id.subUUID
	if partNo, err := readSysInt(filepath.Join(sysBlock, name, "partition")); err == nil {
		if disk, ok := parentDisk(sysBlock, name); ok {
			d.Disk = disk
			id := diskTable(sysBlock, devDir, disk, tables).part(int(partNo))
			d.PartUUID, d.PartLabel = id.UUID, id.Label
		}
	}
	return d, true
}

// parentDisk names the disk of a partition: /sys/class/block/vda2 links into
// the disk's own sysfs directory, .../block/vda/vda2.
func parentDisk(sysBlock, name string) (string, bool) {
	target, err := filepath.EvalSymlinks(filepath.Join(sysBlock, name))
	if err != nil {
		return "", false
	}
	disk := filepath.Base(filepath.Dir(target))
	_, err = os.Stat(filepath.Join(sysBlock, disk))
	return disk, err == nil
}

// diskTable reads (once per scan) the partition table of a disk; a disk
// that cannot be read has none.
func diskTable(sysBlock, devDir, disk string, tables map[string]*partTable) *partTable {
	if t, ok := tables[disk]; ok {
		return t
	}
	var t *partTable
	if size, err := readSysInt(filepath.Join(sysBlock, disk, "size")); err == nil {
		if f, err := OpenDevice(filepath.Join(devDir, disk)); err == nil {
			t, _ = readPartTable(f, size*512)
			f.Close()
		}
	}
	tables[disk] = t
	return t
}

func readSysInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
