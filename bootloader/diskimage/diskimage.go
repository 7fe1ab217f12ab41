// Package diskimage owns bootable raw disk images: a GPT disk with an EFI system partition
// (FAT32, written with go-diskfs) holding a boot manager, its configuration and the kernel and
// initramfs, and a second partition for the btrfs file system that holds the Docker data root.
package diskimage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/atomicfile"
)

const (
	sector = 512
	mib    = 1 << 20
	// DefaultESPSize holds a boot manager and several kernels with their initramfs. FAT32 needs
	// 65525 clusters, which go-diskfs does not check: keep the ESP above 34 MiB.
	DefaultESPSize = 260 * mib
	minESPSize     = 40 * mib
	// ESPLabel is the FAT label of the ESP.
	ESPLabel = "DOCKERINIT"
	// fallbackLoader is where UEFI firmware looks on a disk it has no boot entry for.
	fallbackLoader = "/EFI/BOOT/BOOTX64.EFI"
)

// Options say what goes on the disk.
type Options struct {
	Out   string // the disk image file to write
	Force bool   // overwrite an existing file, or write to a block device
	Kind  bootloader.Kind
	// EFIBinary is the boot manager to install; empty: the host's, from its Debian package.
	EFIBinary string
	// Entries are the menu, the first being the default. Their kernels and initrds are paths on
	// the ESP: Files puts them there.
	Entries []bootloader.Entry
	Files   map[string]string // ESP path -> host file to copy there
	// UKI, for systemd-boot only, is the ESP path of a Unified Kernel Image in /EFI/Linux/ that
	// Files puts there: systemd-boot lists it without an entry file (Type #2) and boots it by
	// default. Entries are then empty.
	UKI string
	// EnrollKeys, for systemd-boot only: Files puts PK.auth, KEK.auth and db.auth in
	// /loader/keys/auto/, and loader.conf has systemd-boot enroll them when the firmware is in
	// setup mode (secure-boot-enroll force).
	EnrollKeys bool
	Timeout    int   // seconds the menu waits before it boots the default entry
	Serial     bool  // GRUB's menu also on the first serial port (firmware menus follow the firmware's console)
	ESPSize    int64 // 0: DefaultESPSize
	// The data partition: a copy of the file system image DataImage (btrfs, ext4 or xfs; of
	// type FSType when that is set), or else a new empty file system of FSType (default btrfs)
	// labelled Label, of DataSize bytes, made by the host's mkfs.
	DataImage string
	FSType    string
	DataSize  int64
	Label     string
}

// Result says what was written.
type Result struct {
	Path    string
	Size    int64
	ESP     bootloader.Volume
	Data    bootloader.Volume // the file system of the data partition
	Config  string            // the boot manager's configuration file on the ESP
	Entries []bootloader.Entry
}

// efiBinaries are the boot managers on a Debian host, with the package that has each.
var efiBinaries = map[bootloader.Kind]struct{ path, pkg string }{
	bootloader.Refind:      {"/usr/share/refind/refind/refind_x64.efi", "refind"},
	bootloader.GRUB:        {"/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi", "grub-efi-amd64-bin"},
	bootloader.SystemdBoot: {"/usr/lib/systemd/boot/efi/systemd-bootx64.efi", "systemd-boot-efi"},
}

// EFIBinary is the host's boot manager of kind, from its Debian package, and that package.
func EFIBinary(kind bootloader.Kind) (path, pkg string) {
	b := efiBinaries[kind]
	return b.path, b.pkg
}

