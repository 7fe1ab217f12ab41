package initramfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// tree describes what is under dir: "path mode [-> target | data]" lines, sorted.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := rel + " " + ModeString(fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			line += " " + string(data)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestUnpack(t *testing.T) {
	entries := []Entry{
		{Path: ".", Mode: fs.ModeDir | 0o700},
		File("./init", 0o755, []byte("#!/bin/sh")),
		{Path: "ro", Mode: fs.ModeDir | 0o555},
		File("ro/file", 0o444, []byte("r")),
		File("implied/file", 0o600, []byte("i")),
		Symlink("bin", "usr/bin"),
		File("usr/bin/su", 0o755|fs.ModeSetuid, []byte("su")),
		File("etc/conf", 0o644, []byte("first")),
		File("etc/conf", 0o640, []byte("second")), // a later archive's replaces it
		Symlink("etc/link", "/etc/passwd"),
		File("etc/link", 0o644, []byte("no longer a link")),
		{Path: "run/fifo", Mode: fs.ModeNamedPipe | 0o600},
		CharDev("dev/console", 0o600, 5, 1),
		CharDev("dev/null", 0o666, 1, 3),
	}
	want := strings.Join([]string{
		"bin lrwxrwxrwx -> usr/bin",
		"etc drwxr-xr-x",
		"etc/conf -rw-r----- second",
		"etc/link -rw-r--r-- no longer a link",
		"implied drwxr-xr-x",
		"implied/file -rw------- i",
		"init -rwxr-xr-x #!/bin/sh",
		"ro dr-xr-xr-x",
		"ro/file -r--r--r-- r",
		"run drwxr-xr-x",
		"run/fifo prw-------",
		"usr drwxr-xr-x",
		"usr/bin drwxr-xr-x",
		"usr/bin/su -rwsr-xr-x su",
	}, "\n")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	notes, err := Unpack(entries, out, UnpackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(out, "ro"), 0o755) })
	if got := tree(t, out); got != want {
		t.Errorf("unpacked:\n%s\nwant:\n%s", got, want)
	}
	wantNotes := "skipped 2 device node(s) (dev/console, dev/null): creating them needs root"
	if len(notes) != 1 || notes[0] != wantNotes {
		t.Errorf("notes: got %q, want %q", notes, wantNotes)
	}
}

