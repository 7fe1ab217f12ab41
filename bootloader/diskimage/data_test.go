package diskimage

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

var testUUID = []byte{0x3f, 0x1c, 0x0e, 0x5a, 0x2b, 0x7d, 0x4e, 0x8f, 0xa9, 0xc6, 0x5d, 0x4e, 0x3f, 0x2a, 0x1b, 0x0c}

const testUUIDText = "3f1c0e5a-2b7d-4e8f-a9c6-5d4e3f2a1b0c"

// Superblocks as their mkfs lays them out, with only the fields blockdev.Probe reads.
func btrfsSuper(label string) []byte {
	b := make([]byte, 0x11000)
	copy(b[0x10040:], "_BHRfS_M")
	copy(b[0x10020:], testUUID)
	copy(b[0x1012b:], label)
	return b
}

func xfsSuper(label string) []byte {
	b := make([]byte, 4096)
	copy(b, "XFSB")
	binary.BigEndian.PutUint32(b[4:], 4096)
	copy(b[32:], testUUID)
	copy(b[108:], label)
	return b
}

// extSuper is an ext2 superblock with the given compat and incompat feature bits: extents
// (incompat 0x40) make it ext4, a journal alone (compat 0x4) ext3.
func extSuper(label string, compat, incompat uint32) []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[0x438:], 0xEF53)
	binary.LittleEndian.PutUint32(b[0x45c:], compat)
	binary.LittleEndian.PutUint32(b[0x460:], incompat)
	copy(b[0x468:], testUUID)
	copy(b[0x478:], label)
	return b
}

func TestProbeData(t *testing.T) {
	ext4 := extSuper("linux", 0x4, 0x40|0x2)
	for _, tc := range []struct {
		name, want string
		data       []byte
		vol        bootloader.Volume
		err        string
	}{
		{name: "btrfs", data: btrfsSuper("linux"), vol: bootloader.Volume{FSType: "btrfs", Label: "linux", UUID: testUUIDText}},
		{name: "btrfs asked for", want: "btrfs", data: btrfsSuper("linux"), vol: bootloader.Volume{FSType: "btrfs", Label: "linux", UUID: testUUIDText}},
		{name: "ext4", data: ext4, vol: bootloader.Volume{FSType: "ext4", Label: "linux", UUID: testUUIDText}},
		{name: "xfs without label", data: xfsSuper(""), vol: bootloader.Volume{FSType: "xfs", UUID: testUUIDText}},
		{name: "xfs twelve-byte label", data: xfsSuper("0123456789ab"), vol: bootloader.Volume{FSType: "xfs", Label: "0123456789ab", UUID: testUUIDText}},
		{name: "ext4 where btrfs is asked for", want: "btrfs", data: ext4, err: `holds "ext4", not a btrfs file system: give a btrfs image (mkfs.btrfs)`},
		{name: "ext3", data: extSuper("old", 0x4, 0x2), err: "holds ext3, and dockerinit boots a store from btrfs, ext4, xfs only: convert it"},
		{name: "ext2", data: extSuper("", 0, 0), err: "holds ext2"},
		{name: "zeros", data: make([]byte, 1<<20), err: "holds no file system that an image store boots from (btrfs, ext4, xfs)"},
		{name: "empty", err: "holds no file system"},
		{name: "no label nor UUID", data: func() []byte { b := xfsSuper(""); copy(b[32:48], make([]byte, 16)); return b }(),
			err: "neither label nor UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol, err := probeData(bytes.NewReader(tc.data), tc.want)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("probeData = %v, want %+v", err, tc.vol)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("probeData = %+v, %v; want an error containing %q", vol, err, tc.err)
			case vol != tc.vol:
				t.Errorf("probeData = %+v, want %+v", vol, tc.vol)
			}
		})
	}
}

// TestProbeDataMkfs reads what the real mkfs tools write, through ProbeData's file path.
func TestProbeDataMkfs(t *testing.T) {
	for _, fstype := range []string{"btrfs", "ext4", "xfs"} {
		t.Run(fstype, func(t *testing.T) {
			img := mkfsImage(t, fstype, "store", 300<<20)
			vol, err := ProbeData(img, "")
			if err != nil || vol.FSType != fstype || vol.Label != "store" || vol.UUID == "" {
				t.Errorf("ProbeData = %+v, %v; want %s labelled store with a UUID", vol, err, fstype)
			}
			if _, err := ProbeData(img, map[string]string{"btrfs": "xfs", "ext4": "btrfs", "xfs": "ext4"}[fstype]); err == nil || !strings.Contains(err.Error(), img) {
				t.Errorf("ProbeData of another type = %v, want an error naming %s", err, img)
			}
		})
	}
	if _, err := ProbeData(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Error("ProbeData of a missing file succeeded")
	}
}