// Build writes the disk image. A file is written beside Out, synced and renamed over it at the
// end, so that an interrupted build leaves no half disk at Out, and the next build removes what it
// left beside it; a block device is written in place.
func Build(o Options) (*Result, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	if len(o.Entries) == 0 && o.UKI == "" {
		return nil, errors.New("no menu entries")
	}
	efi, err := o.efiBinary()
	if err != nil {
		return nil, err
	}
	dev, err := isBlockDevice(o.Out)
	if err != nil {
		return nil, err
	}
	data, cleanup, err := o.dataImage()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	res := &Result{Path: o.Out}
	if res.Data, err = ProbeData(data, o.FSType); err != nil {
		return nil, err
	}
	dataSize, err := fileSize(data)
	if err != nil {
		return nil, err
	}
	l := layout{espStart: mib, espSize: o.ESPSize}
	if l.espSize == 0 {
		l.espSize = DefaultESPSize
	}
	l.espSize = roundUp(l.espSize, mib)
	l.dataStart, l.dataLen = l.espStart+l.espSize, roundUp(dataSize, mib)
	res.Size = l.dataStart + l.dataLen + mib // the last MiB holds the backup GPT

	var (
		f   *os.File
		tmp *atomicfile.Temp // for a file: written in full before it takes Out's name
	)
	if dev {
		if f, err = os.OpenFile(o.Out, os.O_RDWR|os.O_EXCL, 0); err != nil {
			return nil, err
		}
		defer f.Close()
		devSize, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if devSize < res.Size {
			return nil, fmt.Errorf("%s holds %d MiB, the disk needs %d MiB", o.Out, devSize/mib, res.Size/mib)
		}
		res.Size = devSize
	} else {
		if tmp, err = atomicfile.Create(o.Out); err != nil {
			return nil, err
		}
		defer tmp.Discard()
		f = tmp.File
		// Create makes 0600; a disk image is no secret.
		if err := f.Chmod(0o644); err != nil {
			return nil, err
		}
		if err := f.Truncate(res.Size); err != nil {
			return nil, err
		}
	}
	if err := o.write(f, res, efi, data, l, !dev); err != nil {
		return nil, fmt.Errorf("write %s: %w", o.Out, err)
	}
	if dev {
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("write %s: %w", o.Out, err)
		}
		return res, nil
	}
	if err := tmp.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// Check refuses options Build would fail on, before anything is built or written.
func (o Options) Check() error {
	switch {
	case o.Out == "":
		return errors.New("no output: pass --out FILE")
	case o.Kind != bootloader.Refind && o.Kind != bootloader.GRUB && o.Kind != bootloader.SystemdBoot:
		return fmt.Errorf("a disk boots with refind, grub or systemd-boot, not %q", o.Kind)
	case (o.UKI != "" || o.EnrollKeys) && o.Kind != bootloader.SystemdBoot:
		return fmt.Errorf("a UKI and key enrollment are systemd-boot's: --bootloader systemd-boot, not %s", o.Kind)
	case o.UKI != "" && (len(o.Entries) > 0 || path.Dir(o.UKI) != "/EFI/Linux" || path.Ext(o.UKI) != ".efi"):
		return fmt.Errorf("the UKI %s: want /EFI/Linux/NAME.efi, booted without entry files", o.UKI)
	case o.ESPSize != 0 && o.ESPSize < minESPSize:
		return fmt.Errorf("an ESP of %d MiB is too small for FAT32: give at least %d MiB", o.ESPSize/mib, minESPSize/mib)
	}
	if err := o.checkData(); err != nil {
		return err
	}
	fi, err := os.Stat(o.Out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeDevice != 0 && !o.Force:
		return fmt.Errorf("%s is a block device: mkbootimg disk writes image files; pass --force to overwrite the whole device", o.Out)
	case fi.IsDir():
		return fmt.Errorf("%s is a directory: --out names the disk image file to write", o.Out)
	case fi.Mode().IsRegular() && !o.Force:
		return fmt.Errorf("%s exists: pass --force to replace it, or choose another --out", o.Out)
	case !fi.Mode().IsRegular() && fi.Mode()&fs.ModeDevice == 0:
		return fmt.Errorf("%s is neither a file nor a block device", o.Out)
	}
	return nil
}

func isBlockDevice(p string) (bool, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0, nil
}

func (o Options) efiBinary() ([]byte, error) {
	p := o.EFIBinary
	if p == "" {
		def := efiBinaries[o.Kind]
		if _, err := os.Stat(def.path); err != nil {
			return nil, fmt.Errorf("no %s boot manager on this host (%s): apt-get install %s, or pass --efi-binary FILE", o.Kind, def.path, def.pkg)
		}
		p = def.path
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read the boot manager: %w", err)
	}
	if len(b) < 2 || string(b[:2]) != "MZ" {
		return nil, fmt.Errorf("%s is not an EFI executable (no MZ header)", p)
	}
	return b, nil
}

// layout is where the partitions are, in bytes: both start on a MiB boundary.
type layout struct{ espStart, espSize, dataStart, dataLen int64 }

