package blockdev

import (
	"context"
	"fmt"
	"strings"
)

// Find waits until a block device matching spec appears, or ctx is done.
// It subscribes to kernel uevents before the first scan, so a device that
// appears in between is not missed, and rescans only when a block device is
// added or changes. Several matches (the members of a multi-device btrfs
// share label and UUID) give the first by name. When ctx ends first the
// error is a *NotFoundError listing what was seen.
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
		for _, d := range devs {
			if spec.Match(d) {
				return d, nil
			}
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
	for _, kv := range [][2]string{{"LABEL", d.Label}, {"UUID", d.UUID}, {"PARTUUID", d.PartUUID}, {"PARTLABEL", d.PartLabel}} {
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
