package blockdev

import (
	"context"
	"fmt"
	"strings"
)

// Find waits until a block device matching spec appears, or ctx is done.
// It subscribes to kernel uevents before the first scan, so a device that
// appears in between is not missed, and rescans only when a block device is
// added or changes. When ctx ends first the error is a *NotFoundError
// listing what was seen.
//
// Several matches that are one file system (the members of a multi-device
// btrfs share label and UUID) give the first by name. Matches that are
// different file systems (a USB stick labelled like the root disk, a copy of
// it) give a *DuplicateError, whatever the order they appeared in: booting
// either could be the wrong one. Only the devices present at that scan are
// compared: Find returns as soon as the device is there and cannot wait for
// devices that may never come, so a duplicate that appears after it returned
// goes unnoticed, and one that appears before the device meant (a fast USB
// stick, a slow disk controller) is the one returned. Only a value that the
// intended device alone has, UUID= or PARTUUID=, rules that out.
func Find(ctx context.Context, spec Spec) (Device, error) {
	if err := spec.valid(); err != nil {
		return Device{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the uevent socket
	changed, err := listenUevents(ctx)
	if err != nil {
		return Device{}, fmt.Errorf("wait for %s: %w", spec, err)
	}
	return find(ctx, spec, "/sys/class/block", "/dev", changed)
}

// find is Find over any sysfs and /dev tree: it rescans whenever changed
// delivers nil and gives up on an error from it.
func find(ctx context.Context, spec Spec, sysBlock, devDir string, changed <-chan error) (Device, error) {
	for {
		devs, err := Scan(sysBlock, devDir)
		if err != nil {
			return Device{}, fmt.Errorf("wait for %s: %w", spec, err)
		}
		if matches := matching(spec, devs); len(matches) > 0 {
			if err := Unique(spec, devs); err != nil {
				return Device{}, err
			}
			return matches[0], nil
		}
		select {
		case <-ctx.Done():
			return Device{}, &NotFoundError{Spec: spec, Seen: devs}
		case err := <-changed:
			if err != nil {
				return Device{}, fmt.Errorf("wait for %s: %w", spec, err)
			}
		}
	}
}

// Unique returns a *DuplicateError when spec names devices of devs that are not one file system:
// for a caller that scans again later in the boot, when devices slower than the one it found
// (a USB stick) have appeared.
func Unique(spec Spec, devs []Device) error {
	if matches := matching(spec, devs); !oneFS(matches) {
		return &DuplicateError{Spec: spec, Matches: matches, Seen: devs}
	}
	return nil
}

// valid rejects a Spec that could never match, so Find does not wait the
// whole timeout for it.
func (s Spec) valid() error {
	switch s.Kind {
	case "LABEL", "UUID", "PARTUUID", "PARTLABEL", "PATH":
	default:
		return fmt.Errorf("device spec kind %q: want LABEL, UUID, PARTUUID, PARTLABEL or PATH", s.Kind)
	}
	if s.Value == "" {
		return fmt.Errorf("device spec %s: empty value", s)
	}
	return nil
}

// NotFoundError is Find's error when no device matched in time.
type NotFoundError struct {
	Spec     Spec
	Seen     []Device // every device of the last scan
	NoDriver []string // set by the caller: devices without a driver in the initramfs
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	if len(e.Seen) == 0 {
		fmt.Fprintf(&b, "no block device with %s: the kernel found no block devices at all.\n", e.Spec)
		writeNoDriver(&b, e.NoDriver)
		b.WriteString("Check that the initramfs has the kernel modules for the disk controller " +
			"(virtio_blk, nvme, ahci and sd_mod, usb-storage, mmc_block, ...).")
		return b.String()
	}
	fmt.Fprintf(&b, "no block device with %s; %d seen:\n", e.Spec, len(e.Seen))
	for _, d := range e.Seen {
		writeDevice(&b, d)
	}
	writeNoDriver(&b, e.NoDriver)
	if hint := e.closeMatch(); hint != "" {
		fmt.Fprintf(&b, "%s differs only in upper/lower case: labels must match exactly.\n", hint)
	}
	fmt.Fprintf(&b, "Check the spelling of %s (labels are case-sensitive; `blkid` on the installed system prints the exact values), ", e.Spec)
	b.WriteString("and that the initramfs has the kernel modules for the disk controller " +
		"(virtio_blk, nvme, ahci and sd_mod, usb-storage, mmc_block, ...) and the partition table.")
	return b.String()
}

// matching returns the devices of devs that spec names, in order.
func matching(spec Spec, devs []Device) []Device {
	var out []Device
	for _, d := range devs {
		if spec.Match(d) {
			out = append(out, d)
		}
	}
	return out
}

// oneFS reports whether every two of devs hold one file system.
func oneFS(devs []Device) bool {
	for i, a := range devs {
		for _, b := range devs[i+1:] {
			if !sameFS(a, b) {
				return false
			}
		}
	}
	return true
}

// sameFS reports whether two devices hold one file system: two members of a multi-device btrfs
// (one file system UUID, each member its own device UUID; a dd copy of a member has the same
// device UUID too, and is another file system), or a disk and its partition that show the same
// superblock (a hybrid ISO on a USB stick: the ISO is read both from the disk and from the
// partition that starts at its first sector).
func sameFS(a, b Device) bool {
	if a.FSType == "" || a.FSType != b.FSType || !strings.EqualFold(a.UUID, b.UUID) {
		return false
	}
	if a.FSType == "btrfs" && !strings.EqualFold(a.SubUUID, b.SubUUID) {
		return true
	}
	return a.Disk == b.Name || b.Disk == a.Name
}

// DuplicateError is Find's error when the spec matches devices that hold different file systems:
// picking one could boot, or replace the rw layer on, the wrong one.
type DuplicateError struct {
	Spec    Spec
	Matches []Device // every device that matched, in scan order
	Seen    []Device // every device of that scan
}

func (e *DuplicateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s names %d devices that are not one file system:\n", e.Spec, len(e.Matches))
	for _, d := range e.Matches {
		writeDevice(&b, d)
	}
	b.WriteString("dockerinit does not pick one: a USB stick or a disk copy with the same identity could be taken for the one meant. ")
	switch e.Spec.Kind {
	case "LABEL":
		b.WriteString("Unplug the device that does not belong, or relabel one of them (btrfs filesystem label, e2label, xfs_admin -L, fatlabel)")
	case "PARTLABEL":
		b.WriteString("Unplug the device that does not belong, or rename one of the partitions (sgdisk -c N:NAME, parted name)")
	case "UUID":
		b.WriteString("Unplug the device that does not belong, or give one of them a new UUID (btrfstune -u, tune2fs -U random, xfs_admin -U generate)")
	case "PARTUUID":
		b.WriteString("Unplug the device that does not belong, or give one of the partitions a new GUID (sgdisk -u N:R)")
	}
	if alt := e.alternatives(); len(alt) > 0 {
		fmt.Fprintf(&b, "; or name the one meant by a value only it has: %s", strings.Join(alt, ", "))
	}
	b.WriteString(".")
	return b.String()
}

// alternatives lists, for each matching device, the UUID= and PARTUUID= specs that would name
// its file system alone among the devices seen, as "UUID=... (/dev/vda2)".
func (e *DuplicateError) alternatives() []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range e.Matches {
		for _, s := range []Spec{{"UUID", d.UUID}, {"PARTUUID", d.PartUUID}} {
			if s.Value == "" || seen[strings.ToLower(s.String())] {
				continue
			}
			seen[strings.ToLower(s.String())] = true
			if oneFS(matching(s, e.Seen)) {
				out = append(out, fmt.Sprintf("%s (%s)", s, d.Path))
			}
		}
	}
	return out
}

// closeMatch finds a seen label that is the wanted one in another case.
func (e *NotFoundError) closeMatch() string {
	for _, d := range e.Seen {
		switch {
		case e.Spec.Kind == "LABEL" && strings.EqualFold(d.Label, e.Spec.Value):
			return fmt.Sprintf("%s has LABEL=%s, which", d.Path, d.Label)
		case e.Spec.Kind == "PARTLABEL" && strings.EqualFold(d.PartLabel, e.Spec.Value):
			return fmt.Sprintf("%s has PARTLABEL=%s, which", d.Path, d.PartLabel)
		}
	}
	return ""
}

// writeDevice writes one line for d: path, size and identities.
func writeDevice(b *strings.Builder, d Device) {
	fmt.Fprintf(b, "  %-14s %9s  %s\n", d.Path, humanSize(d.Size), describe(d))
}

// describe prints a device's identities like blkid, leaving out empty ones.
func describe(d Device) string {
	var parts []string
	if d.FSType == "" {
		parts = append(parts, "(no known file system)")
	} else {
		parts = append(parts, "TYPE="+d.FSType)
	}
	for _, kv := range [][2]string{{"LABEL", d.Label}, {"UUID", d.UUID}, {"UUID_SUB", d.SubUUID}, {"PARTUUID", d.PartUUID}, {"PARTLABEL", d.PartLabel}} {
		if kv[1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", kv[0], kv[1]))
		}
	}
	return strings.Join(parts, " ")
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
