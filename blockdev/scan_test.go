package blockdev

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fakeTree is a /sys/class/block and /dev stand-in: sysfs directories laid
// out as the kernel does (a partition's directory inside its disk's), class
// entries as symlinks to them, and plain files or symlinks to images as
// device nodes.
type fakeTree struct {
	root, sysBlock, devDir string
}

func newFakeTree(t *testing.T) *fakeTree {
	t.Helper()
	root := t.TempDir()
	ft := &fakeTree{root: root, sysBlock: filepath.Join(root, "sys/class/block"), devDir: filepath.Join(root, "dev")}
	for _, d := range []string{ft.sysBlock, ft.devDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return ft
}

// add creates the sysfs entry of a disk (parent "") or a partition, and its
// node pointing at image (no node when image is "").
func (ft *fakeTree) add(t *testing.T, name, parent string, partition int, sectors int64, image string) {
	t.Helper()
	dir := filepath.Join(ft.root, "sys/devices/virtual/block", parent, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(file, content string) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	write("size", strconv.FormatInt(sectors, 10))
	if partition > 0 {
		write("partition", strconv.Itoa(partition))
	}
	if image != "" {
		if err := os.Symlink(image, filepath.Join(ft.devDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := filepath.Rel(ft.sysBlock, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(ft.sysBlock, name)); err != nil {
		t.Fatal(err)
	}
}

// mkfsImage makes a file system image with the given mkfs command.
func mkfsImage(t *testing.T, size int64, mkfs ...string) string {
	t.Helper()
	requireTools(t, mkfs[0])
	img := filepath.Join(t.TempDir(), "fs.img")
	sparseFile(t, img, size)
	run(t, mkfs[0], append(mkfs[1:], img)...)
	return img
}

func TestScan(t *testing.T) {
	gptDisk := newDisk(t, 16<<20, "label: gpt\nsize=4M, name=\"EFI System\", uuid=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"+
		"size=4M, name=\"root\", uuid=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n")
	mbrDisk := newDisk(t, 8<<20, "label: dos\nlabel-id: 0xcafef00d\nsize=2M\n")
	esp := mkfsImage(t, 4<<20, "mkfs.vfat", "-n", "ESP", "-i", "b2fabc61")
	root := mkfsImage(t, 8<<20, "mkfs.ext4", "-q", "-L", "linux", "-U", "0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f")
	blank := filepath.Join(t.TempDir(), "blank.img")
	sparseFile(t, blank, 2<<20)

	ft := newFakeTree(t)
	ft.add(t, "vda", "", 0, 32768, gptDisk)
	ft.add(t, "vda1", "vda", 1, 8192, esp)
	ft.add(t, "vda2", "vda", 2, 8192, root)
	ft.add(t, "sdb", "", 0, 16384, mbrDisk)
	ft.add(t, "sdb1", "sdb", 1, 4096, blank)
	ft.add(t, "loop0", "", 0, 0, blank)    // empty loop device: left out
	ft.add(t, "sr0", "", 0, 2048, "")      // no node: left out
	ft.add(t, "zram0", "", 0, 4096, blank) // whole device, no file system
	if err := os.Symlink("/nonexistent", filepath.Join(ft.devDir, "sr0")); err != nil {
		t.Fatal(err)
	}

	got, err := Scan(ft.sysBlock, ft.devDir)
	if err != nil {
		t.Fatal(err)
	}
	dev := func(name string) string { return filepath.Join(ft.devDir, name) }
	want := []Device{
		{Name: "sdb", Path: dev("sdb"), Size: 8 << 20},
		{Name: "sdb1", Path: dev("sdb1"), Disk: "sdb", PartUUID: "cafef00d-01", Size: 2 << 20},
		{Name: "vda", Path: dev("vda"), Size: 16 << 20},
		{Name: "vda1", Path: dev("vda1"), Disk: "vda", FSType: "vfat", Label: "ESP", UUID: "B2FA-BC61",
			PartUUID: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", PartLabel: "EFI System", Size: 4 << 20},
		{Name: "vda2", Path: dev("vda2"), Disk: "vda", FSType: "ext4", Label: "linux", UUID: "0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f",
			PartUUID: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", PartLabel: "root", Size: 4 << 20},
		{Name: "zram0", Path: dev("zram0"), Size: 2 << 20},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Scan =\n%s\nwant\n%s", deviceList(got), deviceList(want))
	}
}

func deviceList(devs []Device) string {
	var b strings.Builder
	for _, d := range devs {
		b.WriteString("  " + d.Name + " " + describe(d) + " size " + strconv.FormatInt(d.Size, 10) + "\n")
	}
	return b.String()
}

func TestScanWithoutSysfs(t *testing.T) {
	_, err := Scan(filepath.Join(t.TempDir(), "missing"), "/dev")
	if err == nil || !strings.Contains(err.Error(), "is sysfs mounted on /sys?") {
		t.Errorf("Scan of a missing sysfs: error %v, want one asking whether sysfs is mounted", err)
	}
}

// TestScanRealLoopDevices attaches partitioned images to loop devices and
// checks Scan of the real /sys/class/block and /dev against blkid, including
// MBR logical partitions past 9 (numbered in hex).
func TestScanRealLoopDevices(t *testing.T) {
	requireRoot(t)
	requireTools(t, "sfdisk", "partx", "mkfs.vfat", "mkfs.ext4")
	tests := []struct {
		name   string
		script string
		parts  []int // the partition numbers the kernel will make
	}{
		{name: "gpt", script: "label: gpt\nsize=4M, name=\"EFI System\"\nsize=8M, name=\"linux root\"\n", parts: []int{1, 2}},
		{name: "dos with logical partitions", script: "label: dos\nsize=4M\ntype=5\n" + strings.Repeat("size=1M\n", 8) + "size=8M\n",
			parts: []int{1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := newDisk(t, 32<<20, tt.script)
			loop := strings.TrimSpace(run(t, "losetup", "--show", "-f", "-P", img))
			t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
			base := filepath.Base(loop)
			parts, _ := filepath.Glob(loop + "p*")
			if len(parts) == 0 {
				// A kernel built without partition table parsers (this
				// test VM's) leaves adding them to user space.
				run(t, "partx", "-a", loop)
				parts, _ = filepath.Glob(loop + "p*")
			}
			if len(parts) != len(tt.parts) {
				t.Fatalf("losetup -P made partitions %v, want %v", parts, tt.parts)
			}
			first, last := loop+"p1", loop+"p"+strconv.Itoa(tt.parts[len(tt.parts)-1])
			run(t, "mkfs.vfat", "-n", "ESP", first)
			run(t, "mkfs.ext4", "-q", "-L", "linux", last)

			devs, err := Scan("/sys/class/block", "/dev")
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, d := range devs {
				if d.Name != base && !strings.HasPrefix(d.Name, base+"p") {
					continue
				}
				checked++
				want := blkid(t, d.Path)
				if d.Path != "/dev/"+d.Name || d.FSType != want["TYPE"] || d.Label != want["LABEL"] || d.UUID != want["UUID"] ||
					d.PartUUID != want["PART_ENTRY_UUID"] || d.PartLabel != want["PART_ENTRY_NAME"] ||
					d.SubUUID != want["UUID_SUB"] || (d.Name == base) != (d.Disk == "") {
					t.Errorf("Scan: %s %s; blkid: %v", d.Path, describe(d), want)
				}
			}
			if checked != len(parts)+1 {
				t.Errorf("Scan listed %d of %s and its %d partitions", checked, loop, len(parts))
			}
		})
	}
}

func TestHasMedium(t *testing.T) {
	sys := t.TempDir()
	dev := filepath.Join(t.TempDir(), "dev")
	if err := os.WriteFile(dev, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name, removable string // "" : no attribute
		want            bool
	}{
		{"fixed disk", "0", true},
		{"no attribute", "", true},
		// A removable device that does not answer CDROM_DRIVE_STATUS (a USB stick; here a file):
		// its size says whether there is a medium.
		{"removable, not an optical drive", "1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(sys, tc.name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.removable != "" {
				if err := os.WriteFile(filepath.Join(dir, "removable"), []byte(tc.removable+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := hasMedium(f, sys, tc.name); got != tc.want {
				t.Errorf("hasMedium = %v, want %v", got, tc.want)
			}
		})
	}
}
