package diskimage

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

// fakeEFI stands in for a boot manager: Build checks only the PE "MZ" magic.
var fakeEFI = append([]byte("MZ"), bytes.Repeat([]byte{0x90}, 5000)...)

// btrfsImage makes a small btrfs image file with mkfs.btrfs (no root needed) and a marker
// file written past its first MiB, so that the copy can be checked byte for byte.
func btrfsImage(t *testing.T, label string) string {
	t.Helper()
	testenv.Tools(t, "btrfs-progs", "mkfs.btrfs")
	p := filepath.Join(t.TempDir(), "btrfs.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 300<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", "-L", label, p).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v: %s", err, out)
	}
	return p
}

func entry(t *testing.T, ref string) bootloader.Entry {
	t.Helper()
	e, err := bootloader.ImageEntry(ref, bootloader.Volume{}, "/dockerinit/"+strings.ReplaceAll(ref, ":", "-"),
		"root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestBuild(t *testing.T) {
	data := btrfsImage(t, "linux")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	initrd := filepath.Join(dir, "initramfs.img")
	efi := filepath.Join(dir, "boot.efi")
	for p, b := range map[string][]byte{kernel: bytes.Repeat([]byte("k"), 3<<20), initrd: []byte("initramfs"), efi: fakeEFI} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	main, old := entry(t, "desktop"), entry(t, "desktop:old")
	files := map[string]string{"/dockerinit/desktop/vmlinuz": kernel, "/dockerinit/desktop/initramfs.img": initrd}
	for _, tc := range []struct {
		kind   bootloader.Kind
		config string
		check  func(t *testing.T, conf string, read func(string) string)
	}{
		{bootloader.Refind, "/EFI/BOOT/refind.conf", func(t *testing.T, conf string, _ func(string) string) {
			got, err := bootloader.ParseRefind(conf)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Title != main.Title || got[1].Title != old.Title || got[0].Cmdline != main.Cmdline || got[0].Kernel != main.Kernel || got[0].Volume.Label != "" {
				t.Errorf("rEFInd entries %+v, want %s then %s, on rEFInd's own volume", got, main.Title, old.Title)
			}
			for _, want := range []string{"timeout 3\n", "scanfor manual\n", "default_selection 1\n"} {
				if !strings.Contains(conf, want) {
					t.Errorf("refind.conf lacks %q:\n%s", want, conf)
				}
			}
		}},
		{bootloader.GRUB, "/EFI/BOOT/grub.cfg", func(t *testing.T, conf string, _ func(string) string) {
			got, err := bootloader.ParseGRUB(conf)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].ID != main.ID || got[1].ID != old.ID || got[0].Cmdline != main.Cmdline || got[0].Volume.UUID == "" || got[0].Volume.FSType != "vfat" {
				t.Errorf("GRUB entries %+v, want %s then %s, searching the ESP by UUID", got, main.ID, old.ID)
			}
			for _, want := range []string{"set timeout=3\n", "set default=0\n", "terminal_output console serial\n"} {
				if !strings.Contains(conf, want) {
					t.Errorf("grub.cfg lacks %q:\n%s", want, conf)
				}
			}
		}},
		{bootloader.SystemdBoot, "/loader/loader.conf", func(t *testing.T, conf string, read func(string) string) {
			if !strings.Contains(conf, "timeout 3\n") || !strings.Contains(conf, "default "+main.ID+".conf\n") {
				t.Errorf("loader.conf does not boot %s after 3 s:\n%s", main.ID, conf)
			}
			for _, e := range []bootloader.Entry{main, old} {
				got, err := bootloader.ParseBLS(e.ID, read("/loader/entries/"+e.ID+".conf"))
				if err != nil || got != e {
					t.Errorf("loader/entries/%s.conf = %+v, %v; want %+v", e.ID, got, err, e)
				}
			}
		}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "disk.img")
			res, err := Build(Options{Out: out, Kind: tc.kind, EFIBinary: efi, Entries: []bootloader.Entry{main, old},
				Files: files, Timeout: 3, Serial: true, ESPSize: 64 << 20, DataImage: data})
			if err != nil {
				t.Fatal(err)
			}
			if res.Data.Label != "linux" || res.ESP.Label != ESPLabel || res.ESP.UUID == "" || res.Config != tc.config {
				t.Errorf("Result = %+v, want the btrfs labelled linux, the ESP %s with a UUID, config %s", res, ESPLabel, tc.config)
			}
			d, err := diskfs.Open(out, diskfs.WithOpenMode(diskfs.ReadOnly))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			table, ok := d.Table.(*gpt.Table)
			if !ok || len(table.Partitions) != 2 || !table.ProtectiveMBR {
				t.Fatalf("partition table %T %+v, want GPT with a protective MBR and two partitions", d.Table, d.Table)
			}
			esp, part2 := table.Partitions[0], table.Partitions[1]
			if esp.Type != gpt.EFISystemPartition || esp.Start != 2048 || esp.Size != 64<<20 || part2.Type != gpt.LinuxFilesystem || part2.Name != "linux" {
				t.Errorf("partitions %+v %+v, want the ESP at 1 MiB (64 MiB) then a Linux partition named linux", esp, part2)
			}
			fs, err := d.GetFilesystem(1)
			if err != nil {
				t.Fatal(err)
			}
			read := func(p string) string {
				b, err := fs.ReadFile(strings.TrimPrefix(p, "/"))
				if err != nil {
					t.Fatalf("read %s from the ESP: %v", p, err)
				}
				return string(b)
			}
			if read(fallbackLoader) != string(fakeEFI) || read("/dockerinit/desktop/vmlinuz") != strings.Repeat("k", 3<<20) || read("/dockerinit/desktop/initramfs.img") != "initramfs" {
				t.Error("the boot manager, kernel or initramfs on the ESP differ from the files given")
			}
			tc.check(t, read(res.Config), read)
			// Partition 2 is the btrfs image, byte for byte.
			want, err := os.ReadFile(data)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := make([]byte, len(want))
			if _, err := f.ReadAt(got, int64(part2.Start)*512); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("partition 2 is not a copy of the btrfs image")
			}
			var st syscall.Stat_t
			if err := syscall.Stat(out, &st); err != nil {
				t.Fatal(err)
			}
			if used := st.Blocks * 512; used > 64<<20 {
				t.Errorf("the disk image uses %d MiB on disk: the zeros of the btrfs image were written, not skipped", used>>20)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
				t.Errorf("temporary files left: %q", left)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(existing, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	notEFI := filepath.Join(dir, "not.efi")
	if err := os.WriteFile(notEFI, []byte("#!/bin/sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := Options{Out: filepath.Join(dir, "new.img"), Kind: bootloader.GRUB, DataImage: "/nonexistent", Entries: []bootloader.Entry{{ID: "x"}}}
	var blockDev string
	if m, _ := filepath.Glob("/dev/loop[0-9]*"); len(m) > 0 {
		blockDev = m[0]
	}
	for _, tc := range []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"existing file", func(o *Options) { o.Out = existing }, "exists: pass --force"},
		{"directory", func(o *Options) { o.Out, o.Force = dir, true }, "is a directory"},
		{"block device", func(o *Options) { o.Out = blockDev }, "is a block device"},
		{"refind-linux", func(o *Options) { o.Kind = bootloader.RefindLinux }, "refind, grub or systemd-boot"},
		{"tiny ESP", func(o *Options) { o.ESPSize = 8 << 20 }, "too small for FAT32"},
		{"tiny btrfs", func(o *Options) { o.DataImage, o.DataSize = "", 1<<20 }, "a new btrfs of 1 MiB is too small"},
		{"tiny xfs", func(o *Options) { o.DataImage, o.FSType, o.DataSize = "", "xfs", 256<<20 }, "at least 300M"},
		{"unbootable file system", func(o *Options) { o.FSType = "vfat" }, "boots from btrfs, ext4, xfs only"},
		{"no entries", func(o *Options) { o.Entries = nil }, "no menu entries"},
		{"not an EFI binary", func(o *Options) { o.EFIBinary = notEFI }, "not an EFI executable"},
		{"UKI with GRUB", func(o *Options) { o.Entries, o.UKI = nil, "/EFI/Linux/a.efi" }, "--bootloader systemd-boot, not grub"},
		{"enrolling with GRUB", func(o *Options) { o.EnrollKeys = true }, "--bootloader systemd-boot, not grub"},
		{"UKI elsewhere", func(o *Options) { o.Kind, o.Entries, o.UKI = bootloader.SystemdBoot, nil, "/dockerinit/a.efi" }, "want /EFI/Linux/NAME.efi"},
		{"UKI and entries", func(o *Options) { o.Kind, o.UKI = bootloader.SystemdBoot, "/EFI/Linux/a.efi" }, "want /EFI/Linux/NAME.efi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "block device" && blockDev == "" {
				t.Skip("no /dev/loop* block device here to refuse")
			}
			o := ok
			tc.edit(&o)
			if _, err := Build(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "precious" {
		t.Errorf("the existing file changed: %q, %v", b, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 2 {
		t.Errorf("files in the output directory: %q, want only the two made by the test", m)
	}
}

// TestBuildSystemdBootCounting: a counted first entry is written as ID+N.conf, and loader.conf's
// default selects it under every name systemd-boot gives it, but no other entry.
func TestBuildSystemdBootCounting(t *testing.T) {
	data := btrfsImage(t, "linux")
	efi := filepath.Join(t.TempDir(), "boot.efi")
	if err := os.WriteFile(efi, fakeEFI, 0o644); err != nil {
		t.Fatal(err)
	}
	counted := entry(t, "desktop")
	counted.SystemdTries = 2
	clash := entry(t, "desktop:latest.1") // dockerinit-desktop-latest.1.conf
	for _, tc := range []struct {
		name    string
		entries []bootloader.Entry
		files   []string
		wantErr string
	}{
		{name: "counted", entries: []bootloader.Entry{counted, entry(t, "desktop:old")},
			files: []string{"dockerinit-desktop-latest+2.conf", "dockerinit-desktop-old.conf"}},
		{name: "an entry the default would also select", entries: []bootloader.Entry{counted, clash}, wantErr: "would also select the entry dockerinit-desktop-latest.1.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "disk.img")
			_, err := Build(Options{Out: out, Kind: bootloader.SystemdBoot, EFIBinary: efi, Entries: tc.entries, Timeout: 1, ESPSize: 64 << 20, DataImage: data})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Build = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fs := espOf(t, out)
			conf, err := fs.ReadFile("loader/loader.conf")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(conf), "\ndefault dockerinit-desktop-latest[+.]*conf\n") {
				t.Errorf("loader.conf does not select the counted entry by a pattern:\n%s", conf)
			}
			for _, f := range tc.files {
				if _, err := fs.ReadFile("loader/entries/" + f); err != nil {
					t.Errorf("loader/entries/%s: %v", f, err)
				}
			}
		})
	}
}

// espOf opens the ESP of the disk image out, read-only, until the test ends.
func espOf(t *testing.T, out string) filesystem.FileSystem {
	t.Helper()
	d, err := diskfs.Open(out, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	fs, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestBuildUKI: a Secure Boot disk has the UKI in /EFI/Linux/, no entry files, the keys in
// /loader/keys/auto/ and a loader.conf that enrolls them and boots the UKI.
func TestBuildUKI(t *testing.T) {
	data := btrfsImage(t, "linux")
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range []string{"/EFI/Linux/dockerinit-desktop-latest.efi", "/loader/keys/auto/PK.auth", "/loader/keys/auto/KEK.auth", "/loader/keys/auto/db.auth"} {
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
		files[f] = p
	}
	efi := filepath.Join(dir, "boot.efi")
	if err := os.WriteFile(efi, fakeEFI, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "disk.img")
	if _, err := Build(Options{Out: out, Kind: bootloader.SystemdBoot, EFIBinary: efi, UKI: "/EFI/Linux/dockerinit-desktop-latest.efi",
		EnrollKeys: true, Files: files, Timeout: 1, ESPSize: 64 << 20, DataImage: data}); err != nil {
		t.Fatal(err)
	}
	fs := espOf(t, out)
	conf, err := fs.ReadFile("loader/loader.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "\ndefault dockerinit-desktop-latest.efi\nsecure-boot-enroll force\n") {
		t.Errorf("loader.conf:\n%s", conf)
	}
	for f := range files {
		if b, err := fs.ReadFile(f); err != nil || string(b) != f {
			t.Errorf("%s on the ESP: %q, %v", f, b, err)
		}
	}
	if entries, err := fs.ReadDir("/loader/entries"); err == nil && len(entries) > 0 {
		t.Errorf("entry files beside the UKI: %d", len(entries))
	}
}
