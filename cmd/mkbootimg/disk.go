package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootloader/diskimage"
)

func init() {
	commands["disk"] = command{"write a bootable GPT disk image: an ESP with a boot manager, and a btrfs partition", runDisk}
}

const diskHelp = `mkbootimg disk: write a bootable raw GPT disk image for an image.

Usage:
  mkbootimg disk --out disk.img --bootloader refind|grub|systemd-boot --docker-root DIR --image REF [flags]

The disk has two partitions:
  1  the ESP (FAT32): the boot manager as EFI/BOOT/BOOTX64.EFI (the host's, from Debian's refind,
     grub-efi-amd64-bin or systemd-boot-efi, or --efi-binary), its configuration, and the image's
     kernel and initramfs in dockerinit/IMAGE/. The menu has one entry per image (--also adds
     more) and boots the first after --timeout seconds.
  2  the btrfs for the Docker data root, GPT name = its label: a copy of --btrfs-image, or a new
     empty btrfs of --btrfs-size labelled --label. Fill a new one by running dockerd on it (see
     the README, "Boot managers"): the command line expects the Docker root at --docker-path
     (default docker) and boots root=LABEL=<label>.

An existing file is never overwritten and a block device never written without --force.

Flags:
`

func runDisk(args []string) error {
	fs := newFlags("disk", diskHelp)
	b := addBuildFlags(fs)
	ef := addEntryFlags(fs, false)
	var d diskimage.Options
	fs.StringVar(&d.Out, "out", "", "the disk image file to write (required)")
	fs.BoolVar(&d.Force, "force", false, "replace an existing file, or write to a block device")
	fs.StringVar(&d.EFIBinary, "efi-binary", "", "the boot manager's EFI executable (default: the host's, from its Debian package)")
	fs.IntVar(&d.Timeout, "timeout", 5, "seconds the menu waits before booting the first entry")
	fs.BoolVar(&d.Serial, "serial", false, "GRUB's menu also on the serial port ttyS0 (add console=ttyS0 with --append for the kernel)")
	fs.StringVar(&d.BtrfsImage, "btrfs-image", "", "a btrfs file system image to copy into partition 2 (its label names root=)")
	fs.StringVar(&d.Label, "label", "", "label of a new btrfs, and partition 2's GPT name (default: the --btrfs-image's label, else linux)")
	espSize := fs.String("esp-size", "260M", "size of the ESP")
	btrfsSize := fs.String("btrfs-size", "8G", "size of a new btrfs (without --btrfs-image)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	var err error
	if d.ESPSize, err = parseSize(*espSize); err != nil {
		return fmt.Errorf("--esp-size: %w", err)
	}
	if d.BtrfsSize, err = parseSize(*btrfsSize); err != nil {
		return fmt.Errorf("--btrfs-size: %w", err)
	}
	tmp, err := os.MkdirTemp("", "mkbootimg-disk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o, err := b.options(tmp)
	if err != nil {
		return err
	}
	data := bootloader.Volume{FSType: "btrfs", Label: d.Label}
	if d.BtrfsImage != "" {
		if data, err = diskimage.ProbeBtrfs(d.BtrfsImage); err != nil {
			return fmt.Errorf("--btrfs-image: %w", err)
		}
		if d.Label != "" && d.Label != data.Label {
			return fmt.Errorf("--label %s, but the --btrfs-image is labelled %q: drop --label, or relabel the image (btrfs filesystem label FILE %s)", d.Label, data.Label, d.Label)
		}
	} else if data.Label == "" {
		data.Label = "linux"
	}
	// The entries boot this disk's btrfs, whatever the build host's Docker root is on.
	if o.Config.Root.Device == "" {
		o.Config.Root.Device = data.Spec()
	}
	if o.Config.Root.DockerPath == "" {
		o.Config.Root.DockerPath = "docker"
	}
	m, err := ef.newMenu(o)
	if err != nil {
		return err
	}
	d.Kind = m.kind
	if m.kind == bootloader.RefindLinux {
		return errors.New("--bootloader refind-linux makes lines for an installed rEFInd; a disk boots with refind, grub or systemd-boot")
	}
	if err := d.Check(); err != nil {
		return err
	}
	res, err := bootimage.Build(o)
	if err != nil {
		return err
	}
	slug, err := bootloader.ImageSlug(o.Image)
	if err != nil {
		return err
	}
	dir := "/dockerinit/" + slug
	d.Files = map[string]string{dir + "/vmlinuz": res.VMLinuz, dir + "/initramfs.img": res.Initramfs}
	if d.Entries, err = m.entries(bootloader.Volume{}, dir); err != nil {
		return err
	}
	disk, err := diskimage.Build(d)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d MiB): kernel %s, initramfs %.1f MB, %d modules\n", disk.Path, disk.Size>>20, res.Kernel.Version, float64(res.InitramfsSize)/1e6, res.Modules)
	fmt.Printf("  partition 1: ESP %s (UUID %s), %s boot menu in %s:\n", disk.ESP.Label, disk.ESP.UUID, m.kind, disk.Config)
	for _, e := range disk.Entries {
		fmt.Printf("    %s: %s\n", e.Title, e.Cmdline)
	}
	fmt.Printf("  partition 2: btrfs %s (UUID %s)", disk.Data.Spec(), disk.Data.UUID)
	if d.BtrfsImage == "" {
		fmt.Printf(", empty: put the Docker data root in docker/ on it (README, \"Boot managers\")")
	}
	fmt.Println()
	return nil
}

// parseSize reads 8G, 260M, 512K or a number of bytes (powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			mult, t = int64(1)<<(10*(i+1)), t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a size such as 260M or 8G", s)
	}
	return n * mult, nil
}