// mkfsImage makes a file system image of size bytes with the host's mkfs (no root needed).
func mkfsImage(t *testing.T, fstype, label string, size int64) string {
	t.Helper()
	mk := mkfsTools[fstype]
	testenv.Tools(t, mk.pkg, mk.tool)
	p := filepath.Join(t.TempDir(), fstype+".img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mk.tool, append(slices.Clone(mk.args), "-L", label, p)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", mk.tool, err, out)
	}
	return p
}

// TestBuildData: partition 2 is any file system a store boots from, copied or made new, named in
// the GPT after its label.
func TestBuildData(t *testing.T) {
	dir := t.TempDir()
	efi := filepath.Join(dir, "boot.efi")
	if err := os.WriteFile(efi, fakeEFI, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		fstype string // of a new file system; "" for a copy of an image
		image  string // the image's file system
		label  string
		size   int64 // the data partition's
	}{
		{name: "ext4 image", image: "ext4", label: "store", size: 300 << 20},
		{name: "xfs image", image: "xfs", label: "store", size: 300 << 20},
		{name: "new btrfs", fstype: "btrfs", label: "docker", size: 300 << 20},
		{name: "new ext4", fstype: "ext4", label: "docker", size: 256 << 20},
		{name: "new xfs", fstype: "xfs", label: "docker", size: 300 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Out: filepath.Join(t.TempDir(), "disk.img"), Kind: bootloader.GRUB, EFIBinary: efi,
				Entries: []bootloader.Entry{entry(t, "desktop")}, ESPSize: 64 << 20}
			want := tc.fstype
			if tc.image != "" {
				want, o.DataImage = tc.image, mkfsImage(t, tc.image, tc.label, tc.size)
			} else {
				mk := mkfsTools[tc.fstype]
				testenv.Tools(t, mk.pkg, mk.tool)
				o.FSType, o.DataSize, o.Label = tc.fstype, tc.size, tc.label
			}
			res, err := Build(o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Data.FSType != want || res.Data.Label != tc.label || res.Data.UUID == "" || res.Size != (1+64+1)<<20+tc.size {
				t.Errorf("Result %+v (%d MiB), want %s labelled %s on a disk of 1 + 64 + %d + 1 MiB", res.Data, res.Size>>20, want, tc.label, tc.size>>20)
			}
			d, err := diskfs.Open(o.Out, diskfs.WithOpenMode(diskfs.ReadOnly))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			table, ok := d.Table.(*gpt.Table)
			if !ok || len(table.Partitions) != 2 || table.Partitions[1].Name != tc.label {
				t.Fatalf("partition table %+v, want partition 2 named %s", d.Table, tc.label)
			}
			f, err := os.Open(o.Out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			part2 := table.Partitions[1]
			got, err := ProbeData(f.Name(), "")
			if err == nil {
				t.Errorf("the whole disk probes as %+v, want no file system", got)
			}
			if vol, err := probeData(&offsetReader{f, int64(part2.Start) * 512}, ""); err != nil || vol != res.Data {
				t.Errorf("partition 2 holds %+v, %v; want %+v", vol, err, res.Data)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(o.Out), ".*")); len(left) > 0 {
				t.Errorf("temporary files left: %q", left)
			}
		})
	}
}

type offsetReader struct {
	f   *os.File
	off int64
}

func (r *offsetReader) ReadAt(b []byte, off int64) (int, error) { return r.f.ReadAt(b, r.off+off) }

func FuzzProbeData(f *testing.F) {
	f.Add(btrfsSuper("linux"), "")
	f.Add(xfsSuper("store"), "btrfs")
	f.Add(extSuper("linux", 0x4, 0x42), "ext4")
	f.Add(extSuper("", 0x4, 0x2), "")
	f.Add([]byte{}, "xfs")
	f.Fuzz(func(t *testing.T, data []byte, want string) {
		vol, err := probeData(bytes.NewReader(data), want)
		if err != nil {
			if vol != (bootloader.Volume{}) {
				t.Errorf("probeData failed (%v) but returned %+v", err, vol)
			}
			return
		}
		if !slices.Contains(bootparam.RootFSTypes, vol.FSType) || (want != "" && vol.FSType != want) || vol.Spec() == "" {
			t.Errorf("probeData(want %q) = %+v: not a store's file system that root= can name", want, vol)
		}
	})
}
