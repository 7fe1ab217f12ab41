package initramfs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// TestDebianShaped reads what Debian's mkinitramfs writes, made with the same tools: GNU cpio for
// an uncompressed early archive (CPU microcode), then the main archive through each compressor
// initramfs-tools offers with its options. It checks the archives, a file reached through a
// symlink, a hard link and the unpacked tree against the directories they were made from.
func TestDebianShaped(t *testing.T) {
	testenv.Tools(t, "cpio", "cpio", "find", "sort")
	base := t.TempDir()
	earlyDir, mainDir := filepath.Join(base, "early"), filepath.Join(base, "main")
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = "abcdefgh"[rand.IntN(8)] // compressible, but not to nothing
	}
	mkTree(t, earlyDir, map[string]string{"kernel/x86/microcode/GenuineIntel.bin": "microcode"})
	mkTree(t, mainDir, map[string]string{
		"init":                      "#!/bin/sh\nexec run-init\n",
		"conf/initramfs.conf":       "MODULES=most\n",
		"usr/bin/tool":              string(big),
		"usr/lib/modules/6.1.0/dep": "kernel/fs/btrfs/btrfs.ko:\n",
		"bin":                       "-> usr/bin",
		"lib":                       "-> usr/lib",
	})
	if err := os.Link(filepath.Join(mainDir, "usr/bin/tool"), filepath.Join(mainDir, "usr/bin/tool2")); err != nil {
		t.Fatal(err)
	}
	earlyCpio := run(t, earlyDir, "find . -print0 | LC_ALL=C sort -z | cpio --null --reproducible -R 0:0 -H newc -o --quiet")
	wantTree := strings.Split(tree(t, earlyDir)+"\n"+tree(t, mainDir), "\n")
	sort.Strings(wantTree)

	for _, tt := range []struct {
		name, pkg, compress string
	}{
		{"gzip", "gzip", "gzip -n"},
		{"zstd", "zstd", "zstd -q -1 -T0"},
		{"xz", "xz-utils", "xz --check=crc32"},
		{"lz4", "lz4", "lz4 -9 -l"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testenv.Tools(t, tt.pkg, strings.Fields(tt.compress)[0])
			main := run(t, mainDir, "find . | LC_ALL=C sort | cpio --reproducible -R 0:0 -H newc -o --quiet | "+tt.compress)
			img := cat(earlyCpio, main)

			archives, err := ReadArchives(img)
			if err != nil {
				t.Fatal(err)
			}
			if len(archives) != 2 || archives[0].Compression != "none" || archives[1].Compression != tt.name || archives[1].Offset != len(earlyCpio) {
				t.Fatalf("got archives %+v; want an uncompressed one, then %s at byte %d", summary(archives), tt.name, len(earlyCpio))
			}
			entries, err := Read(img)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"bin/tool", "usr/bin/tool2"} {
				if f, err := Find(entries, p); err != nil || !bytes.Equal(f.Data, big) {
					t.Errorf("%s: got %d bytes, %v; want the %d bytes of usr/bin/tool", p, len(f.Data), err, len(big))
				}
			}
			out := filepath.Join(t.TempDir(), "out")
			if _, err := Unpack(entries, out, UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			got := strings.Split(tree(t, out), "\n")
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(wantTree, "\n") {
				t.Errorf("unpacked tree differs from the source:\n%s\nwant:\n%s", abbrevTree(got), abbrevTree(wantTree))
			}
		})
	}
}

// mkTree makes files (0644, or 0755 for init) and symlinks ("-> target") under dir.
func mkTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		perm := os.FileMode(0o644)
		if p == "init" {
			perm = 0o755
		}
		if err := os.WriteFile(full, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, perm); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, dir, script string) []byte {
	t.Helper()
	cmd := exec.Command("bash", "-c", "set -o pipefail; "+script)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	return out
}

func summary(archives []Archive) []string {
	var out []string
	for _, a := range archives {
		out = append(out, fmt.Sprintf("%s@%d", a.Compression, a.Offset))
	}
	return out
}

// abbrevTree cuts file contents short, for readable failures.
func abbrevTree(lines []string) string {
	var out []string
	for _, l := range lines {
		out = append(out, l[:min(len(l), 80)])
	}
	return strings.Join(out, "\n")
}