func TestUnpackAsRoot(t *testing.T) {
	testenv.Root(t, "device nodes and owners")
	entries := []Entry{
		CharDev("dev/console", 0o600, 5, 1),
		{Path: "dev/sda", Mode: fs.ModeDevice | 0o660, Major: 8, GID: 6},
		{Path: "home/u", Mode: fs.ModeDir | 0o700, UID: 1000, GID: 1000},
		{Path: "usr/bin/su", Mode: 0o4755 | fs.ModeSetuid, Data: []byte("su"), UID: 0, GID: 0},
		{Path: "usr/bin/crontab", Mode: 0o755 | fs.ModeSetgid, Data: []byte("c"), GID: 102},
	}
	dir := t.TempDir()
	notes, err := Unpack(entries, dir, UnpackOptions{Owners: true, Devices: true})
	if err != nil || len(notes) > 0 {
		t.Fatalf("got notes %q, error %v", notes, err)
	}
	for _, tt := range []struct {
		path     string
		mode     string
		uid, gid uint32
		rdev     uint64
	}{
		{"dev/console", "crw-------", 0, 0, 5<<8 | 1},
		{"dev/sda", "brw-rw----", 0, 6, 8 << 8},
		{"home/u", "drwx------", 1000, 1000, 0},
		{"usr/bin/su", "-rwsr-xr-x", 0, 0, 0},
		{"usr/bin/crontab", "-rwxr-sr-x", 0, 102, 0},
	} {
		fi, err := os.Lstat(filepath.Join(dir, tt.path))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := ModeString(fi.Mode()); got != tt.mode || st.Uid != tt.uid || st.Gid != tt.gid || st.Rdev != tt.rdev {
			t.Errorf("%s: got %s %d:%d rdev %#x, want %s %d:%d rdev %#x", tt.path, got, st.Uid, st.Gid, st.Rdev, tt.mode, tt.uid, tt.gid, tt.rdev)
		}
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		before  func(dir, outside string) // what is in dir already (with Force)
		want    string
	}{
		{"absolute path", []Entry{File("/etc/evil", 0o644, nil)}, nil, `entry "/etc/evil" has an absolute path`},
		{"dot-dot", []Entry{File("../evil", 0o644, nil)}, nil, `entry "../evil" has a ".." component`},
		{"dot-dot inside", []Entry{File("a/../../evil", 0o644, nil)}, nil, `has a ".." component`},
		{"through an absolute symlink", []Entry{Symlink("escape", "OUTSIDE"), File("escape/evil", 0o644, nil)}, nil,
			`entry "escape/evil": its parent`},
		{"through a relative symlink", []Entry{Symlink("up", "../outside"), File("up/evil", 0o644, nil)}, nil,
			`entry "up/evil": its parent`},
		{"through a symlinked parent further up", []Entry{Dir("a"), Symlink("a/b", "OUTSIDE"), File("a/b/c/evil", 0o644, nil)}, nil,
			`is a symlink (to `},
		{"through a symlink already in dir", []Entry{File("pre/evil", 0o644, nil)},
			func(dir, outside string) { os.Symlink(outside, filepath.Join(dir, "pre")) }, `entry "pre/evil": its parent`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir, outside := filepath.Join(base, "dir"), filepath.Join(base, "outside")
			for _, d := range []string{dir, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for i, e := range tt.entries {
				tt.entries[i].Target = strings.ReplaceAll(e.Target, "OUTSIDE", outside)
			}
			if tt.before != nil {
				tt.before(dir, outside)
			}
			_, err := Unpack(tt.entries, dir, UnpackOptions{Force: true})
			if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrUnsafePath with %q", err, tt.want)
			}
			if got := tree(t, outside); got != "" {
				t.Errorf("written outside:\n%s", got)
			}
			if _, err := os.Lstat(filepath.Join(base, "evil")); err == nil {
				t.Error("written next to dir")
			}
		})
	}
}

// TestUnpackReplacesSymlink: a file entry over an earlier symlink replaces the link, and does not
// write through it.
func TestUnpackReplacesSymlink(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("intact"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "dir")
	if _, err := Unpack([]Entry{Symlink("f", victim), File("f", 0o644, []byte("new"))}, dir, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); got != "f -rw-r--r-- new" {
		t.Errorf("unpacked: %s", got)
	}
	if data, _ := os.ReadFile(victim); string(data) != "intact" {
		t.Errorf("the symlink's target was written: %q", data)
	}
}

func TestUnpackNotEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mine"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries := []Entry{File("init", 0o755, []byte("x"))}
	_, err := Unpack(entries, dir, UnpackOptions{})
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "(it holds mine)") {
		t.Fatalf("got %v, want ErrNotEmpty naming mine", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "init")); err == nil {
		t.Error("init written into a non-empty directory without Force")
	}
	if _, err := Unpack(entries, dir, UnpackOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := tree(t, dir), "init -rwxr-xr-x x\nmine -rw-r--r-- keep"; got != want {
		t.Errorf("with Force:\n%s\nwant:\n%s", got, want)
	}
}

// FuzzSafePath: what safePath accepts stays inside the directory.
func FuzzSafePath(f *testing.F) {
	for _, s := range []string{"./usr/bin", "/etc", "a/../b", "..", "a//b/./c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := safePath(name)
		if err != nil {
			return
		}
		if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") || strings.Contains(rel, "/../") || filepath.Clean("/x/"+rel) != filepath.Join("/x", rel) {
			t.Errorf("safePath(%q) = %q, which is not a clean path inside the directory", name, rel)
		}
	})
}
