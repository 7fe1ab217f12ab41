package bootimage

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWriteFiles: the two files land with their contents and modes whatever the umask, a file
// whose bytes are already there is kept (same inode) with its mode fixed, and an error leaves no
// temporary file and says what was replaced.
func TestWriteFiles(t *testing.T) {
	files := []outFile{{"vmlinuz", []byte("new kernel"), 0o644}, {"initramfs.img", []byte("new initramfs"), 0o600}}
	for _, tc := range []struct {
		name    string
		before  func(t *testing.T, dir string) // what is in the directory already
		want    map[string]string              // name: "mode contents"
		kept    []string                       // names whose inode must not change
		wantErr string
	}{
		{"empty directory", nil,
			map[string]string{"vmlinuz": "-rw-r--r-- new kernel", "initramfs.img": "-rw------- new initramfs"}, nil, ""},
		{"an older pair, readable by all", func(t *testing.T, dir string) {
			write(t, dir, "vmlinuz", "old kernel", 0o644)
			write(t, dir, "initramfs.img", "old initramfs", 0o644)
		}, map[string]string{"vmlinuz": "-rw-r--r-- new kernel", "initramfs.img": "-rw------- new initramfs"}, nil, ""},
		{"same kernel, new initramfs", func(t *testing.T, dir string) {
			write(t, dir, "vmlinuz", "new kernel", 0o644)
			write(t, dir, "initramfs.img", "old initramfs", 0o600)
		}, map[string]string{"vmlinuz": "-rw-r--r-- new kernel", "initramfs.img": "-rw------- new initramfs"}, []string{"vmlinuz"}, ""},
		{"same initramfs, once written 0644", func(t *testing.T, dir string) {
			write(t, dir, "vmlinuz", "new kernel", 0o644)
			write(t, dir, "initramfs.img", "new initramfs", 0o644)
		}, map[string]string{"vmlinuz": "-rw-r--r-- new kernel", "initramfs.img": "-rw------- new initramfs"}, []string{"vmlinuz", "initramfs.img"}, ""},
		{"a symlink to the same bytes", func(t *testing.T, dir string) {
			write(t, dir, "elsewhere", "new kernel", 0o600)
			if err := os.Symlink("elsewhere", filepath.Join(dir, "vmlinuz")); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"vmlinuz": "-rw-r--r-- new kernel", "elsewhere": "-rw------- new kernel", "initramfs.img": "-rw------- new initramfs"}, nil, ""},
		{"initramfs.img a directory", func(t *testing.T, dir string) {
			write(t, dir, "vmlinuz", "old kernel", 0o644)
			write(t, dir, "initramfs.img/x", "x", 0o644)
		}, map[string]string{"vmlinuz": "-rw-r--r-- new kernel", "initramfs.img/x": "-rw-r--r-- x"}, nil,
			"vmlinuz already replaced, so the files do not match"},
		{"vmlinuz a directory", func(t *testing.T, dir string) {
			write(t, dir, "vmlinuz/x", "x", 0o644)
			write(t, dir, "initramfs.img", "old initramfs", 0o644)
		}, map[string]string{"vmlinuz/x": "-rw-r--r-- x", "initramfs.img": "-rw-r--r-- old initramfs"}, nil,
			"(nothing was replaced)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.before != nil {
				tc.before(t, dir)
			}
			inodes := map[string]uint64{}
			for _, name := range tc.kept {
				inodes[name] = inode(t, filepath.Join(dir, name))
			}
			defer syscall.Umask(syscall.Umask(0o077)) // the modes are the files', not the umask's
			err := writeFiles(dir, files...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got error %v, want one saying %q", err, tc.wantErr)
			}
			got := map[string]string{}
			filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					data, _ := os.ReadFile(p)
					rel, _ := filepath.Rel(dir, p)
					got[rel] = fi.Mode().String() + " " + string(data)
				}
				return err
			})
			for name, want := range tc.want {
				if got[name] != want {
					t.Errorf("%s: got %q, want %q", name, got[name], want)
				}
			}
			for name := range got {
				if _, ok := tc.want[name]; !ok {
					t.Errorf("%s left in the directory (%s)", name, got[name])
				}
			}
			for name, ino := range inodes {
				if now := inode(t, filepath.Join(dir, name)); now != ino {
					t.Errorf("%s was rewritten (inode %d, was %d) though its bytes were already there", name, now, ino)
				}
			}
		})
	}
}

func write(t *testing.T, dir, name, data string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
