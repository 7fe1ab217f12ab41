package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootloader/diskimage"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/internal/atomicfile"
	"github.com/dockerinit/dockerinit/uki"
)

func init() {
	commands["disk"] = command{"write a bootable GPT disk image: an ESP with a boot manager, and the image store's file system (btrfs, ext4 or xfs)", runDisk}
}

const diskHelp = `mkbootimg disk: write a bootable raw GPT disk image for an image.

Usage:
  mkbootimg disk --out disk.img --bootloader refind|grub|systemd-boot --store DIR --image REF
                 [--data-image FILE | --btrfs-image FILE | --data-fstype btrfs|ext4|xfs --data-size 16G] [flags]

The disk has two partitions:
  1  the ESP (FAT32): the boot manager as EFI/BOOT/BOOTX64.EFI (the host's, from Debian's refind,
     grub-efi-amd64-bin or systemd-boot-efi, or --efi-binary), its configuration, and the image's
     kernel and initramfs in dockerinit/IMAGE/. The menu has one entry per image (--also adds
     more) and boots the first after --timeout seconds.
  2  the file system holding the image store, GPT name = its label, one of:
     --data-image FILE  a copy of a btrfs, ext4 or xfs file system image (not a partitioned disk)
                        holding any store dockerinit boots: a Docker data root (btrfs or overlay2
                        driver, or its containerd image store), a containerd root (btrfs or
                        overlayfs snapshotter) or a containers-storage root (overlay or btrfs
                        driver); one kept as btrfs subvolumes needs a btrfs. Its label (else
                        its UUID) names root=, and its type is embedded as root.fstype. The
                        kernel and modules are read from --store: mount the same file system
                        (mount -o loop,ro FILE /mnt; ext4 with noload, xfs with norecovery) and
                        give --store /mnt/var/lib/docker (or /mnt/var/lib/containerd, ...):
                        docker_path= is then the store's path in it. With --store elsewhere, say
                        where the store is in the image with --docker-path.
     --btrfs-image FILE the same for a btrfs image only; docker_path= is docker unless
                        --docker-path says otherwise.
     neither            a new empty file system of --data-fstype (btrfs, or ext4 or xfs, made by
                        the host's mkfs.btrfs, mkfs.ext4 or mkfs.xfs) and --data-size, labelled
                        --label. Fill it by running dockerd (or podman, containerd) on it (see the
                        README, "Boot managers"): the command line expects the store at
                        --docker-path (default docker).

Secure Boot (--secure-boot --keys DIR, from mkbootimg keys): partition 1 instead holds
systemd-boot signed with DIR's db key, one signed UKI per image (--image, then --also; the first
counted with --tries) in EFI/Linux/ (booted without entry files; each with its command line
sealed, see mkbootimg uki; the first is the default) and DIR's PK, KEK and db lists in
loader/keys/auto/, with secure-boot-enroll force in loader.conf: on the first boot with the
firmware in setup mode, systemd-boot enrolls them (after a countdown) and resets; from then on
the firmware boots only what db signed.

An existing file is never overwritten and a block device never written without --force.

Flags:
`

