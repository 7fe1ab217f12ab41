package modtree

import "slices"

// Generic is the default module set: what it takes to find and mount the root file system and
// type at the rescue shell on common PCs, servers and virtual machines. Pass it as Bundle's
// optional names: kernels build some of these in, and lack others.
var Generic = append(slices.Clone(GenericFS),
	// virtual machines
	"virtio_pci", "virtio_blk", "virtio_scsi", "virtio_console",
	// disks: SATA, NVMe (and Intel VMD in front of it), SCSI disks and CD drives, old IDE, SD cards
	"ahci", "ata_piix", "nvme", "vmd", "sd_mod", "sr_mod", "mmc_block", "sdhci_pci", "sdhci_acpi",
	// USB disks and keyboards
	"xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usb_storage", "uas", "usbhid", "hid_generic",
	// PS/2 keyboards
	"i8042", "atkbd",
)

// GenericFS are Generic's file systems: the root holding the store (btrfs, ext4, xfs, and overlayfs over its layers), an ESP or USB stick, a top layer on
// another file system or a CD, and the character sets FAT and ISO 9660 mount with.
var GenericFS = []string{"btrfs", "vfat", "ext4", "xfs", "overlay", "isofs", "nls_cp437", "nls_ascii", "nls_iso8859_1", "nls_utf8"}
