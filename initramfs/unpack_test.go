package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/internal/testenv"
	"github.com/u-root/u-root/pkg/cpio"
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

// unpackEntries is an archive of every kind of entry, with replacements.
var unpackEntries = []Entry{
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

func TestUnpack(t *testing.T) {
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
	notes, err := Unpack(unpackEntries, out, UnpackOptions{})
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

// escapes are archives with entries that would land outside the directory. OUTSIDE is a
// directory outside it.
var escapes = []struct {
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

func TestUnpackRefusesEscapes(t *testing.T) {
	for _, tt := range escapes {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir, outside := filepath.Join(base, "dir"), filepath.Join(base, "outside")
			for _, d := range []string{dir, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			entries := slices.Clone(tt.entries) // shared with FuzzUnpack's seeds
			for i, e := range entries {
				entries[i].Target = strings.ReplaceAll(e.Target, "OUTSIDE", outside)
			}
			if tt.before != nil {
				tt.before(dir, outside)
			}
			_, err := Unpack(entries, dir, UnpackOptions{Force: true})
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

// TestUnpackForceOverUnreadableDirectory: unpacking again with Force sets the mode of a directory
// that the first unpack made unreadable to its owner (which only matters as a user other than root,
// who reads any directory: the test runs either way). Entries inside it would fail as such a user:
// os.Root opens every parent for reading.
func TestUnpackForceOverUnreadableDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { makeRemovable(dir) })
	entries := []Entry{{Path: "d", Mode: fs.ModeDir | 0o300}}
	for _, force := range []bool{false, true} {
		if _, err := Unpack(entries, dir, UnpackOptions{Force: force}); err != nil {
			t.Fatalf("Force %v: %v", force, err)
		}
		if fi, err := os.Lstat(filepath.Join(dir, "d")); err != nil || fi.Mode() != fs.ModeDir|0o300 {
			t.Errorf("Force %v: d is %v %v, want d-wx------", force, fi.Mode(), err)
		}
	}
}

// newc is an uncompressed newc archive of entries exactly as given: unlike Write (and u-root's
// writer, which drops a second record of one name) it keeps their order, duplicates and odd names,
// as a hostile archive would.
func newc(entries ...Entry) []byte {
	var buf bytes.Buffer
	rec := func(ino int, name string, mode uint64, e Entry, data []byte) {
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, e.UID, e.GID, 1, 0, len(data), 0, 0, e.Major, e.Minor, len(name)+1, 0)
		buf.WriteString(name + "\x00")
		buf.Write(make([]byte, (4-buf.Len()%4)%4))
		buf.Write(data)
		buf.Write(make([]byte, (4-buf.Len()%4)%4))
	}
	for i, e := range entries {
		perm := uint64(e.Mode.Perm())
		for bit, m := range map[fs.FileMode]uint64{fs.ModeSetuid: cpio.S_ISUID, fs.ModeSetgid: cpio.S_ISGID, fs.ModeSticky: cpio.S_ISVTX} {
			if e.Mode&bit != 0 {
				perm |= m
			}
		}
		typ, data := uint64(cpio.S_IFREG), e.Data
		switch e.Mode.Type() {
		case fs.ModeDir:
			typ = cpio.S_IFDIR
		case fs.ModeSymlink:
			typ, data = cpio.S_IFLNK, []byte(e.Target)
		case fs.ModeDevice | fs.ModeCharDevice:
			typ = cpio.S_IFCHR
		case fs.ModeDevice:
			typ = cpio.S_IFBLK
		case fs.ModeNamedPipe:
			typ = cpio.S_IFIFO
		case fs.ModeSocket:
			typ = cpio.S_IFSOCK
		}
		rec(i+1, e.Path, typ|perm, e, data)
	}
	rec(0, "TRAILER!!!", 0, Entry{}, nil)
	return buf.Bytes()
}

// replacedDirs are archives where a later entry replaces a directory whose mode Unpack sets last.
// VICTIM is a file outside the directory, OUTSIDE a directory outside it.
var replacedDirs = []struct {
	name    string
	entries []Entry
	want    string // the tree Unpack leaves, or with wantErr what its error says
	wantErr bool
}{
	{"by an absolute symlink to a file", []Entry{{Path: "a", Mode: fs.ModeDir | fs.ModeSetgid | 0o777}, Symlink("a", "VICTIM")},
		"a lrwxrwxrwx -> VICTIM", false},
	{"by an absolute symlink to a directory", []Entry{{Path: "a", Mode: fs.ModeDir | fs.ModeSticky | 0o777}, Symlink("a", "OUTSIDE")},
		"a lrwxrwxrwx -> OUTSIDE", false},
	{"by a relative symlink", []Entry{{Path: "a", Mode: fs.ModeDir | 0o777}, Symlink("a", "../victim")},
		"a lrwxrwxrwx -> ../victim", false},
	{"nested", []Entry{Dir("a"), {Path: "a/b", Mode: fs.ModeDir | 0o777}, Symlink("a/b", "VICTIM")},
		"a drwxr-xr-x\na/b lrwxrwxrwx -> VICTIM", false},
	{"by a file, then a symlink", []Entry{{Path: "a", Mode: fs.ModeDir | 0o777}, File("a", 0o600, []byte("f")), Symlink("a", "VICTIM")},
		"a lrwxrwxrwx -> VICTIM", false},
	{"by a symlink to a directory inside", []Entry{{Path: "a", Mode: fs.ModeDir | 0o777}, {Path: "b", Mode: fs.ModeDir | 0o700}, Symlink("a", "b")},
		"a lrwxrwxrwx -> b\nb drwx------", false},
	{"by a FIFO", []Entry{{Path: "a", Mode: fs.ModeDir | 0o777}, {Path: "a", Mode: fs.ModeNamedPipe | 0o600}},
		"a prw-------", false},
	{"by a symlink, while not empty", []Entry{{Path: "a", Mode: fs.ModeDir | 0o777}, File("a/f", 0o600, nil), Symlink("a", "VICTIM")},
		`entry "a" (lrwxrwxrwx) would replace the directory DIR/a, which earlier entries filled`, true},
}

// TestUnpackReplacedDirectory: the mode of a directory that a later entry replaced is not set,
// and above all not through a symlink that took its place (as root, "a -> /etc/shadow" after a
// directory "a" of mode 0777 used to make shadow world-writable).
func TestUnpackReplacedDirectory(t *testing.T) {
	for _, tt := range replacedDirs {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir, outside, victim := filepath.Join(base, "dir"), filepath.Join(base, "outside"), filepath.Join(base, "victim")
			if err := os.Mkdir(outside, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(victim, []byte("intact"), 0o640); err != nil {
				t.Fatal(err)
			}
			place := strings.NewReplacer("VICTIM", victim, "OUTSIDE", outside, "DIR", dir)
			entries := slices.Clone(tt.entries)
			for i := range entries {
				entries[i].Target = place.Replace(entries[i].Target)
			}
			read, err := Read(newc(entries...))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Unpack(read, dir, UnpackOptions{})
			switch want := place.Replace(tt.want); {
			case tt.wantErr:
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got error %v, want one saying %q", err, want)
				}
			case err != nil:
				t.Errorf("Unpack: %v, want the later entry to replace the directory", err)
			default:
				if got := tree(t, dir); got != want {
					t.Errorf("unpacked:\n%s\nwant:\n%s", got, want)
				}
			}
			for _, c := range []struct {
				path, mode string
			}{{victim, "-rw-r-----"}, {outside, "drwxr-x---"}} {
				if fi, err := os.Lstat(c.path); err != nil || ModeString(fi.Mode()) != c.mode {
					t.Errorf("%s outside the directory: %v %v, want mode %s: the directory's mode went through the symlink", c.path, fi.Mode(), err, c.mode)
				}
			}
			if data, _ := os.ReadFile(victim); string(data) != "intact" {
				t.Errorf("victim written: %q", data)
			}
		})
	}
}

// FuzzUnpack: whatever an archive holds, Unpack changes nothing outside the directory it unpacks
// into, and does not panic. Each run unpacks into a fresh sandbox two levels under a world that
// also holds sentinels: files, a directory and symlink targets (VICTIM, OUTSIDE and the seeds'
// relative symlinks point at them), with known modes, owners, contents and times.
func FuzzUnpack(f *testing.F) {
	var buf bytes.Buffer
	if err := Write(&buf, sample()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(newc(unpackEntries...))
	for _, tt := range escapes {
		if tt.before == nil {
			f.Add(newc(relativeTargets(tt.entries)...))
		}
	}
	for _, tt := range replacedDirs {
		f.Add(newc(relativeTargets(tt.entries)...))
	}
	asRoot := os.Geteuid() == 0
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Read(data)
		if err != nil {
			return
		}
		size := 0
		for _, e := range entries {
			size += len(e.Data)
		}
		if size > 1<<20 {
			return // a slow run, and nothing a small file would not show
		}
		world := t.TempDir()
		sandbox := filepath.Join(world, "jail", "sandbox")
		plantSentinels(t, world, sandbox)
		t.Cleanup(func() { makeRemovable(sandbox) })
		before := snapshot(t, world, sandbox)
		_, _ = Unpack(entries, sandbox, UnpackOptions{Force: true, Owners: asRoot, Devices: asRoot})
		after := snapshot(t, world, sandbox)
		for _, p := range slices.Sorted(maps.Keys(before)) {
			if after[p] != before[p] {
				t.Errorf("%s outside the sandbox changed:\n was %s\n now %s", p, before[p], after[p])
			}
		}
		for _, p := range slices.Sorted(maps.Keys(after)) {
			if _, ok := before[p]; !ok {
				t.Errorf("%s appeared outside the sandbox: %s", p, after[p])
			}
		}
	})
}