func runDisk(args []string) error {
	atomicfile.RemoveOnSignal()
	fs := newFlags("disk", diskHelp)
	b := addBuildFlags(fs)
	ef := addEntryFlags(fs, false)
	var d diskimage.Options
	fs.StringVar(&d.Out, "out", "", "the disk image file to write (required)")
	fs.BoolVar(&d.Force, "force", false, "replace an existing file, or write to a block device")
	fs.StringVar(&d.EFIBinary, "efi-binary", "", "the boot manager's EFI executable (default: the host's, from its Debian package)")
	fs.IntVar(&d.Timeout, "timeout", 5, "seconds the menu waits before booting the first entry")
	fs.BoolVar(&d.Serial, "serial", false, "GRUB's menu also on the serial port ttyS0 (add console=ttyS0 with --append for the kernel)")
	dataImage := fs.String("data-image", "", "a btrfs, ext4 or xfs file system image holding the image store, to copy into partition 2 (its label, else UUID, names root=)")
	btrfsImage := fs.String("btrfs-image", "", "a btrfs file system image to copy into partition 2 (its label names root=)")
	fs.StringVar(&d.FSType, "data-fstype", "", "file system of a new partition 2: btrfs, ext4 or xfs (default btrfs); with --data-image, the type it must have")
	fs.StringVar(&d.Label, "label", "", "label of a new file system, and partition 2's GPT name (default: the image's label, else linux)")
	espSize := fs.String("esp-size", "260M", "size of the ESP")
	asUKI := fs.Bool("uki", false, "one UKI per image (mkbootimg uki) in the ESP's EFI/Linux/ instead of kernel + initramfs: systemd-boot lists them by itself, GRUB and rEFInd get entries that start them (--keys signs them; --secure-boot implies it)")
	secureBoot := fs.Bool("secure-boot", false, "Secure Boot: the ESP gets systemd-boot and one UKI per image (in EFI/Linux/), all signed with --keys' db, and the keys, which systemd-boot enrolls on the first boot if the firmware is in setup mode (needs --keys; --bootloader is systemd-boot)")
	var uf ukiFlags
	addUKIFlags(&uf, fs)
	dataSize := fs.String("data-size", "8G", "size of a new file system (without --data-image or --btrfs-image)")
	fs.StringVar(dataSize, "btrfs-size", "8G", "the same as --data-size, by its first name")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	var err error
	if d.ESPSize, err = parseSize(*espSize); err != nil {
		return fmt.Errorf("--esp-size: %w", err)
	}
	if d.DataSize, err = parseSize(*dataSize); err != nil {
		return fmt.Errorf("--data-size (--btrfs-size): %w", err)
	}
	imageFlag := "--data-image"
	switch {
	case *btrfsImage != "" && *dataImage != "":
		return errors.New("--btrfs-image and --data-image both given: use one (--data-image takes btrfs too)")
	case *btrfsImage != "" && d.FSType != "" && d.FSType != "btrfs":
		return fmt.Errorf("--btrfs-image with --data-fstype %s: use --data-image for an %[1]s image", d.FSType)
	case *btrfsImage != "":
		imageFlag, d.DataImage, d.FSType = "--btrfs-image", *btrfsImage, "btrfs"
	default:
		d.DataImage = *dataImage
	}
	var keys *uki.Keys
	switch {
	case *secureBoot:
		k, err := secureBootFlags(ef, uf)
		if err != nil {
			return err
		}
		keys, *asUKI = &k, true
	case (uf.keys != "" || uf.stub != "") && !*asUKI:
		return errors.New("--keys and --stub make UKIs: add --uki (or --secure-boot)")
	default:
		if keys, err = uf.openKeys(); err != nil {
			return err
		}
	}
	o, remove, err := b.scratchOptions("disk")
	if err != nil {
		return err
	}
	defer remove()
	tmp := o.Out
	data, err := dataVolume(d, imageFlag)
	if err != nil {
		return err
	}
	// The entries boot this disk's file system, whatever the build host's store is on.
	if err := bootOnData(&o.Config.Root, data, d.DataImage != "" && *btrfsImage == "", o.DockerRoot); err != nil {
		return err
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
	slug, err := bootloader.ImageSlug(o.Image)
	if err != nil {
		return err
	}
	var (
		res  *bootimage.Result
		ukis []*ukiResult
	)
	if *asUKI {
		if ukis, err = menuUKIs(o, m, uf.stub, keys, tmp, tmp); err != nil {
			return err
		}
		res = ukis[0].res
		d.Files = map[string]string{}
		for _, u := range ukis {
			name := "/EFI/Linux/" + filepath.Base(u.path)
			d.Files[name] = u.path
			switch {
			case m.kind != bootloader.SystemdBoot:
				d.Entries = append(d.Entries, u.entry(bootloader.Volume{}, "/EFI/Linux"))
			case d.UKI == "":
				d.UKI = name // loader.conf's default; systemd-boot lists the others by itself
			}
		}
		if *secureBoot {
			if err := secureBootESP(&d, *keys, tmp); err != nil {
				return err
			}
		}
	} else {
		if res, err = bootimage.Build(o); err != nil {
			return err
		}
		dir := "/dockerinit/" + slug
		d.Files = map[string]string{dir + "/vmlinuz": res.VMLinuz, dir + "/initramfs.img": res.Initramfs}
		if d.Entries, err = m.entries(bootloader.Volume{}, dir); err != nil {
			return err
		}
	}
	disk, err := diskimage.Build(d)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d MiB): kernel %s, initramfs %.1f MB, %d modules\n", disk.Path, disk.Size>>20, res.Kernel.Version, float64(res.InitramfsSize)/1e6, res.Modules)
	fmt.Printf("  partition 1: ESP %s (UUID %s), %s boot menu in %s:\n", disk.ESP.Label, disk.ESP.UUID, m.kind, disk.Config)
	for _, e := range disk.Entries {
		if !e.UKI {
			fmt.Printf("    %s: %s\n", e.Title, e.Cmdline)
		}
	}
	for _, u := range ukis {
		what := "UKI"
		if u.signed {
			what = "signed UKI"
		}
		fmt.Printf("    %s: /EFI/Linux/%s (%s), sealed: %s\n", u.title, filepath.Base(u.path), what, u.cmdline)
	}
	if d.EnrollKeys {
		fmt.Printf("    Secure Boot keys in /loader/keys/auto/: systemd-boot enrolls them on the first boot in setup mode (then resets)\n")
	}
	fmt.Printf("  partition 2: %s %s (UUID %s)", disk.Data.FSType, disk.Data.Spec(), disk.Data.UUID)
	if d.DataImage == "" {
		fmt.Printf(", empty: put the image store in %s/ on it (README, \"Boot managers\")", o.Config.Root.DockerPath)
	}
	fmt.Println()
	return nil
}

