package initramfs

import (
	"bytes"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	entries := []Entry{
		{Path: "."},
		File("./etc/dockerinit.toml", 0o644, []byte("old")),
		File("usr/bin/busybox", 0o755, []byte("bb")),
		File("usr/lib/modules/6.1.0/modules.dep", 0o644, []byte("deps")),
		Symlink("bin", "usr/bin"),
		Symlink("lib", "/usr/lib"),
		Symlink("usr/bin/sh", "busybox"),
		Symlink("usr/bin/up", "../../../../etc/dockerinit.toml"),
		Symlink("loop", "loop"),
		CharDev("dev/console", 0o600, 5, 1),
		File("etc/dockerinit.toml", 0o644, []byte("new")), // a later archive's replaces the first
		File("implied/dir/file", 0o644, []byte("f")),
	}
	tests := []struct {
		path string
		data string // or the error
		err  string
	}{
		{"etc/dockerinit.toml", "new", ""},
		{"/etc/dockerinit.toml", "new", ""},
		{"./etc//dockerinit.toml", "new", ""},
		{"bin/busybox", "bb", ""},
		{"bin/sh", "bb", ""},
		{"lib/modules/6.1.0/modules.dep", "deps", ""},
		{"usr/bin/up", "new", ""},
		{"usr/bin/../../etc/dockerinit.toml", "new", ""},
		{"implied/dir/file", "f", ""},
		{"etc", "", "etc is a directory; mkbootimg ls lists its entries"},
		{"implied/dir", "", "implied/dir is a directory"},
		{"/", "", "/ is a directory"},
		{"dev/console", "", "dev/console is not a regular file but crw-------"},
		{"loop", "", "loop: more than 40 symlinks to follow: there is a loop"},
		{"usr/bin/busybox/x", "", "usr/bin/busybox/x: usr/bin/busybox is not a directory"},
		{"dockerinit.toml", "", "dockerinit.toml is not in the archive; closest: etc/dockerinit.toml (mkbootimg ls lists every entry)"},
		{"etc/dockerinit.tml", "", "etc/dockerinit.tml is not in the archive; closest: etc/dockerinit.toml"},
		{"zzzzzzzzzzzzzzzzzzzz", "", "zzzzzzzzzzzzzzzzzzzz is not in the archive (mkbootimg ls lists every entry)"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			e, err := Find(entries, tt.path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error %q", e.Data, err, tt.err)
				}
				return
			}
			if err != nil || string(e.Data) != tt.data {
				t.Fatalf("got %q, %v; want %q", e.Data, err, tt.data)
			}
		})
	}
}

func TestFindClosest(t *testing.T) {
	entries := []Entry{
		File("etc/dockerinit.toml", 0o644, nil),
		File("usr/share/dockerinit.toml", 0o644, nil),
		File("etc/dockerinit.tom", 0o644, nil),
		File("etc/modules", 0o644, nil),
	}
	_, err := Find(entries, "boot/dockerinit.toml")
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("got %v, want a *NotFoundError", err)
	}
	want := []string{"etc/dockerinit.toml", "usr/share/dockerinit.toml", "etc/dockerinit.tom"}
	if !reflect.DeepEqual(nf.Closest, want) {
		t.Errorf("closest: got %q, want %q", nf.Closest, want)
	}
}

func TestList(t *testing.T) {
	one := []Archive{{Compression: "zstd", Entries: []Entry{
		Dir("etc"),
		{Path: "etc/shadow", Mode: 0o640, Data: []byte("secret"), GID: 42},
		Symlink("bin", "usr/bin"),
		CharDev("dev/console", 0o600, 5, 1),
		File("usr/bin/su", 0o755|fs.ModeSetuid, []byte("su")),
	}}}
	wantOne := "" +
		"drwxr-xr-x     0     0          0 etc\n" +
		"-rw-r-----     0    42          6 etc/shadow\n" +
		"lrwxrwxrwx     0     0          7 bin -> usr/bin\n" +
		"crw-------     0     0       5, 1 dev/console\n" +
		"-rwsr-xr-x     0     0          2 usr/bin/su\n"
	two := []Archive{
		{Offset: 0, Compression: "none", Entries: []Entry{File("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("u"))}},
		{Offset: 512, Compression: "zstd", Entries: []Entry{File("init", 0o755, []byte("x"))}},
	}
	wantTwo := "" +
		"# archive 1 of 2 at byte 0 (uncompressed): 1 entries\n" +
		"-rw-r--r--     0     0          1 kernel/x86/microcode/GenuineIntel.bin\n" +
		"# archive 2 of 2 at byte 512 (zstd-compressed): 1 entries\n" +
		"-rwxr-xr-x     0     0          1 init\n"
	for _, tt := range []struct {
		name     string
		archives []Archive
		want     string
	}{{"one archive", one, wantOne}, {"two archives", two, wantTwo}} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := List(&buf, tt.archives); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", buf.String(), tt.want)
			}
		})
	}
}

func TestModeString(t *testing.T) {
	for _, tt := range []struct {
		mode fs.FileMode
		want string
	}{
		{0o644, "-rw-r--r--"},
		{fs.ModeDir | 0o1777 | fs.ModeSticky, "drwxrwxrwt"},
		{fs.ModeDir | 0o770 | fs.ModeSticky, "drwxrwx--T"},
		{0o755 | fs.ModeSetuid | fs.ModeSetgid, "-rwsr-sr-x"},
		{0o644 | fs.ModeSetuid | fs.ModeSetgid, "-rwSr-Sr--"},
		{fs.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{fs.ModeDevice | fs.ModeCharDevice | 0o620, "crw--w----"},
		{fs.ModeDevice | 0o660, "brw-rw----"},
		{fs.ModeNamedPipe | 0o600, "prw-------"},
		{fs.ModeSocket | 0o755, "srwxr-xr-x"},
	} {
		if got := ModeString(tt.mode); got != tt.want {
			t.Errorf("ModeString(%v) = %s, want %s", tt.mode, got, tt.want)
		}
	}
}

// FuzzFind: any archive and path give a file or an error, never a panic or an endless walk.
func FuzzFind(f *testing.F) {
	f.Add(plain(f, append(main1, Symlink("usr/bin", "../usr/bin"), File("usr/x", 0o644, []byte("x")))...), "bin/x")
	f.Add(plain(f, Symlink("a", "/a/b")), "a/c")
	f.Fuzz(func(t *testing.T, data []byte, p string) {
		entries, err := Read(data)
		if err != nil {
			return
		}
		if e, err := Find(entries, p); err == nil && !e.Mode.IsRegular() {
			t.Errorf("Find(%q) gave a %v", p, e.Mode)
		}
	})
}
