package modindex

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDeviceModaliases(t *testing.T) {
	dir := t.TempDir()
	for p, content := range map[string]string{
		"pci0000:00/0000:00:02.0/modalias":                  "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
		"pci0000:00/0000:00:02.0/virtio0/modalias":          "virtio:d00000002v00001AF4\n",
		"pci0000:00/0000:00:03.0/modalias":                  "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n", // the same again
		"system/cpu/modalias":                               "cpu:type:x86,ven0000fam0006mod003A:feature:,0000\n",
		"pci0000:00/0000:00:02.0/virtio0/block/vda/uevent":  "MAJOR=254\n",
		"pci0000:00/0000:00:02.0/power/modalias":            "never:read\n", // attribute groups are skipped
		"pci0000:00/0000:00:02.0/virtio0/block/vda/queue/x": "",
		"virtual/empty/modalias":                            "\n",
	} {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := DeviceModaliases(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{
		"cpu:type:x86,ven0000fam0006mod003A:feature:,0000",
		"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
		"virtio:d00000002v00001AF4",
	}
	if !slices.Equal(got, want) {
		t.Errorf("DeviceModaliases = %q, want %q", got, want)
	}
	if _, err := DeviceModaliases(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory gave no error")
	}
}
