package kmod

import (
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// NoDriver lists the devices seen so far (by Coldplug and Watch) that the kernel asked a driver
// for and that no module of the initramfs matches (nor a built-in one it knows of), as
// "MODALIAS (what it is)", sorted. Only devices that can stand between the kernel and a root
// disk are listed (disk controllers, USB host controllers and mass storage, virtio disks, SCSI
// disks and CD drives, SD cards): a PC has dozens of other devices the boot does not need a
// driver for.
func (l *Loader) NoDriver() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(slices.Values(l.noDriver))
}

// hasDriverLocked reports whether a plan module (loadable, blacklisted or built in) matches the
// normalised modalias m; l.mu is held.
func (l *Loader) hasDriverLocked(m string) bool {
	return slices.ContainsFunc(l.aliases, func(a modindex.Alias) bool { return modindex.Match(a.Pattern, m) })
}

// storageKind says what a device is when it is one a root disk can depend on, from its
// normalised modalias ('-' read as '_'); "" for any other device.
func storageKind(m string) string {
	bus, rest, _ := strings.Cut(m, ":")
	switch bus {
	case "pci":
		// ...bcCCscSSiII: base class, subclass and programming interface, upper-case hex.
		i := strings.LastIndex(rest, "bc")
		if i < 0 || len(rest) < i+8 || rest[i+4:i+6] != "sc" {
			return ""
		}
		class, sub := strings.ToUpper(rest[i+2:i+4]), strings.ToUpper(rest[i+6:i+8])
		switch {
		case class == "01":
			return "PCI mass-storage controller"
		case class == "0C" && sub == "03":
			return "PCI USB controller"
		case class == "08" && sub == "05":
			return "PCI SD host controller"
		}
	case "virtio":
		switch {
		case strings.HasPrefix(rest, "d00000002v"):
			return "virtio disk"
		case strings.HasPrefix(rest, "d00000008v"):
			return "virtio SCSI controller"
		}
	case "usb":
		if strings.Contains(rest, "ic08") {
			return "USB mass-storage device"
		}
	case "scsi":
		switch rest {
		case "t_0x00", "t_0x0e":
			return "SCSI disk"
		case "t_0x05":
			return "CD/DVD drive"
		}
	case "mmc":
		return "SD/MMC card"
	}
	return ""
}
