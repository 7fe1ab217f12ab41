package modtree

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	root, _ := fakeTree(t, true)
	img := openImage(t, root)
	sys := t.TempDir()
	for p, content := range map[string]string{
		"module/virtio/refcnt":                             "1\n",                                                     // a disk driver in use
		"module/unrelated/refcnt":                          "1\n",                                                     // in use, but a network module: left out
		"module/8250/parameters":                           "",                                                        // built into the running kernel, not a module of the image
		"module/btrfs/refcnt":                              "1\n",                                                     // a file system of Generic the machine uses
		"devices/pci0000:00/0000:00:04.0/virtio1/modalias": "virtio:d00000002v00001AF4\n",                             // asks for virtio_blk
		"devices/system/cpu/modalias":                      "cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0094\n", // crc32c_intel: not a boot driver
	} {
		full := filepath.Join(sys, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Host(img, "usr/lib/modules", kver, sys)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(hostFS), "btrfs", "virtio", "virtio_blk")))
	if !slices.Equal(got, want) {
		t.Errorf("Host =\n %q\nwant\n %q", got, want)
	}
	// What Host picked bundles like any optional list: the drivers come with their dependencies.
	files, err := Bundle(img, "usr/lib/modules", kver, []string{"btrfs"}, got...)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	for _, m := range []string{"virtio_blk.ko", "virtio_ring.ko", "vfat.ko"} {
		if !slices.ContainsFunc(paths, func(p string) bool { return strings.HasSuffix(p, "/"+m) }) {
			t.Errorf("the host bundle lacks %s: %q", m, paths)
		}
	}
	for _, m := range []string{"unrelated.ko"} {
		if slices.ContainsFunc(paths, func(p string) bool { return strings.HasSuffix(p, "/"+m) }) {
			t.Errorf("the host bundle has %s, which the boot does not need", m)
		}
	}

	if _, err := Host(img, "usr/lib/modules", kver, t.TempDir()); err == nil || !strings.Contains(err.Error(), "is /sys mounted") {
		t.Errorf("Host without a sysfs = %v, want an error saying what is missing", err)
	}
}
