package imageroot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
)

// lay makes entries under dir: "path" is a file holding "<label> path", "path/" a directory,
// "path -> target" a symlink, "path |" a FIFO. "$HOST" in a path or target is replaced by host.
func lay(t testing.TB, dir, host, label string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		e = strings.ReplaceAll(e, "$HOST", host)
		p, target, link := strings.Cut(e, " -> ")
		p, fifo := strings.CutSuffix(p, " |")
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case link:
			err = os.Symlink(target, full)
		case fifo:
			err = unix.Mkfifo(full, 0o644)
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		default:
			err = os.WriteFile(full, []byte(label+" "+p), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// hostile returns an open image root whose links aim at a host folder holding "secret", and
// that host folder's path. The image also has a folder at the host folder's path, holding
// "present", which is where those links must lead.
func hostile(t testing.TB) (*Root, string) {
	t.Helper()
	host, image := t.TempDir(), t.TempDir()
	lay(t, host, host, "host", "secret", "hostlink -> secret")
	lay(t, image, host, "image",
		"etc/hostname",
		"boot/vmlinuz-6.1.0-9-amd64",
		"vmlinuz -> /boot/vmlinuz-6.1.0-9-amd64",
		"usr/lib/firmware/a.bin",
		"usr/lib/firmware/link -> a.bin",
		"lib -> /usr/lib",
		"abs -> $HOST/secret",
		"up -> ../../../../../../../../../../$HOST/secret",
		"hostdir -> $HOST",
		"$HOST/present",
		"fifo |",
		"loop -> loop",
	)
	r, err := Open(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, host
}

func TestRootResolvesInside(t *testing.T) {
	r, host := hostile(t)
	read := func(name string) func() (string, error) {
		return func() (string, error) {
			b, err := fs.ReadFile(r, name)
			return string(b), err
		}
	}
	readlink := func(name string) func() (string, error) {
		return func() (string, error) { return r.ReadLink(name) }
	}
	list := func(name string) func() (string, error) {
		return func() (string, error) {
			ents, err := fs.ReadDir(r, name)
			var names []string
			for _, e := range ents {
				fi, err := e.Info()
				if err != nil {
					return "", err
				}
				names = append(names, e.Name()+":"+fi.Mode().Type().String())
			}
			return strings.Join(names, " "), err
		}
	}
	for _, tc := range []struct {
		name    string
		do      func() (string, error)
		want    string
		wantErr error
	}{
		{"plain file", read("etc/hostname"), "image etc/hostname", nil},
		{"absolute link inside the image", read("vmlinuz"), "image boot/vmlinuz-6.1.0-9-amd64", nil},
		{"absolute directory link inside the image", read("lib/firmware/link"), "image usr/lib/firmware/a.bin", nil},
		{"absolute link to a host file", read("abs"), "", fs.ErrNotExist},
		{"relative link climbing out stops at the root", read("up"), "", fs.ErrNotExist},
		{"directory link to a host folder", read("hostdir/secret"), "", fs.ErrNotExist},
		{"directory link to a host folder leads to the image's folder of that path", read("hostdir/present"), "image $HOST/present", nil},
		{"FIFO refused without blocking", read("fifo"), "", errNotRegular},
		{"link loop", read("loop"), "", syscall.ELOOP},
		{"absolute name", read("/etc/hostname"), "", fs.ErrInvalid},
		{"dot-dot name", read("../etc/hostname"), "", fs.ErrInvalid},
		{"link target as written", readlink("vmlinuz"), "/boot/vmlinuz-6.1.0-9-amd64", nil},
		{"link under an absolute directory link", readlink("lib/firmware/link"), "a.bin", nil},
		{"link under a directory link to the host", readlink("hostdir/hostlink"), "", fs.ErrNotExist},
		{"not a link", readlink("etc/hostname"), "", syscall.EINVAL},
		{"directory through a link to the host lists the image's", list("hostdir"), "present:----------", nil},
		{"directory entries' info is their own", list("usr/lib/firmware"), "a.bin:---------- link:L---------", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.do()
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %q, %v; want error %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tc.want, "$HOST", host); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestRootStat(t *testing.T) {
	r, _ := hostile(t)
	for _, tc := range []struct {
		name  string
		stat  func(string) (fs.FileInfo, error)
		file  string
		want  fs.FileMode // type bits
		wantN string
	}{
		{"stat follows the link inside the image", r.Stat, "vmlinuz", 0, "vmlinuz"},
		{"lstat is the link", r.Lstat, "vmlinuz", fs.ModeSymlink, "vmlinuz"},
		{"lstat follows the links before the last", r.Lstat, "lib/firmware", fs.ModeDir, "firmware"},
		{"stat of a FIFO does not open it", r.Stat, "fifo", fs.ModeNamedPipe, "fifo"},
		{"root", r.Stat, ".", fs.ModeDir, "."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fi, err := tc.stat(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != tc.want || fi.Name() != tc.wantN {
				t.Errorf("%s: mode %v, name %q; want type %v, name %q", tc.file, fi.Mode(), fi.Name(), tc.want, tc.wantN)
			}
		})
	}
	if _, err := r.Stat("abs"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a link to a host file: %v, want it not to exist", err)
	}
}

// TestRootIsAnFS checks the fs.FS contracts, sub-trees included, on a tree without FIFOs.
func TestRootIsAnFS(t *testing.T) {
	image := t.TempDir()
	lay(t, image, "", "image", "boot/vmlinuz-1", "vmlinuz -> /boot/vmlinuz-1", "usr/lib/modules/1/kernel/a.ko", "lib -> usr/lib", "empty/")
	r, err := Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := fstest.TestFS(r, "boot/vmlinuz-1", "vmlinuz", "usr/lib/modules/1/kernel/a.ko"); err != nil {
		t.Error(err)
	}
	sub, err := fs.Sub(r, "lib/modules/1")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "kernel/a.ko"); err != nil {
		t.Error(err)
	}
}

func TestOpenRootErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	lay(t, filepath.Dir(file), "", "host", "f")
	for _, dir := range []string{filepath.Join(t.TempDir(), "nosuch"), file} {
		if r, err := Open(dir); err == nil || !strings.Contains(err.Error(), "open image root "+dir) {
			t.Errorf("Open(%s) = %v, %v; want an error naming it", dir, r, err)
		}
	}
}

// FuzzRootStaysInside reads any name from a hostile image: nothing of the host folder shows.
func FuzzRootStaysInside(f *testing.F) {
	for _, s := range []string{"abs", "up", "hostdir/secret", "hostdir", "hostdir/hostlink", "lib/firmware/link", "fifo", "loop", "."} {
		f.Add(s)
	}
	r, host := hostile(f)
	f.Fuzz(func(t *testing.T, name string) {
		if b, err := fs.ReadFile(r, name); err == nil && strings.HasPrefix(string(b), "host ") {
			t.Errorf("ReadFile(%q) = %q: the host's file", name, b)
		}
		if target, err := r.ReadLink(name); err == nil && target == "secret" {
			t.Errorf("ReadLink(%q) = %q: the host's link", name, target)
		}
		if ents, err := fs.ReadDir(r, name); err == nil && slices.ContainsFunc(ents, func(e fs.DirEntry) bool { return e.Name() == "secret" }) {
			t.Errorf("ReadDir(%q) lists the host folder %s", name, host)
		}
	})
}
