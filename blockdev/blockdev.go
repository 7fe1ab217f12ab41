// Package blockdev owns finding a block device by LABEL=, UUID=, PARTUUID=,
// PARTLABEL= or path in an initramfs that has no udev: it lists
// /sys/class/block, reads file system superblocks and partition tables
// itself, and waits for devices on the kernel's uevent socket.
package blockdev

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Device is one block device (a whole disk or a partition) as Scan saw it.
type Device struct {
	Name, Path          string // "vda1", "/dev/vda1"
	FSType, Label, UUID string // from the superblock; "" if unknown
	SubUUID             string // btrfs: this member device's own UUID (blkid's UUID_SUB)
	PartUUID, PartLabel string // from the parent disk's GPT (MBR: PARTUUID "xxxxxxxx-NN")
	Disk                string // of a partition: its disk's name ("vda" for vda2); "" for a disk
	Size                int64  // bytes
}

// Spec says which device to look for, as written in root= or toplayer=.
type Spec struct {
	Kind  string // "LABEL", "UUID", "PARTUUID", "PARTLABEL" or "PATH"
	Value string
}

// specForms is the help text of every ParseSpec error.
const specForms = "LABEL=<label>, UUID=<uuid>, PARTUUID=<uuid>, PARTLABEL=<name>, " +
	"a /dev path like /dev/vda2, or /dev/disk/by-{label,uuid,partuuid,partlabel}/<value>"

// byDir maps the udev symlink directories to the Spec kind they stand for:
// with no udev in the initramfs those links do not exist, so the path is
// turned into what it means.
var byDir = map[string]string{
	"/dev/disk/by-label":     "LABEL",
	"/dev/disk/by-uuid":      "UUID",
	"/dev/disk/by-partuuid":  "PARTUUID",
	"/dev/disk/by-partlabel": "PARTLABEL",
}

// ParseSpec parses a device spec: "LABEL=linux", "UUID=...", "PARTUUID=...",
// "PARTLABEL=...", "/dev/vda2", or a udev link such as
// "/dev/disk/by-label/linux" (which becomes LABEL=linux).
func ParseSpec(s string) (Spec, error) {
	if strings.HasPrefix(s, "/") {
		return parsePath(s)
	}
	kind, value, ok := strings.Cut(s, "=")
	if !ok {
		return Spec{}, fmt.Errorf("device %q: not a device spec; use %s", s, specForms)
	}
	kind = strings.ToUpper(kind)
	switch kind {
	case "LABEL", "UUID", "PARTUUID", "PARTLABEL":
	default:
		return Spec{}, fmt.Errorf("device %q: unknown kind %q; use %s", s, kind, specForms)
	}
	if value == "" {
		return Spec{}, fmt.Errorf("device %q: empty %s value; use %s", s, kind, specForms)
	}
	return Spec{Kind: kind, Value: value}, nil
}

func parsePath(s string) (Spec, error) {
	p := path.Clean(s)
	dir, name := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if kind, ok := byDir[dir]; ok {
		value, err := unescapeUdev(name)
		if err != nil {
			return Spec{}, fmt.Errorf("device %q: %w", s, err)
		}
		if value == "" {
			return Spec{}, fmt.Errorf("device %q: empty %s value; use %s", s, kind, specForms)
		}
		return Spec{Kind: kind, Value: value}, nil
	}
	if strings.HasPrefix(p, "/dev/disk/") {
		return Spec{}, fmt.Errorf("device %q: %s links are made by udev, which the initramfs does not run; use %s",
			s, dir, specForms)
	}
	if !strings.HasPrefix(p, "/dev/") {
		return Spec{}, fmt.Errorf("device %q: a path must be under /dev; use %s", s, specForms)
	}
	return Spec{Kind: "PATH", Value: p}, nil
}

// unescapeUdev undoes udev's \xNN escaping of /dev/disk/by-* names
// (a label "my disk" is linked as by-label/my\x20disk).
func unescapeUdev(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) || s[i+1] != 'x' {
			return "", errors.New(`bad escape: udev names escape bytes as \xNN`)
		}
		v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			return "", fmt.Errorf(`bad escape %q: udev names escape bytes as \xNN`, s[i:i+4])
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// String gives the spec back in the form ParseSpec accepts.
func (s Spec) String() string {
	if s.Kind == "PATH" {
		return s.Value
	}
	return s.Kind + "=" + s.Value
}

// Match reports whether d is the device s names. UUIDs compare
// case-insensitively because blkid prints FAT serials upper case and GUIDs
// lower case while users copy them from anywhere; labels are exact, as the
// kernel and blkid treat them. An empty value matches nothing.
func (s Spec) Match(d Device) bool {
	if s.Value == "" {
		return false
	}
	switch s.Kind {
	case "LABEL":
		return d.Label == s.Value
	case "UUID":
		return strings.EqualFold(d.UUID, s.Value)
	case "PARTUUID":
		return strings.EqualFold(d.PartUUID, s.Value)
	case "PARTLABEL":
		return d.PartLabel == s.Value
	case "PATH":
		// On devtmpfs /dev/<kernel name> is always the node, whatever
		// directory Scan was pointed at.
		return s.Value == d.Path || s.Value == "/dev/"+d.Name
	}
	return false
}
