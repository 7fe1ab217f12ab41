package boot

import (
	"slices"
	"testing"
)

func TestFSModules(t *testing.T) {
	for _, tc := range []struct {
		fstype, flags string
		want          []string
	}{
		{"vfat", "", []string{"fs-vfat", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859-1"}},
		{"vfat", "ro,codepage=850,iocharset=iso8859-1", []string{"fs-vfat", "nls_cp850", "nls_iso8859-1"}},
		{"iso9660", "iocharset=utf8", []string{"fs-iso9660", "nls_utf8"}},
		{"ext4", "iocharset=utf8", []string{"fs-ext4"}},
	} {
		if got := fsModules(tc.fstype, tc.flags); !slices.Equal(got, tc.want) {
			t.Errorf("fsModules(%q, %q) = %q, want %q", tc.fstype, tc.flags, got, tc.want)
		}
	}
}
