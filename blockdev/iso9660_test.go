package blockdev

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"
)

// isoImage lays out ISO 9660 volume descriptors as mkisofs writes them: the primary one with
// the given label and dates, a Joliet one when joliet is not "", then the terminator.
func isoImage(label, joliet, created, modified string) []byte {
	b := make([]byte, 0x8000+4*isoDescriptorSize)
	desc := func(n int, typ byte) []byte {
		d := b[0x8000+n*isoDescriptorSize : 0x8000+(n+1)*isoDescriptorSize]
		d[0] = typ
		copy(d[1:], "CD001\x01")
		return d
	}
	pad := func(s string, n int) []byte {
		out := []byte(s)
		for len(out) < n {
			out = append(out, ' ')
		}
		return out
	}
	date := func(s string) []byte {
		if s == "" {
			return append(pad("0000000000000000", 16), 0)
		}
		return append([]byte(s), 0)
	}
	pvd := desc(0, isoPrimary)
	copy(pvd[40:72], pad(label, 32))
	copy(pvd[813:], date(created))
	copy(pvd[830:], date(modified))
	n := 1
	if joliet != "" {
		svd := desc(1, isoSupplementary)
		copy(svd[88:], "%/E")
		u := utf16.Encode([]rune(joliet))
		for i := range 16 {
			c := uint16(' ')
			if i < len(u) {
				c = u[i]
			}
			binary.BigEndian.PutUint16(svd[40+2*i:], c)
		}
		n++
	}
	desc(n, isoTerminator)
	return b
}

func TestProbeISO9660(t *testing.T) {
	for _, tc := range []struct {
		name                string
		label, joliet       string
		created, modified   string
		wantLabel, wantUUID string
	}{
		{name: "primary only", label: "TOPLAYER", created: "2024010203040506",
			wantLabel: "TOPLAYER", wantUUID: "2024-01-02-03-04-05-06"},
		{name: "modification date wins", label: "CD", created: "2024010203040506", modified: "2025121110090807",
			wantLabel: "CD", wantUUID: "2025-12-11-10-09-08-07"},
		{name: "Joliet keeps the case", label: "MY_TOP_LAYER", joliet: "My_Top_Layer", created: "2024010203040506",
			wantLabel: "My_Top_Layer", wantUUID: "2024-01-02-03-04-05-06"},
		{name: "Joliet label continued by the primary one", label: "A_VERY_LONG_VOLUME_LABEL_32CHARS", joliet: "A_Very_Long_Volu",
			created: "2024010203040506", wantLabel: "A_Very_Long_VoluME_LABEL_32CHARS", wantUUID: "2024-01-02-03-04-05-06"},
		{name: "no dates, no UUID", label: "NODATE", wantLabel: "NODATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "cd.iso")
			if err := os.WriteFile(img, isoImage(tc.label, tc.joliet, tc.created, tc.modified), 0o644); err != nil {
				t.Fatal(err)
			}
			fstype, label, uuid := probeFile(t, img)
			if fstype != "iso9660" || label != tc.wantLabel || uuid != tc.wantUUID {
				t.Errorf("Probe = %q %q %q, want iso9660 %q %q", fstype, label, uuid, tc.wantLabel, tc.wantUUID)
			}
			requireTools(t, "blkid")
			if b := blkid(t, img); b["TYPE"] != fstype || b["LABEL"] != label || b["UUID"] != uuid {
				t.Errorf("Probe = %q %q %q; blkid says %q %q %q", fstype, label, uuid, b["TYPE"], b["LABEL"], b["UUID"])
			}
		})
	}
}
