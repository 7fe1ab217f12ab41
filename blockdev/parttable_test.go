package blockdev

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sfdiskPart is one partition of `sfdisk --json`.
type sfdiskPart struct {
	Node, UUID, Name string
}

// sfdiskDump returns the table id and the partitions by number.
func sfdiskDump(t *testing.T, img string) (id string, parts map[int]sfdiskPart) {
	t.Helper()
	var dump struct {
		PartitionTable struct {
			ID         string
			Partitions []sfdiskPart
		}
	}
	if err := json.Unmarshal([]byte(run(t, "sfdisk", "--json", img)), &dump); err != nil {
		t.Fatal(err)
	}
	parts = map[int]sfdiskPart{}
	for _, p := range dump.PartitionTable.Partitions {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Node, img))
		if err != nil {
			t.Fatalf("sfdisk node %q is not %s<number>", p.Node, img)
		}
		parts[n] = p
	}
	return dump.PartitionTable.ID, parts
}

// newDisk writes a partition table with sfdisk on a fresh image file.
func newDisk(t *testing.T, size int64, script string) string {
	t.Helper()
	requireTools(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	sparseFile(t, img, size)
	runIn(t, strings.ReplaceAll(script, "IMG", img), "sfdisk", "-q", img)
	return img
}

func partTableOf(t *testing.T, img string) *partTable {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pt, err := readPartTable(f, fi.Size())
	if err != nil {
		t.Fatalf("readPartTable(%s): %v", img, err)
	}
	return pt
}

const gptScript = `label: gpt
IMG1 : size=2M, name="EFI System", uuid=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
IMG3 : size=2M, name="líñux røøt ✓"
IMG4 : size=2M, name="0123456789012345678901234567890123ab"
IMG5 : size=2M
`

// TestGPTMatchesSfdisk reads GPTs written by sfdisk and compares every
// partition number with what sfdisk reads back; an unused slot (2) and
// numbers past the table have no identity.
func TestGPTMatchesSfdisk(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, img string)
	}{
		{name: "primary"},
		{name: "backup when the primary header is damaged", damage: func(t *testing.T, img string) {
			writeAt(t, img, 512+20, []byte("garbage")) // breaks the header CRC
		}},
		{name: "backup when the primary entries are damaged", damage: func(t *testing.T, img string) {
			writeAt(t, img, 1024+56, []byte("X\x00")) // the first name: breaks the entries CRC
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := newDisk(t, 16<<20, gptScript)
			_, want := sfdiskDump(t, img)
			if tt.damage != nil {
				tt.damage(t, img)
			}
			pt := partTableOf(t, img)
			if pt == nil || pt.gpt == nil {
				t.Fatalf("readPartTable = %+v, want a GPT", pt)
			}
			if got := pt.part(1).UUID; got != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
				t.Errorf("partition 1 PARTUUID = %q, want the lower-case form of the GUID sfdisk was given", got)
			}
			for n := 0; n <= 130; n++ {
				got := pt.part(n)
				w := partID{UUID: strings.ToLower(want[n].UUID), Label: want[n].Name}
				if got != w {
					t.Errorf("partition %d = %+v, sfdisk says %+v", n, got, w)
				}
			}
		})
	}
}

func TestMBRPartUUID(t *testing.T) {
	script := "label: dos\nlabel-id: 0x1234abcd\nsize=1M\nsize=1M\ntype=5\n" + strings.Repeat("size=1M\n", 8)
	img := newDisk(t, 32<<20, script)
	id, parts := sfdiskDump(t, img)
	if id != "0x1234abcd" || len(parts) != 11 {
		t.Fatalf("sfdisk made table %s with %d partitions, want 0x1234abcd with 11", id, len(parts))
	}
	pt := partTableOf(t, img)
	// The kernel and blkid print the partition number in hex.
	for n, want := range map[int]string{1: "1234abcd-01", 5: "1234abcd-05", 10: "1234abcd-0a", 12: "1234abcd-0c"} {
		if got := pt.part(n); got != (partID{UUID: want}) {
			t.Errorf("partition %d = %+v, want PARTUUID %s", n, got, want)
		}
	}
}

func TestNoPartTable(t *testing.T) {
	for name, data := range map[string][]byte{"empty": nil, "zeros": make([]byte, 1<<20), "short": []byte("EFI PART")} {
		pt, err := readPartTable(bytes.NewReader(data), int64(len(data)))
		if pt != nil || err != nil {
			t.Errorf("%s: readPartTable = %+v, %v; want no table", name, pt, err)
		}
		if pt.part(1) != (partID{}) {
			t.Errorf("%s: a missing table has partition 1", name)
		}
	}
}

// TestGPT4KSectors writes a GPT through a loop device with 4096-byte logical
// sectors, where the header sits at 4096 instead of 512.
func TestGPT4KSectors(t *testing.T) {
	requireRoot(t)
	requireTools(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	sparseFile(t, img, 16<<20)
	dev := strings.TrimSpace(run(t, "losetup", "--show", "-f", "--sector-size", "4096", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	runIn(t, "label: gpt\nsize=4M, name=\"four k\", uuid=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", "sfdisk", "-q", "--no-reread", dev)
	run(t, "losetup", "-d", dev)
	if got := partTableOf(t, img).part(1); got != (partID{UUID: "0fc63daf-8483-4772-8e79-3d69d8477de4", Label: "four k"}) {
		t.Errorf("partition 1 of a 4K-sector GPT = %+v", got)
	}
}

func FuzzGPT(f *testing.F) {
	f.Add([]byte{})
	if _, err := exec.LookPath("sfdisk"); err == nil {
		// The table area of a real GPT, from both ends of a small disk.
		img := filepath.Join(f.TempDir(), "disk.img")
		if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
			f.Fatal(err)
		}
		cmd := exec.Command("sfdisk", "-q", img)
		cmd.Stdin = strings.NewReader("label: gpt\nsize=100K, name=\"a\"\nsize=100K\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			f.Fatalf("sfdisk: %v: %s", err, out)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:34*512])
		f.Add(append(bytes.Clone(b[:34*512]), b[len(b)-33*512:]...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := readPartTable(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("readPartTable of an in-memory disk failed: %v", err)
		}
		for n := -1; n < 140; n++ {
			_ = fmt.Sprint(pt.part(n))
		}
	})
}
