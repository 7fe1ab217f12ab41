package blockdev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestProbeMatchesBlkid makes real file systems with their mkfs tools and
// checks that Probe reports what blkid reports for the same image.
func TestProbeMatchesBlkid(t *testing.T) {
	tests := []struct {
		name      string
		size      int64
		mkfs      []string // the image path is appended
		edit      func(t *testing.T, img string)
		wantType  string
		wantLabel string
		wantUUID  string // "" when mkfs picks a random one
		// blkidLabel is blkid's key for the label Probe reports; "" means LABEL.
		blkidLabel string
	}{
		{name: "btrfs", size: 120 << 20, mkfs: []string{"mkfs.btrfs", "-q", "-L", "my disk", "-U", "8a2ae8d4-7e54-4b3c-9c0c-3f4c4ad1c7a1"},
			wantType: "btrfs", wantLabel: "my disk", wantUUID: "8a2ae8d4-7e54-4b3c-9c0c-3f4c4ad1c7a1"},
		{name: "btrfs without label", size: 120 << 20, mkfs: []string{"mkfs.btrfs", "-q"}, wantType: "btrfs"},
		{name: "ext4", size: 8 << 20, mkfs: []string{"mkfs.ext4", "-q", "-L", "rootfs", "-U", "0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f"},
			wantType: "ext4", wantLabel: "rootfs", wantUUID: "0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f"},
		{name: "ext4 16-byte label", size: 8 << 20, mkfs: []string{"mkfs.ext4", "-q", "-L", "0123456789abcdef"},
			wantType: "ext4", wantLabel: "0123456789abcdef"},
		{name: "ext3", size: 8 << 20, mkfs: []string{"mkfs.ext4", "-q", "-t", "ext3", "-L", "old"}, wantType: "ext3", wantLabel: "old"},
		{name: "ext2", size: 8 << 20, mkfs: []string{"mkfs.ext4", "-q", "-t", "ext2"}, wantType: "ext2"},
		{name: "xfs", size: 300 << 20, mkfs: []string{"mkfs.xfs", "-q", "-L", "xfslabel", "-m", "uuid=3f1c0e5a-2b7d-4e8f-a9c6-5d4e3f2a1b0c"},
			wantType: "xfs", wantLabel: "xfslabel", wantUUID: "3f1c0e5a-2b7d-4e8f-a9c6-5d4e3f2a1b0c"},
		{name: "fat12", size: 2 << 20, mkfs: []string{"mkfs.vfat", "-n", "ESP", "-i", "b2fabc61"},
			wantType: "vfat", wantLabel: "ESP", wantUUID: "B2FA-BC61"},
		{name: "fat16", size: 20 << 20, mkfs: []string{"mkfs.vfat", "-F", "16", "-n", "BOOT 16", "-i", "0000abcd"},
			wantType: "vfat", wantLabel: "BOOT 16", wantUUID: "0000-ABCD"},
		{name: "fat16 without label", size: 20 << 20, mkfs: []string{"mkfs.vfat", "-F", "16", "-i", "12345678"},
			wantType: "vfat", wantUUID: "1234-5678"},
		{name: "fat32", size: 40 << 20, mkfs: []string{"mkfs.vfat", "-F", "32", "-n", "EFI", "-i", "deadbeef"},
			wantType: "vfat", wantLabel: "EFI", wantUUID: "DEAD-BEEF"},
		{name: "fat32 root directory label wins over the boot sector's", size: 40 << 20,
			mkfs:     []string{"mkfs.vfat", "-F", "32", "-n", "RELABELED", "-i", "deadbeef"},
			edit:     func(t *testing.T, img string) { writeAt(t, img, 0x47, []byte("STALE      ")) },
			wantType: "vfat", wantLabel: "RELABELED", wantUUID: "DEAD-BEEF"},
		// blkid before 2.35 called this LABEL; Probe still does, so such a
		// volume can be found by the label older tools showed.
		{name: "fat16 boot sector label when the root directory has none", size: 20 << 20,
			mkfs:     []string{"mkfs.vfat", "-F", "16", "-i", "12345678"},
			edit:     func(t *testing.T, img string) { writeAt(t, img, 0x2b, []byte("BOOTONLY   ")) },
			wantType: "vfat", wantLabel: "BOOTONLY", wantUUID: "1234-5678", blkidLabel: "LABEL_FATBOOT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireTools(t, tt.mkfs[0], "blkid")
			img := filepath.Join(t.TempDir(), "fs.img")
			sparseFile(t, img, tt.size)
			run(t, tt.mkfs[0], append(tt.mkfs[1:], img)...)
			if tt.edit != nil {
				tt.edit(t, img)
			}
			fstype, label, uuid := probeFile(t, img)
			want := blkid(t, img)
			labelKey := tt.blkidLabel
			if labelKey == "" {
				labelKey = "LABEL"
			}
			if fstype != want["TYPE"] || label != want[labelKey] || uuid != want["UUID"] {
				t.Errorf("Probe = type %q label %q uuid %q; blkid says type %q %s %q uuid %q",
					fstype, label, uuid, want["TYPE"], labelKey, want[labelKey], want["UUID"])
			}
			if fstype != tt.wantType || label != tt.wantLabel || (tt.wantUUID != "" && uuid != tt.wantUUID) || uuid == "" {
				t.Errorf("Probe = type %q label %q uuid %q; want type %q label %q uuid %q",
					fstype, label, uuid, tt.wantType, tt.wantLabel, tt.wantUUID)
			}
			// A btrfs member's own UUID, which tells RAID members from copies.
			if sub := probeSubUUID(t, img); sub != want["UUID_SUB"] || (fstype == "btrfs") != (sub != "") {
				t.Errorf("probe sub UUID = %q; blkid says UUID_SUB %q", sub, want["UUID_SUB"])
			}
		})
	}
}

