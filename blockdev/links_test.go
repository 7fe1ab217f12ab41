package blockdev

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLinks(t *testing.T) {
	dev := t.TempDir()
	devs := []Device{
		{Name: "sda1", FSType: "vfat", Label: "ESP", UUID: "B2FA-BC61", PartUUID: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", PartLabel: "EFI System"},
		{Name: "sda2", FSType: "btrfs", Label: "linux", UUID: "78922d11-4614-4390-8c59-3d150ff4701d", PartUUID: "cafef00d-02"},
		{Name: "sdb", FSType: "btrfs", Label: "linux", UUID: "78922d11-4614-4390-8c59-3d150ff4701d"}, // a second RAID1 member
		{Name: "sr0", FSType: "iso9660", Label: "my/disk", UUID: "2024-01-02-03-04-05-06"},
		{Name: "sdc", FSType: "ext4", Label: "..", UUID: "0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f"},
	}
	// A link left by an earlier call, now pointing elsewhere, is replaced.
	if err := os.MkdirAll(filepath.Join(dev, "disk/by-label"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../old", filepath.Join(dev, "disk/by-label/ESP")); err != nil {
		t.Fatal(err)
	}
	if err := Links(dev, devs); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"by-label/ESP":        "../../sda1",
		"by-label/linux":      "../../sda2",
		`by-label/my\x2fdisk`: "../../sr0",
		"by-uuid/B2FA-BC61":   "../../sda1",
		"by-uuid/78922d11-4614-4390-8c59-3d150ff4701d":     "../../sda2",
		"by-uuid/2024-01-02-03-04-05-06":                   "../../sr0",
		"by-uuid/0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f":     "../../sdc",
		"by-partuuid/c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "../../sda1",
		"by-partuuid/cafef00d-02":                          "../../sda2",
		`by-partlabel/EFI\x20System`:                       "../../sda1",
	}
	got := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dev, "disk"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(dev, "disk"), p)
		got[rel] = target
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s -> %q, want -> %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected link %s -> %s", k, got[k])
		}
	}
	// The links resolve through ParseSpec to the same device, as the user would name it.
	for k := range want {
		spec, err := ParseSpec("/dev/disk/" + k)
		if err != nil {
			t.Errorf("ParseSpec(/dev/disk/%s): %v", k, err)
			continue
		}
		i := slices.IndexFunc(devs, spec.Match)
		if i < 0 || "../../"+devs[i].Name != want[k] {
			t.Errorf("/dev/disk/%s is %s, which Find would not resolve to the linked device", k, spec)
		}
	}
}

func TestEncodeUdev(t *testing.T) {
	for in, want := range map[string]string{
		"linux":       "linux",
		"my disk":     `my\x20disk`,
		"a/b\\c":      `a\x2fb\x5cc`,
		"Ünïcødé":     "Ünïcødé",
		"bad\xffutf8": `bad\xffutf8`,
		"#+-.:=@_":    "#+-.:=@_",
		"tab\there":   `tab\x09here`,
	} {
		if got := encodeUdev(in); got != want {
			t.Errorf("encodeUdev(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzEncodeUdev(f *testing.F) {
	for _, s := range []string{"linux", "my disk", "a/b", "\xff", `\x20`, "Ünï"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := encodeUdev(s)
		if strings.ContainsRune(enc, '/') {
			t.Fatalf("encodeUdev(%q) = %q: a slash makes it a path, not a name", s, enc)
		}
		dec, err := unescapeUdev(enc)
		if err != nil || dec != s {
			t.Fatalf("unescapeUdev(encodeUdev(%q)) = %q, %v", s, dec, err)
		}
	})
}
