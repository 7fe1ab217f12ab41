package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/btrfs"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

// TestRWLayerPathByInode: the rw layer is checked against the store by what the paths lead to on
// disk. The store here is reached through var/lib/docker -> ../../docker, so the lexical check of
// bootparam (docker_path=var/lib/docker) lets both names through.
func TestRWLayerPathByInode(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"docker/btrfs/subvolumes/abc", "var/lib", "host/srv/store", "rw"} {
		if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../../docker", filepath.Join(top, "var/lib/docker")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rw, store, wantErr string
	}{
		{"docker_rwlayer", "var/lib/docker", ""},
		{"rw/desktop", "var/lib/docker", ""},
		{"docker/btrfs/subvolumes/abc", "var/lib/docker", "is the image store var/lib/docker on disk"},
		{"docker/new", "var/lib/docker", "is the image store var/lib/docker on disk"},
		{"docker", "var/lib/docker", "is the image store var/lib/docker on disk"},
		{"host", "host/srv/store", "the image store host/srv/store is inside /host"},
		{"host/srv", "host/srv/store", "the image store host/srv/store is inside /host/srv"},
		{"host/other", "host/srv/store", ""},
		{"rw", "nosuch", ""},
	} {
		got, err := rwLayerPath(top, tc.rw, filepath.Join(top, tc.store))
		if tc.wantErr == "" {
			if err != nil || got != filepath.Join(top, tc.rw) {
				t.Errorf("subvol=%s, store %s: got %q, %v", tc.rw, tc.store, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("subvol=%s, store %s: got %q, %v; want an error containing %q", tc.rw, tc.store, got, err, tc.wantErr)
		}
	}
}

// TestOwnRWLayer: only a subvolume dockerinit made is deleted at boot: one it marked, or a
// snapshot of an image layer (an rw layer from before the mark). A host's own root subvolume,
// created or snapshotted from something else, is refused.
func TestOwnRWLayer(t *testing.T) {
	testenv.Root(t, "a loop-mounted btrfs and trusted.* xattrs")
	testenv.Tools(t, "btrfs-progs mount", "mkfs.btrfs", "btrfs", "mount", "umount")
	img := filepath.Join(t.TempDir(), "btrfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 256<<20); err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("mkfs.btrfs", "-q", img)
	sh("mount", "-o", "loop", img, top)
	t.Cleanup(func() { _ = exec.Command("umount", top).Run() })

	layers := filepath.Join(top, "docker/btrfs/subvolumes")
	if err := os.MkdirAll(layers, 0o700); err != nil {
		t.Fatal(err)
	}
	sh("btrfs", "subvolume", "create", filepath.Join(layers, "abc"))
	sh("btrfs", "subvolume", "create", filepath.Join(top, "@"))
	snap := func(src, dst string) string {
		if err := btrfs.Snapshot(filepath.Join(top, src), filepath.Join(top, dst)); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(top, dst)
	}
	legacy := snap("docker/btrfs/subvolumes/abc", "docker_rwlayer")
	marked := snap("@", "marked")
	if err := markRWLayer(marked, "sha256:1234"); err != nil {
		t.Fatal(err)
	}
	snapper := snap("@", "snapshot_of_root")
	for _, tc := range []struct {
		path, wantErr string
	}{
		{legacy, ""},
		{marked, ""},
		{filepath.Join(top, "@"), "made by `btrfs subvolume create`"},
		{snapper, "is a snapshot of subvolume"},
	} {
		name := strings.TrimPrefix(tc.path, top+"/")
		err := ownRWLayer(tc.path, name, layers)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v, want it taken as dockerinit's", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "refusing to delete it") {
			t.Errorf("%s: %v, want a refusal saying %q", name, err, tc.wantErr)
		}
	}
}
