package bench

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dockerinit/dockerinit/initramfs"
)

func TestWriteTree(t *testing.T) {
	type tree struct {
		files, dirs int
		bytes       int64
		content     map[string][]byte
	}
	read := func(t *testing.T, dir string) tree {
		tr := tree{content: map[string][]byte{}}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			if d.IsDir() {
				tr.dirs++
				return nil
			}
			data, err := os.ReadFile(p)
			tr.files++
			tr.bytes += int64(len(data))
			rel, _ := filepath.Rel(dir, p)
			tr.content[rel] = data
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	for _, tc := range []struct {
		name     string
		files    int
		bytes    int64
		wantDirs int
	}{
		{"several directories", 1250, 3_000_000, 2 + 13}, // d000 d001; s0..s9 under d000, s0..s2 under d001
		{"one file", 1, 777, 2},
		{"empty files", 10, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			for _, dir := range []string{a, b} {
				if err := WriteTree(dir, tc.files, tc.bytes, 7); err != nil {
					t.Fatal(err)
				}
			}
			ta, tb := read(t, a), read(t, b)
			if ta.files != tc.files || ta.bytes != tc.bytes || ta.dirs != tc.wantDirs {
				t.Errorf("tree of %d files, %d bytes, %d directories; want %d, %d, %d", ta.files, ta.bytes, ta.dirs, tc.files, tc.bytes, tc.wantDirs)
			}
			if !reflect.DeepEqual(ta.content, tb.content) {
				t.Error("the same seed wrote two different trees")
			}
		})
	}
	if err := WriteTree(t.TempDir(), 0, 10, 1); err == nil {
		t.Error("WriteTree of no files succeeded")
	}
}

func TestTreeIsIncompressible(t *testing.T) {
	dir := t.TempDir()
	if err := WriteTree(dir, 1, 1<<16, 3); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "d000", "s0", "f00000"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(data, data[:8]) > 1 || bytes.Count(data, make([]byte, 64)) > 0 {
		t.Error("the tree's content repeats: a compressing file system would not write it all")
	}
}

func TestComposition(t *testing.T) {
	var buf bytes.Buffer
	err := initramfs.Write(&buf, []initramfs.Entry{
		initramfs.File("init", 0o755, make([]byte, 100)),
		initramfs.File("lib/modules/6.1.0/kernel/fs/btrfs/btrfs.ko.xz", 0o644, make([]byte, 40)),
		initramfs.File("usr/lib/modules/6.1.0/kernel/drivers/virtio_blk.ko", 0o644, make([]byte, 2)),
		initramfs.File("lib/modules/6.1.0/modules.dep", 0o644, make([]byte, 5)),
		initramfs.File("usr/lib/firmware/i915/x.bin", 0o644, make([]byte, 7)),
		initramfs.File("kernel/x86/microcode/GenuineIntel.bin", 0o644, make([]byte, 9)),
		initramfs.Symlink("bin/sh", "busybox"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Composition(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []Part{{PartInit, 1, 100}, {PartModules, 2, 42}, {PartFirmware, 1, 7}, {PartMicrocode, 1, 9}, {PartOther, 1, 5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Composition = %+v, want %+v", got, want)
	}
	if _, err := Composition([]byte("not an initramfs")); err == nil {
		t.Error("Composition of garbage succeeded")
	}
}
