package initramfs

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

func sample() []Entry {
	return append(Base(),
		File("init", 0o755, []byte("#!/bin/sh\n")),
		File("etc/dockerinit.toml", 0o644, []byte("image = \"x\"\n")),
		File("lib/modules/6.1.0/kernel/fs/btrfs.ko", 0o644, bytes.Repeat([]byte{1, 2, 3}, 5000)),
		Symlink("bin", "usr/bin"),
		File("usr/bin/su", 0o755|fs.ModeSetuid, nil),
	)
}

func TestWriteReadRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	got, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Entry{}
	var order []string
	for _, e := range got {
		byPath[e.Path] = e
		order = append(order, e.Path)
	}
	for _, want := range sample() {
		g, ok := byPath[want.Path]
		if !ok {
			t.Errorf("%s missing from archive; have %v", want.Path, order)
			continue
		}
		if want.Data == nil {
			want.Data = g.Data // empty file reads back as nil or empty
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s: got %+v, want %+v", want.Path, g, want)
		}
	}
	for _, parent := range []string{"etc", "lib", "lib/modules/6.1.0/kernel/fs", "usr", "usr/bin"} {
		if e := byPath[parent]; e.Mode != fs.ModeDir|0o755 {
			t.Errorf("parent %s: mode %v, want drwxr-xr-x", parent, e.Mode)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("entries not sorted: %s before %s", order[i-1], order[i])
		}
	}
}

func TestWriteReproducible(t *testing.T) {
	var a, b bytes.Buffer
	if err := Write(&a, sample()); err != nil {
		t.Fatal(err)
	}
	rev := sample()
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if err := Write(&b, rev); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same entries in another order gave a different archive")
	}
}

func TestWriteRejects(t *testing.T) {
	for name, entries := range map[string][]Entry{
		"duplicate":        {File("a", 0o644, nil), File("a", 0o644, []byte("x"))},
		"escape":           {File("../etc/passwd", 0o644, nil)},
		"root":             {Dir("/")},
		"file as parent":   {File("a", 0o644, nil), File("a/b", 0o644, nil)},
		"unsupported type": {{Path: "p", Mode: fs.ModeNamedPipe}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := Write(&bytes.Buffer{}, entries); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// TestGNUCpioReads checks the archive with a second, independent reader.
func TestGNUCpioReads(t *testing.T) {
	testenv.Tools(t, "cpio zstd", "cpio", "zstd")
	dir := t.TempDir()
	img := filepath.Join(dir, "initramfs.img")
	var buf bytes.Buffer
	if err := Write(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "zstd -dc "+img+" | cpio -itv --quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	for _, want := range []string{"crw-------", "dev/console", "-rwsr-xr-x", "usr/bin/su", "bin -> usr/bin", "lib/modules/6.1.0/kernel/fs/btrfs.ko"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio -itv lacks %q:\n%s", want, out)
		}
	}
}
