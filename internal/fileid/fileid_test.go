package fileid

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func stat(t *testing.T, p string) ID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return Of(&st)
}

// TestParents: the parents of a directory reached through a link are those of its real place.
func TestParents(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "a", "b")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/b", filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(filepath.Join(base, "link"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if id, err := Fd(fd); err != nil || id != stat(t, real) {
		t.Errorf("Fd = %v, %v; want the ID of %s", id, err, real)
	}
	ups, err := Parents(fd)
	if err != nil {
		t.Fatal(err)
	}
	want := []ID{stat(t, filepath.Join(base, "a")), stat(t, base)}
	if len(ups) < 3 || !slices.Equal(ups[:2], want) || ups[len(ups)-1] != stat(t, "/") {
		t.Errorf("Parents = %v; want %v first and / last", ups, want)
	}
	if slices.Contains(ups, stat(t, real)) {
		t.Errorf("Parents holds the directory itself")
	}
}
