package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJoinFlags(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"", "subvolid=5"}, "subvolid=5"},
		{[]string{"compress=zstd,noatime", "subvol=rw"}, "compress=zstd,noatime,subvol=rw"},
		{[]string{",ssd,", "", "subvol=a/b"}, "ssd,subvol=a/b"},
		{nil, ""},
	} {
		if got := joinFlags(tc.in...); got != tc.want {
			t.Errorf("joinFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRWLayerPathRefusesSymlinks(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"docker/btrfs/subvolumes/abc", "rw"} {
		if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A link planted at the top level that would steer the rw layer into an image layer.
	if err := os.Symlink("docker/btrfs/subvolumes", filepath.Join(top, "evil")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rw, wantErr string }{
		{"docker_rwlayer", ""},
		{"rw/desktop", ""},
		{"evil/abc", "is a symlink"},
		{"evil", "is a symlink"},
	} {
		got, err := rwLayerPath(top, tc.rw, filepath.Join(top, "docker"))
		if tc.wantErr == "" {
			if err != nil || got != filepath.Join(top, tc.rw) {
				t.Errorf("%s: got %q, %v", tc.rw, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: got %q, %v; want an error containing %q", tc.rw, got, err, tc.wantErr)
		}
	}
}

func TestListDir(t *testing.T) {
	dir := t.TempDir()
	if got := listDir(dir); got != "(nothing)" {
		t.Errorf("empty dir: %q", got)
	}
	os.Mkdir(filepath.Join(dir, "docker"), 0o755)
	os.Mkdir(filepath.Join(dir, "boot_docker"), 0o755)
	if got := listDir(dir); got != "boot_docker, docker" {
		t.Errorf("got %q", got)
	}
	if got := listDir(filepath.Join(dir, "missing")); !strings.HasPrefix(got, "(unreadable") {
		t.Errorf("missing dir: %q", got)
	}
}
