package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

func TestOverlayOptions(t *testing.T) {
	long := make([]string, 150)
	for i := range long {
		long[i] = fmt.Sprintf("l/%026d", i)
	}
	for _, tc := range []struct {
		name    string
		layers  []string
		want    string
		wantErr string
	}{
		{"uppermost first", []string{"l/B", "l/A"}, "lowerdir=l/B:l/A,upperdir=/u,workdir=/w,volatile", ""},
		{"one layer", []string{"3/fs"}, "lowerdir=3/fs,upperdir=/u,workdir=/w,volatile", ""},
		{"no layers", nil, "", "no layers"},
		{"a colon", []string{"l/A:B"}, "", "cannot be named in overlay mount options"},
		{"a comma", []string{"l/A,upperdir=/"}, "", "cannot be named in overlay mount options"},
		{"over a page", long, "", "over the kernel's limit of 4095; flatten the image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OverlayOptions(tc.layers, "/u", "/w")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestRetireRWDir: the last boot's rw layer folder goes aside in one rename whatever it holds, is
// deleted afterwards, and only folders dockerinit marked (or empty ones) are ever touched.
func TestRetireRWDir(t *testing.T) {
	testenv.Root(t, "the rw layer's mark is a trusted.* xattr, which only root may set")
	top := t.TempDir()
	rw := filepath.Join(top, "docker_rwlayer")
	if err := makeRWDir(rw, "sha256:1"); err != nil {
		t.Fatal(err)
	}
	// What a boot wrote: 100,000 files, which must not make the next boot wait.
	const files = 100_000
	upper := filepath.Join(rw, upperDir, "var/lib")
	for d := 0; d < files/1000; d++ {
		dir := filepath.Join(upper, fmt.Sprint(d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < 1000; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(f)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t0 := time.Now()
	if err := retireRWDir(rw, "docker_rwlayer"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	t.Logf("moving aside an rw layer of %d files took %v", files, took)
	if took > time.Second {
		t.Errorf("moving the old rw layer aside took %v: it must not grow with what the layer holds", took)
	}
	if _, err := os.Lstat(rw); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old rw layer is still at %s: %v", rw, err)
	}
	old, _ := filepath.Glob(rw + oldSuffix + "*")
	if len(old) != 1 {
		t.Fatalf("old rw layers: %q, want one", old)
	}
	removeOldRWDirs(&Logger{w: os.Stderr}, rw)
	if _, err := os.Lstat(old[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old rw layer %s was not deleted: %v", old[0], err)
	}

	// A host's own folder named by subvol= is refused, and kept with what it holds.
	host := filepath.Join(top, "srv")
	if err := os.MkdirAll(filepath.Join(host, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := retireRWDir(host, "srv"); err == nil || !strings.Contains(err.Error(), "dockerinit did not make") {
		t.Errorf("an unmarked folder with files: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(host, "data")); err != nil {
		t.Errorf("the refused folder lost its contents: %v", err)
	}
	// An unmarked old folder beside the rw layer is never deleted either.
	stray := rw + oldSuffix + "stray"
	if err := os.MkdirAll(filepath.Join(stray, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	removeOldRWDirs(&Logger{w: os.Stderr}, rw)
	if _, err := os.Stat(filepath.Join(stray, "keep")); err != nil {
		t.Errorf("an unmarked folder named like an old rw layer was deleted: %v", err)
	}
	// A power cut between mkdir and the mark leaves an empty folder: it goes.
	cut := filepath.Join(top, "cut")
	if err := os.Mkdir(cut, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := retireRWDir(cut, "cut"); err != nil {
		t.Errorf("an empty unmarked folder: %v, want it removed", err)
	}
	// A new rw layer carries the mark and holds the upper and work folders.
	if err := makeRWDir(rw, "sha256:2"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(rw, rwMarkXattr, buf)
	if err != nil || string(buf[:n]) != "sha256:2" {
		t.Errorf("the new rw layer's mark: %q, %v", buf[:max(n, 0)], err)
	}
	for _, d := range []string{upperDir, workDir} {
		if fi, err := os.Stat(filepath.Join(rw, d)); err != nil || !fi.IsDir() {
			t.Errorf("the new rw layer has no %s folder: %v", d, err)
		}
	}
}
