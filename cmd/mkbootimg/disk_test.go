package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/initramfs"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"260M": 260 << 20, "8G": 8 << 30, "8GiB": 8 << 30, "512k": 512 << 10, "1048576": 1 << 20, "2T": 2 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1M", "1.5G", "0", "99999999999999T"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	f.Add("260M")
	f.Add("8GiB")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSize(s); err == nil && n <= 0 {
			t.Errorf("parseSize(%q) = %d, want a positive size or an error", s, n)
		}
	})
}

func TestStorePath(t *testing.T) {
	data := bootloader.Volume{FSType: "ext4", Label: "linux", UUID: "0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f"}
	at := func(fstype, uuid, path string) bootloader.Location {
		return bootloader.Location{Volume: bootloader.Volume{FSType: fstype, Label: "linux", UUID: uuid}, Path: path, Mount: "/mnt", Source: "/dev/loop0"}
	}
	for _, tc := range []struct {
		name   string
		loc    bootloader.Location
		locErr error
		want   string
		err    string
	}{
		{name: "Docker data root", loc: at("ext4", data.UUID, "/var/lib/docker"), want: "var/lib/docker"},
		{name: "containers-storage root", loc: at("ext4", data.UUID, "/var/lib/containers/storage"), want: "var/lib/containers/storage"},
		{name: "in a btrfs subvolume mount", loc: at("ext4", data.UUID, "/@/var/lib/containerd"), want: "@/var/lib/containerd"},
		{name: "another file system", loc: at("ext4", "11111111-2222-3333-4444-555555555555", "/var/lib/docker"),
			err: "not on the data image's file system (ext4, UUID 0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f): mount the data image"},
		{name: "another type, same UUID", loc: at("xfs", data.UUID, "/var/lib/docker"), err: "not on the data image's file system"},
		{name: "unreadable device", loc: at("ext4", "", "/var/lib/docker"), locErr: errors.New("permission denied"),
			err: "permission denied: the store's file system cannot be compared"},
		{name: "store at the top", loc: at("ext4", data.UUID, "/"), err: "must be in a folder of it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storePath(tc.loc, tc.locErr, data)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("storePath = %q, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("storePath = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestBootOnData(t *testing.T) {
	xfs := bootloader.Volume{FSType: "xfs", UUID: "3f1c0e5a-2b7d-4e8f-a9c6-5d4e3f2a1b0c"}
	btrfs := bootloader.Volume{FSType: "btrfs", Label: "linux", UUID: "8a2ae8d4-7e54-4b3c-9c0c-3f4c4ad1c7a1"}
	for _, tc := range []struct {
		name      string
		given     bootparam.RootConfig
		data      bootloader.Volume
		fromStore bool
		want      bootparam.RootConfig
		err       string
	}{
		{name: "btrfs image or new btrfs: docker/ as before", data: btrfs,
			want: bootparam.RootConfig{Device: "LABEL=linux", FSType: "btrfs", DockerPath: "docker"}},
		{name: "unlabelled image: root by UUID", data: xfs,
			want: bootparam.RootConfig{Device: "UUID=" + xfs.UUID, FSType: "xfs", DockerPath: "docker"}},
		{name: "flags win", data: btrfs, fromStore: true, given: bootparam.RootConfig{Device: "PARTLABEL=store", DockerPath: "srv/docker"},
			want: bootparam.RootConfig{Device: "PARTLABEL=store", FSType: "btrfs", DockerPath: "srv/docker"}},
		{name: "data image without --store nor --docker-path", data: xfs, fromStore: true, err: "say where the image store is in it with --docker-path"},
		{name: "--root-fstype disagrees", data: xfs, given: bootparam.RootConfig{FSType: "ext4"}, err: "--root-fstype ext4, but partition 2 holds xfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.given
			err := bootOnData(&root, tc.data, tc.fromStore, "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("bootOnData = %+v, %v; want an error containing %q", root, err, tc.err)
				}
				return
			}
			if err != nil || root != tc.want {
				t.Errorf("bootOnData = %+v, %v; want %+v", root, err, tc.want)
			}
		})
	}
}

// TestRunDisk makes disks whose partition 2 is an ext4 image holding a store, or a new xfs, and
// checks the entries and the embedded configuration boot that file system.
func TestRunDisk(t *testing.T) {
	testenv.Tools(t, "e2fsprogs", "mkfs.ext4")
	dir := t.TempDir()
	rootfs, initBin, efi, ext4 := filepath.Join(dir, "rootfs"), filepath.Join(dir, "dockerinit"), filepath.Join(dir, "boot.efi"), filepath.Join(dir, "ext4.img")
	for name, data := range map[string]string{
		filepath.Join(rootfs, "boot", "vmlinuz-6.1.0-1-amd64"): "kernel",
		initBin: "\x7fELF fake init",
		efi:     "MZ fake boot manager",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(ext4, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ext4, 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "store", ext4).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	base := []string{"--bootloader", "grub", "--efi-binary", efi, "--esp-size", "40M", "--rootfs", rootfs, "--init", initBin,
		"--modules", "none", "--image", "desktop"}
	for _, tc := range []struct {
		name       string
		args       []string
		wantFSType string
		want       []string // in the output
	}{
		{"ext4 data image", []string{"--data-image", ext4, "--docker-path", "var/lib/containers/storage"}, "ext4",
			[]string{"root=LABEL=store rootflags=subvol=docker_rwlayer rw docker_path=var/lib/containers/storage", "partition 2: ext4 LABEL=store"}},
		{"new xfs", []string{"--data-fstype", "xfs", "--data-size", "300M"}, "xfs",
			[]string{"root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker", "partition 2: xfs LABEL=linux", "empty: put the image store in docker/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantFSType == "xfs" {
				testenv.Tools(t, "xfsprogs", "mkfs.xfs")
			}
			disk := filepath.Join(t.TempDir(), "disk.img")
			out, err := capture(t, func() error { return runDisk(append(append([]string{"--out", disk}, base...), tc.args...)) })
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("mkbootimg disk printed no %q:\n%s", want, out)
				}
			}
			if cfg := diskConfig(t, disk, "/dockerinit/desktop-latest/initramfs.img"); cfg.Root.FSType != tc.wantFSType {
				t.Errorf("the initramfs embeds root.fstype %q, want %q", cfg.Root.FSType, tc.wantFSType)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"both images", []string{"--data-image", ext4, "--btrfs-image", ext4}, "--btrfs-image and --data-image both given"},
		{"ext4 as --btrfs-image", []string{"--btrfs-image", ext4}, `--btrfs-image: ` + ext4 + `: holds "ext4", not a btrfs file system`},
		{"data image, no store", []string{"--data-image", ext4}, "say where the image store is in it with --docker-path"},
		{"label differs", []string{"--data-image", ext4, "--docker-path", "docker", "--label", "other"}, `the --data-image is labelled "store": drop --label, or relabel the image (e2label FILE other)`},
		{"root fstype differs", []string{"--data-image", ext4, "--docker-path", "docker", "--root-fstype", "btrfs"}, "--root-fstype btrfs, but partition 2 holds ext4"},
		{"unknown new file system", []string{"--data-fstype", "zfs"}, "--data-fstype zfs: an image store boots from btrfs, ext4, xfs only"},
		{"secure boot with grub", []string{"--secure-boot", "--keys", dir}, "--secure-boot boots UKIs with systemd-boot, which enrolls the keys: drop --bootloader grub"},
		{"keys without secure boot", []string{"--keys", dir}, "--keys and --stub make UKIs: add --uki (or --secure-boot)"},
		{"secure boot without keys", []string{"--secure-boot", "--bootloader", "systemd-boot"}, "--secure-boot needs --keys DIR: make them with mkbootimg keys --out DIR"},
		{"secure boot, keys missing", []string{"--secure-boot", "--bootloader", "systemd-boot", "--keys", dir}, "lacks db.key, db.crt, PK.auth, KEK.auth, db.auth: run mkbootimg keys --out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "disk.img")
			_, err := capture(t, func() error { return runDisk(append(append([]string{"--out", disk}, base...), tc.args...)) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("runDisk = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(disk); err == nil {
				t.Error("a refused run wrote the disk")
			}
		})
	}
}

// diskConfig reads the dockerinit.toml of the initramfs at initrd on the ESP of disk.
func diskConfig(t *testing.T, disk, initrd string) bootparam.Config {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	esp, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	img, err := esp.ReadFile(initrd)
	if err != nil {
		t.Fatalf("read %s from the ESP: %v", initrd, err)
	}
	entries, err := initramfs.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(entries, func(e initramfs.Entry) bool { return e.Path == "etc/dockerinit.toml" })
	if i < 0 {
		t.Fatal("no etc/dockerinit.toml in the initramfs")
	}
	cfg, err := bootparam.DecodeConfig(entries[i].Data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