// dataVolume is the file system partition 2 will hold: the image's, read from its superblock,
// or the new one's.
func dataVolume(d diskimage.Options, imageFlag string) (bootloader.Volume, error) {
	if d.FSType != "" && !slices.Contains(bootparam.RootFSTypes, d.FSType) {
		return bootloader.Volume{}, fmt.Errorf("--data-fstype %s: an image store boots from %s only", d.FSType, strings.Join(bootparam.RootFSTypes, ", "))
	}
	if d.DataImage == "" {
		v := bootloader.Volume{FSType: d.FSType, Label: d.Label}
		if v.FSType == "" {
			v.FSType = diskimage.DefaultFSType
		}
		if v.Label == "" {
			v.Label = "linux"
		}
		return v, nil
	}
	v, err := diskimage.ProbeData(d.DataImage, d.FSType)
	if err != nil {
		return v, fmt.Errorf("%s: %w", imageFlag, err)
	}
	if d.Label != "" && d.Label != v.Label {
		relabel := map[string]string{"btrfs": "btrfs filesystem label FILE %s", "ext4": "e2label FILE %s", "xfs": "xfs_admin -L %s FILE"}[v.FSType]
		return v, fmt.Errorf("--label %s, but the %s is labelled %q: drop --label, or relabel the image ("+relabel+")", d.Label, imageFlag, v.Label, d.Label)
	}
	return v, nil
}

// bootOnData points the root settings not given as flags at the data partition: root= by its
// label or UUID, its file system type, and where the store is on it. For a --data-image
// (fromStore) that is --store's path in its file system, which must be the image's; a new file
// system or a --btrfs-image expects it at docker/, as the README's recipe fills it.
func bootOnData(root *bootparam.RootConfig, data bootloader.Volume, fromStore bool, store string) error {
	if root.Device == "" {
		root.Device = data.Spec()
	}
	switch {
	case root.FSType == "":
		root.FSType = data.FSType
	case root.FSType != data.FSType:
		return fmt.Errorf("--root-fstype %s, but partition 2 holds %s: drop --root-fstype, it is read from the data partition", root.FSType, data.FSType)
	}
	if root.DockerPath != "" {
		return nil
	}
	if !fromStore {
		root.DockerPath = "docker"
		return nil
	}
	if store == "" {
		return errors.New("--data-image: say where the image store is in it with --docker-path (e.g. var/lib/docker), or give --store as its path in the mounted image")
	}
	loc, err := bootloader.Locate(store)
	p, err := storePath(loc, err, data)
	if err != nil {
		return fmt.Errorf("--store %s: %w", store, err)
	}
	root.DockerPath = p
	return nil
}

// storePath is the store's path in the data image's file system, given where Locate found the
// store (or why it could not).
func storePath(loc bootloader.Location, locErr error, data bootloader.Volume) (string, error) {
	const mounted = "mount the data image (mount -o loop,ro FILE /mnt) and give --store as the store's folder in it, or give its path in the image with --docker-path"
	switch {
	case locErr != nil:
		return "", fmt.Errorf("%w: the store's file system cannot be compared with the data image's; %s", locErr, mounted)
	case loc.Volume.UUID != data.UUID || loc.Volume.FSType != data.FSType:
		return "", fmt.Errorf("the store is on %s (%s, UUID %s), not on the data image's file system (%s, UUID %s): %s",
			loc.Source, loc.Volume.FSType, loc.Volume.UUID, data.FSType, data.UUID, mounted)
	}
	p := strings.Trim(loc.Path, "/")
	if p == "" {
		return "", errors.New("the store is the data image's top folder: dockerinit keeps its rw layer beside the store, so the store must be in a folder of it (move it, e.g. to docker/)")
	}
	return p, nil
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

// secureBootFlags checks the flags of --secure-boot, and the keys, before anything is built.
func secureBootFlags(ef *entryFlags, uf ukiFlags) (uki.Keys, error) {
	switch {
	case ef.kind == "":
		ef.kind = string(bootloader.SystemdBoot)
	case ef.kind != string(bootloader.SystemdBoot):
		return uki.Keys{}, fmt.Errorf("--secure-boot boots UKIs with systemd-boot, which enrolls the keys: drop --bootloader %s", ef.kind)
	}
	if uf.keys == "" {
		return uki.Keys{}, errors.New("--secure-boot needs --keys DIR: make them with mkbootimg keys --out DIR")
	}
	return uki.OpenKeys(uf.keys)
}

// secureBootESP signs systemd-boot in tmp with keys and puts it, with the keys to enroll, in d.
func secureBootESP(d *diskimage.Options, keys uki.Keys, tmp string) error {
	boot := d.EFIBinary
	if boot == "" {
		p, pkg := diskimage.EFIBinary(bootloader.SystemdBoot)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("no systemd-boot on this host (%s): apt-get install %s, or pass --efi-binary FILE", p, pkg)
		}
		boot = p
	}
	d.EFIBinary = filepath.Join(tmp, "systemd-bootx64.efi")
	if err := uki.Sign(keys, boot, d.EFIBinary); err != nil {
		return err
	}
	d.EnrollKeys = true
	for _, name := range uki.KeyNames {
		d.Files["/loader/keys/auto/"+name+".auth"] = keys.Path(name, "auth")
	}
	return nil
}