func probeFile(t *testing.T, path string) (fstype, label, uuid string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fstype, label, uuid, err = Probe(f)
	if err != nil {
		t.Fatalf("Probe(%s): %v", path, err)
	}
	return fstype, label, uuid
}

func probeSubUUID(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := probe(f)
	if err != nil {
		t.Fatalf("probe(%s): %v", path, err)
	}
	return id.subUUID
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestProbeUnknown checks that data which is no (known) file system gives
// empty results and no error, however short it is.
func TestProbeUnknown(t *testing.T) {
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xAA
	badXFS := make([]byte, 4096)
	copy(badXFS, "XFSB\x00\x00\x00\x07") // block size 7
	fatNoBPB := make([]byte, 4096)
	copy(fatNoBPB[0x36:], "FAT16   ")
	fatNoBPB[510], fatNoBPB[511] = 0x55, 0xAA // bytes per sector 0
	tests := map[string][]byte{
		"empty":                    nil,
		"one byte":                 {0},
		"zeros":                    make([]byte, probeLen),
		"MBR without file system":  mbr,
		"XFSB with bad block size": badXFS,
		"FAT type string, no BPB":  fatNoBPB,
		"btrfs magic cut short":    append(make([]byte, 0x10040), "_BHRfS_M"...),
	}
	for name, data := range tests {
		fstype, label, uuid, err := Probe(bytes.NewReader(data))
		if fstype != "" || label != "" || uuid != "" || err != nil {
			t.Errorf("%s: Probe = %q %q %q %v, want nothing", name, fstype, label, uuid, err)
		}
	}
}

// TestProbeWholeDisk: a partitioned disk is no file system, even though its
// protective MBR ends in 0x55AA like a FAT boot sector.
func TestProbeWholeDisk(t *testing.T) {
	requireTools(t, "sfdisk", "blkid")
	img := filepath.Join(t.TempDir(), "disk.img")
	sparseFile(t, img, 16<<20)
	runIn(t, "label: gpt\nsize=4M\n", "sfdisk", "-q", img)
	if got := blkid(t, img); got["TYPE"] != "" || got["PTTYPE"] != "gpt" {
		t.Fatalf("blkid sees %v, want a bare GPT", got)
	}
	if fstype, label, uuid := probeFile(t, img); fstype+label+uuid != "" {
		t.Errorf("Probe(GPT disk) = %q %q %q, want nothing", fstype, label, uuid)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("I/O error") }

func TestProbeReadError(t *testing.T) {
	_, _, _, err := Probe(failingReader{})
	if err == nil || err.Error() != "read superblock: I/O error" {
		t.Errorf("Probe(failing device) error = %v, want read superblock: I/O error", err)
	}
}

func FuzzProbe(f *testing.F) {
	f.Add([]byte{})
	ext := make([]byte, 0x500)
	binary.LittleEndian.PutUint16(ext[0x438:], 0xEF53)
	f.Add(ext)
	xfs := make([]byte, 512)
	copy(xfs, "XFSB\x00\x00\x10\x00")
	f.Add(xfs)
	fat := make([]byte, 1024)
	copy(fat[0x52:], "FAT32   ")
	binary.LittleEndian.PutUint16(fat[11:], 512)
	fat[13], fat[14], fat[16], fat[36], fat[44] = 1, 1, 2, 1, 2
	fat[510], fat[511] = 0x55, 0xAA
	f.Add(fat)
	fat16 := bytes.Clone(fat)
	copy(fat16[0x52:], "        ")
	copy(fat16[0x36:], "FAT12   ")
	fat16[17], fat16[22] = 16, 1
	f.Add(fat16)
	f.Add(isoImage("LABEL", "Label", "2024010203040506", ""))
	btrfs := make([]byte, probeLen)
	copy(btrfs[0x10040:], "_BHRfS_M")
	f.Add(btrfs)
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := probe(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Probe of an in-memory image failed: %v", err)
		}
		// An ISO 9660 "UUID" is a date, which may be unset.
		if id.fsType != "" && id.fsType != "iso9660" && id.uuid == "" {
			t.Fatalf("Probe found %s without a UUID", id.fsType)
		}
		// Only a btrfs member has a device UUID, which tells it from a copy (Find's sameFS).
		if (id.fsType == "btrfs") != (id.subUUID != "") {
			t.Fatalf("Probe found %s with device UUID %q", id.fsType, id.subUUID)
		}
		if fstype, label, uuid, _ := Probe(bytes.NewReader(data)); fstype != id.fsType || label != id.label || uuid != id.uuid {
			t.Fatalf("Probe = %q %q %q, probe = %+v", fstype, label, uuid, id)
		}
	})
}
