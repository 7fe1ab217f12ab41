package btrfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// requireRoot skips a test that needs root and a loop-mounted btrfs, except
// in CI (which runs as root), where a skip would hide a broken test.
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.Root(t, "a loop-mounted btrfs")
	testenv.Tools(t, "btrfs-progs mount", "mkfs.btrfs", "btrfs", "mount", "umount")
}

// newBtrfs mounts a fresh loop-backed btrfs and returns its top level.
func newBtrfs(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	img := filepath.Join(t.TempDir(), "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "mkfs.btrfs", "-q", img)
	mnt := t.TempDir()
	run(t, "mount", "-o", "loop", img, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func subvolume(t *testing.T, path string) string {
	t.Helper()
	run(t, "btrfs", "subvolume", "create", path)
	return path
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSnapshot(t *testing.T) {
	top := newBtrfs(t)
	src := subvolume(t, filepath.Join(top, "layer"))
	writeFile(t, filepath.Join(src, "etc/hostname"), "image\n")
	run(t, "btrfs", "subvolume", "snapshot", "-r", src, filepath.Join(top, "layer-ro"))

	for _, from := range []string{"layer", "layer-ro"} {
		t.Run(from, func(t *testing.T) {
			dst := filepath.Join(top, from+"-rw")
			if err := Snapshot(filepath.Join(top, from), dst); err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			if ok, err := IsSubvolume(dst); !ok || err != nil {
				t.Fatalf("IsSubvolume(snapshot) = %v, %v; want true", ok, err)
			}
			if got := readFile(t, filepath.Join(dst, "etc/hostname")); got != "image\n" {
				t.Errorf("snapshot etc/hostname = %q, want the source's %q", got, "image\n")
			}
			writeFile(t, filepath.Join(dst, "etc/hostname"), "machine\n")
			writeFile(t, filepath.Join(dst, "new"), "x")
			if got := readFile(t, filepath.Join(dst, "etc/hostname")); got != "machine\n" {
				t.Errorf("after writing the snapshot, it reads %q", got)
			}
			if got := readFile(t, filepath.Join(top, from, "etc/hostname")); got != "image\n" {
				t.Errorf("writing the snapshot changed the source: %q", got)
			}
			if _, err := os.Lstat(filepath.Join(top, from, "new")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a file created in the snapshot appeared in the source (lstat: %v)", err)
			}
		})
	}
	if err := os.WriteFile(filepath.Join(top, "layer-ro", "x"), nil, 0o644); err == nil {
		t.Error("the read-only source became writable")
	}
}

func TestSnapshotRefused(t *testing.T) {
	top := newBtrfs(t)
	src := subvolume(t, filepath.Join(top, "layer"))
	subvolume(t, filepath.Join(top, "existing-subvol"))
	writeFile(t, filepath.Join(top, "existing-file"), "keep")
	writeFile(t, filepath.Join(top, "existing-dir/f"), "keep")
	writeFile(t, filepath.Join(src, "plain-dir/f"), "x")
	if err := os.Symlink("layer", filepath.Join(top, "existing-link")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, src, dst string
		check          func(error) bool
		want           string
	}{
		{"dst is a file", src, filepath.Join(top, "existing-file"), isExist, "already exists"},
		{"dst is a dir", src, filepath.Join(top, "existing-dir"), isExist, "already exists"},
		{"dst is a subvolume", src, filepath.Join(top, "existing-subvol"), isExist, "already exists"},
		{"dst is a dangling symlink", src, filepath.Join(top, "existing-link"), isExist, "already exists"},
		{"src is a plain dir", filepath.Join(src, "plain-dir"), filepath.Join(top, "new1"), isNotSubvolume, "inode"},
		{"src is not on btrfs", t.TempDir(), filepath.Join(top, "new2"), isNotSubvolume, "magic"},
		{"dst parent missing", src, filepath.Join(top, "missing/new3"), isNotExist, "parent"},
		{"dst not on btrfs", src, filepath.Join(t.TempDir(), "new4"), errorf, "not on btrfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Snapshot(tt.src, tt.dst)
			if err == nil || !tt.check(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Snapshot(%s, %s) = %v; want an error saying %q", tt.src, tt.dst, err, tt.want)
			}
		})
	}
	if got := readFile(t, filepath.Join(top, "existing-file")); got != "keep" {
		t.Errorf("a refused snapshot changed the existing file: %q", got)
	}
	if got := readFile(t, filepath.Join(top, "existing-dir/f")); got != "keep" {
		t.Errorf("a refused snapshot changed the existing dir: %q", got)
	}
}

func isExist(err error) bool    { return errors.Is(err, fs.ErrExist) }
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
func errorf(err error) bool     { return err != nil }
func isNotSubvolume(err error) bool {
	var nse *NotSubvolumeError
	return errors.As(err, &nse)
}

func TestIsSubvolume(t *testing.T) {
	top := newBtrfs(t)
	sv := subvolume(t, filepath.Join(top, "sv"))
	writeFile(t, filepath.Join(sv, "dir/file"), "x")
	if err := os.Symlink("sv", filepath.Join(top, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path    string
		want    bool
		wantErr bool
	}{
		{sv, true, false},
		{top, true, false}, // the top level (id 5) is a subvolume too
		{filepath.Join(sv, "dir"), false, false},
		{filepath.Join(sv, "dir/file"), false, false},
		{filepath.Join(top, "link"), false, false},
		{t.TempDir(), false, false},
		{filepath.Join(top, "missing"), false, true},
	}
	for _, tt := range tests {
		got, err := IsSubvolume(tt.path)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("IsSubvolume(%s) = %v, %v; want %v, error %v", tt.path, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name   string
		nested []string // subvolumes to create inside rw, parents first
		ro     []string // read-only snapshots of rw/<path> at rw/<path>.ro
		many   int      // that many more subvolumes right inside rw (tree search paging)
	}{
		{name: "plain"},
		{name: "two levels", nested: []string{"var/lib/machines", "var/lib/machines/debian", "srv"}},
		{name: "read-only nested", nested: []string{"var/lib/machines"}, ro: []string{"var/lib/machines"}},
		{name: "many", many: 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := newBtrfs(t)
			keep := subvolume(t, filepath.Join(top, "keep"))
			rw := subvolume(t, filepath.Join(top, "rw"))
			writeFile(t, filepath.Join(rw, "etc/hostname"), "x")
			for _, n := range tt.nested {
				p := filepath.Join(rw, n)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				subvolume(t, p)
				writeFile(t, filepath.Join(p, "data"), n)
			}
			for _, n := range tt.ro {
				run(t, "btrfs", "subvolume", "snapshot", "-r", filepath.Join(rw, n), filepath.Join(rw, n+".ro"))
			}
			for i := range tt.many {
				subvolume(t, filepath.Join(rw, fmt.Sprintf("sv%03d", i)))
			}

			if err := Delete(rw); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := os.Lstat(rw); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still exists after Delete (lstat: %v)", rw, err)
			}
			if ok, err := IsSubvolume(keep); !ok || err != nil {
				t.Errorf("a sibling subvolume was harmed: IsSubvolume = %v, %v", ok, err)
			}
			out, err := exec.Command("btrfs", "subvolume", "list", top).CombinedOutput()
			if err != nil {
				t.Fatalf("btrfs subvolume list: %v: %s", err, out)
			}
			if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, "path keep") || strings.Count(got, "\n") != 0 {
				t.Errorf("subvolumes left after Delete:\n%s\nwant only keep", got)
			}
		})
	}
}

func TestDeleteRefused(t *testing.T) {
	top := newBtrfs(t)
	sv := subvolume(t, filepath.Join(top, "sv"))
	writeFile(t, filepath.Join(sv, "dir/file"), "x")
	tests := []struct {
		path  string
		check func(error) bool
	}{
		{filepath.Join(sv, "dir"), isNotSubvolume},
		{filepath.Join(sv, "dir/file"), isNotSubvolume},
		{t.TempDir(), isNotSubvolume},
		{filepath.Join(top, "missing"), isNotExist},
	}
	for _, tt := range tests {
		if err := Delete(tt.path); err == nil || !tt.check(err) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("Delete(%s) = %v; want a refusal naming the path", tt.path, err)
		}
	}
	if got := readFile(t, filepath.Join(sv, "dir/file")); got != "x" {
		t.Errorf("a refused Delete changed the subvolume: %q", got)
	}
}

func TestNestedSubvolumes(t *testing.T) {
	top := newBtrfs(t)
	rw := subvolume(t, filepath.Join(top, "rw"))
	if err := os.MkdirAll(filepath.Join(rw, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := []string{
		subvolume(t, filepath.Join(rw, "a/b/deep")),
		subvolume(t, filepath.Join(rw, "direct")),
	}
	subvolume(t, filepath.Join(rw, "direct/grandchild")) // not a direct child of rw
	got, err := nestedSubvolumes(rw)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("nestedSubvolumes = %q, want %q", got, want)
	}
}

func TestSubvolumes(t *testing.T) {
	top := newBtrfs(t)
	rw := subvolume(t, filepath.Join(top, "rw"))
	if err := os.MkdirAll(filepath.Join(rw, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := []string{
		rw,
		subvolume(t, filepath.Join(rw, "a/b/deep")),
		subvolume(t, filepath.Join(rw, "direct")),
		subvolume(t, filepath.Join(rw, "direct/grandchild")),
		subvolume(t, filepath.Join(top, "other")),
	}
	got, err := Subvolumes(top)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Subvolumes(top level) = %q, want %q", got, want)
	}
	var nse *NotSubvolumeError
	if _, err := Subvolumes(filepath.Join(rw, "a")); !errors.As(err, &nse) {
		t.Errorf("Subvolumes of a plain directory = %v, want a *NotSubvolumeError", err)
	}
}

func TestStructSizes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want uintptr
	}{
		{"btrfs_ioctl_vol_args", unsafe.Sizeof(volArgs{}), 4096},
		{"btrfs_ioctl_vol_args_v2", unsafe.Sizeof(volArgsV2{}), 4096},
		{"btrfs_ioctl_vol_args_v2.name", unsafe.Offsetof(volArgsV2{}.Name), 56},
		{"btrfs_ioctl_ino_lookup_args", unsafe.Sizeof(inoLookupArgs{}), 4096},
		{"btrfs_ioctl_search_key", unsafe.Sizeof(searchKey{}), 104},
		{"btrfs_ioctl_search_key.nr_items", unsafe.Offsetof(searchKey{}.NrItems), 64},
		{"btrfs_ioctl_search_args", unsafe.Sizeof(searchArgs{}), 4096},
		{"btrfs_ioctl_get_subvol_info_args", unsafe.Sizeof(subvolInfoArgs{}), 504},
		{"btrfs_ioctl_get_subvol_info_args.uuid", unsafe.Offsetof(subvolInfoArgs{}.UUID), 296},
		{"btrfs_ioctl_get_subvol_info_args.ctime", unsafe.Offsetof(subvolInfoArgs{}.Ctime), 376},
	} {
		if tt.got != tt.want {
			t.Errorf("sizeof/offsetof %s = %d, the kernel's is %d", tt.name, tt.got, tt.want)
		}
	}
}

// TestInfo checks the subvolume UUIDs against what btrfs-progs shows: a snapshot's parent UUID is
// its source's UUID, and a created subvolume has none.
func TestInfo(t *testing.T) {
	top := newBtrfs(t)
	src := subvolume(t, filepath.Join(top, "src"))
	snap := filepath.Join(top, "snap")
	if err := Snapshot(src, snap); err != nil {
		t.Fatal(err)
	}
	si, err := Info(src)
	if err != nil {
		t.Fatal(err)
	}
	ni, err := Info(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !si.ParentUUID.IsZero() {
		t.Errorf("created subvolume has parent UUID %s, want none", si.ParentUUID)
	}
	if ni.ParentUUID != si.UUID || si.UUID.IsZero() {
		t.Errorf("snapshot's parent UUID = %s, want its source's UUID %s", ni.ParentUUID, si.UUID)
	}
	out, err := exec.Command("btrfs", "subvolume", "show", snap).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs subvolume show: %v: %s", err, out)
	}
	for _, want := range []string{`(?m)^\s*UUID:\s+` + ni.UUID.String() + `$`, `(?m)^\s*Parent UUID:\s+` + si.UUID.String() + `$`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("btrfs subvolume show lacks %q:\n%s", want, out)
		}
	}
	if _, err := Info(filepath.Join(top, "nosuch")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Info of a missing path = %v, want ErrNotExist", err)
	}
}