func (o Options) write(f *os.File, res *Result, efi []byte, data string, l layout, sparse bool) error {
	d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(sector))
	if err != nil {
		return err
	}
	label := o.Label
	if label == "" {
		label = res.Data.Label
	}
	if label == "" {
		label = "linux"
	}
	table := &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{
			{Index: 1, Start: uint64(l.espStart / sector), End: uint64((l.espStart+l.espSize)/sector - 1), Type: gpt.EFISystemPartition, Name: "EFI system partition"},
			{Index: 2, Start: uint64(l.dataStart / sector), End: uint64((l.dataStart+l.dataLen)/sector - 1), Type: gpt.LinuxFilesystem, Name: label},
		},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	esp, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: ESPLabel})
	if err != nil {
		return fmt.Errorf("make the ESP: %w", err)
	}
	fstype, fatLabel, uuid, err := blockdev.Probe(io.NewSectionReader(f, l.espStart, l.espSize))
	if err != nil || fstype != "vfat" {
		return fmt.Errorf("read back the ESP: found %q: %v", fstype, err)
	}
	res.ESP = bootloader.Volume{FSType: fstype, Label: fatLabel, UUID: uuid}
	if err := o.fillESP(esp, res, efi); err != nil {
		return fmt.Errorf("fill the ESP: %w", err)
	}
	src, err := os.Open(data)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := copyInto(f, l.dataStart, src, sparse); err != nil {
		return fmt.Errorf("copy %s into partition 2: %w", data, err)
	}
	return nil
}

// fillESP writes the boot manager as the fallback loader, its configuration, and the files.
func (o Options) fillESP(esp filesystem.FileSystem, res *Result, efi []byte) error {
	files := map[string][]byte{fallbackLoader: efi}
	res.Entries = make([]bootloader.Entry, len(o.Entries))
	for i, e := range o.Entries {
		if o.Kind == bootloader.GRUB {
			e.Volume = res.ESP // GRUB finds the ESP by UUID; the others start on their own volume
		}
		res.Entries[i] = e
	}
	var err error
	switch o.Kind {
	case bootloader.Refind:
		res.Config = "/EFI/BOOT/refind.conf"
		files[res.Config], err = refindConf(res.Entries, o.Timeout)
		if err == nil && o.EFIBinary == "" {
			// The btrfs driver lets the menu also load kernels kept on the btrfs partition.
			driver := path.Join(path.Dir(efiBinaries[bootloader.Refind].path), "drivers_x64", "btrfs_x64.efi")
			if b, derr := os.ReadFile(driver); derr == nil {
				files["/EFI/BOOT/drivers_x64/btrfs_x64.efi"] = b
			}
		}
	case bootloader.GRUB:
		// Debian's signed-style monolithic GRUB reads grub.cfg beside itself when its built-in
		// prefix (/EFI/debian) is absent; a grub-mkimage build with prefix /EFI/BOOT does too.
		res.Config = "/EFI/BOOT/grub.cfg"
		files[res.Config], err = grubConf(res.Entries, o.Timeout, o.Serial)
	case bootloader.SystemdBoot:
		res.Config = "/loader/loader.conf"
		if o.UKI != "" {
			files[res.Config] = blsLoaderConf(path.Base(o.UKI), o.Timeout)
			if o.EnrollKeys {
				files[res.Config] = append(files[res.Config], enrollConf...)
			}
			break
		}
		def := bootloader.BLSDefault(res.Entries[0])
		files[res.Config] = blsLoaderConf(def, o.Timeout)
		for i, e := range res.Entries {
			text, rerr := bootloader.BLSEntry(e)
			if rerr != nil {
				return rerr
			}
			file, rerr := bootloader.BLSFile(e)
			if rerr != nil {
				return rerr
			}
			if i > 0 && bootloader.MatchesBLSDefault(def, file) {
				return fmt.Errorf("loader.conf's default %s would also select the entry %s: give the images names that do not extend one another", def, file)
			}
			files["/loader/entries/"+file] = []byte(text)
		}
	}
	if err != nil {
		return err
	}
	for dst, src := range o.Files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		files[dst] = b
	}
	for _, dst := range slices.Sorted(maps.Keys(files)) {
		if err := writeFAT(esp, dst, files[dst]); err != nil {
			return err
		}
	}
	return nil
}

// writeFAT writes one file in a single Write: go-diskfs rewrites both FATs on every Write.
func writeFAT(esp filesystem.FileSystem, name string, b []byte) error {
	if err := esp.Mkdir(path.Dir(name)); err != nil {
		return fmt.Errorf("mkdir %s: %w", path.Dir(name), err)
	}
	w, err := esp.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return w.Close()
}

func fileSize(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
