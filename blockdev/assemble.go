package blockdev

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/dockerinit/dockerinit/btrfs"
)

// registry is the kernel's list of btrfs member devices; tests replace it.
type registry interface {
	Register(dev string) error
	Ready(dev string) (bool, error)
}

// btrfsControl is the real registry, reached through the control device at that path.
type btrfsControl string

func (c btrfsControl) Register(dev string) error      { return btrfs.RegisterDevice(string(c), dev) }
func (c btrfsControl) Ready(dev string) (bool, error) { return btrfs.DevicesReady(string(c), dev) }

// AssembleBtrfs returns once the kernel knows every member device of the btrfs file system on d,
// so that it can be mounted: it registers each member (same file system UUID) as it appears,
// waiting on uevents for the ones still missing, until ctx is done; then the error is an
// *IncompleteError. A single-device file system is complete at once; a device that is not btrfs
// needs nothing. The btrfs module must be loaded (its control device, /dev/btrfs-control, is
// used).
func AssembleBtrfs(ctx context.Context, d Device) error {
	if d.FSType != "btrfs" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the uevent socket
	changed, err := listenUevents(ctx)
	if err != nil {
		return fmt.Errorf("wait for the devices of btrfs %s: %w", d.UUID, err)
	}
	return assemble(ctx, d, "/sys/class/block", "/dev", changed, btrfsControl(btrfs.ControlPath))
}

// assemble is AssembleBtrfs over any sysfs, /dev and registry: it rescans whenever changed
// delivers nil and gives up on an error from it.
func assemble(ctx context.Context, d Device, sysBlock, devDir string, changed <-chan error, reg registry) error {
	registered := map[string]bool{d.Path: true} // Ready registers d itself
	// A member seen twice (same device UUID) is a copy of it, dd-ed or a disk image attached:
	// registering both would let the kernel mount either, with root= naming only one of them.
	members := map[string]string{strings.ToLower(d.SubUUID): d.Path}
	for {
		ready, err := reg.Ready(d.Path)
		if err != nil {
			return err
		}
		if ready {
			return nil
		}
		devs, err := Scan(sysBlock, devDir)
		if err != nil {
			return fmt.Errorf("wait for the devices of btrfs %s: %w", d.UUID, err)
		}
		added := false
		for _, m := range devs {
			if isMember(m, d) && !registered[m.Path] {
				if sub := strings.ToLower(m.SubUUID); strings.Trim(sub, "0-") != "" { // unset: no check
					if p, twice := members[sub]; twice {
						return fmt.Errorf("btrfs %s: %s and %s are the same member device (UUID_SUB %s): one is a copy of the other, and the kernel could mount either; unplug the copy, or give it an identity of its own (btrfstune -m)", d.UUID, p, m.Path, m.SubUUID)
					}
					members[sub] = m.Path
				}
				registered[m.Path] = true
				if err := reg.Register(m.Path); err != nil {
					return err
				}
				added = true
			}
		}
		if added {
			continue // ask again before waiting
		}
		select {
		case <-ctx.Done():
			return &IncompleteError{Device: d, Total: btrfsNumDevices(d.Path), Seen: devs}
		case err := <-changed:
			if err != nil {
				return fmt.Errorf("wait for the devices of btrfs %s: %w", d.UUID, err)
			}
		}
	}
}

// isMember reports whether m holds a part of the btrfs file system on d.
func isMember(m, d Device) bool {
	return m.FSType == "btrfs" && strings.EqualFold(m.UUID, d.UUID)
}

// btrfsNumDevices reads how many devices the btrfs file system on the device at path has, from
// its superblock (num_devices); 0 when it cannot be read.
func btrfsNumDevices(path string) int {
	f, err := OpenDevice(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b, err := readUpTo(f, 0x10088, 8)
	if err != nil || len(b) < 8 {
		return 0
	}
	return int(min(binary.LittleEndian.Uint64(b), 1<<16))
}

// IncompleteError is AssembleBtrfs's error when members of the file system were still missing
// when time ran out.
type IncompleteError struct {
	Device   Device   // the device that was found
	Total    int      // devices the file system has, from its superblock (0: unreadable)
	Seen     []Device // every block device of the last scan
	NoDriver []string // set by the caller: devices without a driver in the initramfs
}

func (e *IncompleteError) Error() string {
	var members []string
	for _, d := range e.Seen {
		if isMember(d, e.Device) {
			members = append(members, d.Path)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the btrfs file system UUID=%s", e.Device.UUID)
	if e.Device.Label != "" {
		fmt.Fprintf(&b, " (LABEL=%s)", e.Device.Label)
	}
	if e.Total > len(members) {
		fmt.Fprintf(&b, " has %d devices and only %d appeared (%s): %d missing.\n",
			e.Total, len(members), strings.Join(members, ", "), e.Total-len(members))
	} else {
		fmt.Fprintf(&b, " is incomplete: the kernel still misses member devices after %s appeared.\n", strings.Join(members, ", "))
	}
	writeSeen(&b, e.Seen)
	writeNoDriver(&b, e.NoDriver)
	b.WriteString("Connect the missing disk(s) and check that the initramfs has the driver of their controller; " +
		"to boot a RAID1 with a member missing, add degraded to rootflags= (rootflags=subvol=NAME,degraded).")
	return b.String()
}

// writeSeen lists devices one a line with their size and identities.
func writeSeen(b *strings.Builder, devs []Device) {
	if len(devs) == 0 {
		return
	}
	fmt.Fprintf(b, "Block devices seen (%d):\n", len(devs))
	for _, d := range devs {
		writeDevice(b, d)
	}
}

// writeNoDriver lists the devices the kernel asked for a driver for in vain.
func writeNoDriver(b *strings.Builder, noDriver []string) {
	if len(noDriver) == 0 {
		return
	}
	b.WriteString("The kernel asked for drivers the initramfs does not have, for these devices:\n")
	for _, m := range noDriver {
		fmt.Fprintf(b, "  %s\n", m)
	}
	b.WriteString("On a running Linux, `modprobe -R 'MODALIAS'` names each one's module: rebuild the initramfs with mkbootimg --add-module NAME.\n")
}