// relativeTargets replaces VICTIM and OUTSIDE in symlink targets by relative paths that reach the
// sentinels of FuzzUnpack's world from where each link sits, so that the seeds work in any
// directory, as the fuzzing workers' differ.
func relativeTargets(entries []Entry) []Entry {
	out := slices.Clone(entries)
	for i, e := range out {
		up := strings.Repeat("../", strings.Count(e.Path, "/")+2) // + jail/sandbox
		out[i].Target = strings.NewReplacer("VICTIM", up+"victim", "OUTSIDE", up+"outside").Replace(e.Target)
	}
	return out
}

// plantSentinels makes FuzzUnpack's world: sentinels at its top and beside the sandbox, which it
// creates, and one time for all of them.
func plantSentinels(t *testing.T, world, sandbox string) {
	t.Helper()
	files := []struct {
		path string
		mode fs.FileMode
		data string
	}{
		{"victim", 0o640, "victim"},
		{"outside/", 0o750, ""},
		{"outside/secret", 0o600, "secret"},
		{"outside/sub/", 0o700, ""},
		{"jail/", 0o755, ""},
		{"jail/victim", 0o644, "jail victim"},
		{"jail/outside/", 0o755, ""},
		{"jail/sandbox/", 0o755, ""},
	}
	for _, s := range files {
		p := filepath.Join(world, s.path)
		var err error
		if strings.HasSuffix(s.path, "/") {
			err = os.Mkdir(p, s.mode)
		} else {
			err = os.WriteFile(p, []byte(s.data), s.mode)
		}
		if err == nil {
			err = os.Chmod(p, s.mode) // past the umask
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	then := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, s := range slices.Backward(files) { // children before parents, whose times they change
		if err := os.Chtimes(filepath.Join(world, s.path), then, then); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot describes everything under world but sandbox's contents: type, mode, owner, size,
// modification time, and a file's contents or a symlink's target.
func snapshot(t *testing.T, world, sandbox string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(world, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		if p == sandbox {
			out[p] = desc // its mode is the caller's; its contents and times are Unpack's
			return filepath.SkipDir
		}
		desc += fmt.Sprintf(" %d bytes, modified %v", fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %q", data)
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// makeRemovable gives the directories under dir their owner's write and search permission back,
// so that a read-only one Unpack made does not fail the temporary directory's removal.
func makeRemovable(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
}
