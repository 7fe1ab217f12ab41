package toplayer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"

	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root (chown, mknod, trusted.* and
// security.* xattrs, mounts), except in CI, which runs as root.
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.Root(t, "chown, mknod, trusted/security xattrs, mounts")
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func lstat(t *testing.T, path string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("the booted system would not find %s: %v", path, err)
	}
	return &st
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

func wantContent(t *testing.T, path, want string) {
	t.Helper()
	if got := content(t, path); got != want {
		t.Errorf("%s holds %q, want %q", path, got, want)
	}
}

func wantMode(t *testing.T, path string, want uint32) {
	t.Helper()
	if got := lstat(t, path).Mode; got != want {
		t.Errorf("%s has mode %#o, want %#o", path, got, want)
	}
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		t.Errorf("%s still exists, want it deleted", path)
	}
}

func wantLink(t *testing.T, path, target string) {
	t.Helper()
	got, err := os.Readlink(path)
	if err != nil || got != target {
		t.Errorf("%s: readlink = %q, %v; want a symlink to %q", path, got, err, target)
	}
}

func wantNames(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// fingerprint describes every entry below dir (type, mode, owner, times,
// content, link target, xattrs), to tell whether anything there changed.
func fingerprint(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s mode=%o uid=%d gid=%d mtime=%d.%d ctime=%d.%d nlink=%d", p, st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Nlink)
		switch {
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha256=%x", sha256.Sum256(data))
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		}
		buf := make([]byte, 64<<10)
		n, _ := unix.Llistxattr(p, buf)
		fmt.Fprintf(&b, " xattrs=%q\n", buf[:n])
		return nil
	})
	must(t, err)
	return b.String()
}

func setTimesAt(t *testing.T, path string, atime, mtime int64) {
	t.Helper()
	ts := []unix.Timespec{{Sec: atime, Nsec: 111}, {Sec: mtime, Nsec: 222}}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
}

func wantTimes(t *testing.T, path string, atime, mtime int64) {
	t.Helper()
	st := lstat(t, path)
	if st.Mtim.Sec != mtime || st.Mtim.Nsec != 222 || st.Atim.Sec != atime || st.Atim.Nsec != 111 {
		t.Errorf("%s: atime %d.%09d mtime %d.%09d, want %d.000000111 and %d.000000222", path, st.Atim.Sec, st.Atim.Nsec, st.Mtim.Sec, st.Mtim.Nsec, atime, mtime)
	}
}

// vfsCapNetRaw is a security.capability value (VFS_CAP_REVISION_2,
// effective) granting CAP_NET_RAW, as `setcap cap_net_raw+ep` writes it.
func vfsCapNetRaw() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	return b
}

func wantXattr(t *testing.T, path, name string, want []byte) {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Errorf("%s: xattr %s = %q, %v; want %q", path, name, buf[:max(n, 0)], err, want)
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name      string
		needsRoot bool
		image     func(t *testing.T, root string) // what the image already has
		src       func(t *testing.T, src string)  // the top layer
		check     func(t *testing.T, root string, st Stats)
		wantErr   string
	}{
		{
			name: "regular file replaces the image's, with mode",
			image: func(t *testing.T, root string) {
				write(t, root+"/etc/hostname", "image\n", 0o644)
				write(t, root+"/etc/other", "kept", 0o644)
			},
			src: func(t *testing.T, src string) { write(t, src+"/etc/hostname", "machine\n", 0o640) },
			check: func(t *testing.T, root string, st Stats) {
				wantContent(t, root+"/etc/hostname", "machine\n")
				wantMode(t, root+"/etc/hostname", unix.S_IFREG|0o640)
				wantContent(t, root+"/etc/other", "kept")
				if want := (Stats{Files: 1, Dirs: 1, Bytes: 8}); !reflect.DeepEqual(st, want) {
					t.Errorf("stats %+v, want %+v", st, want)
				}
			},
		},
		{
			name: "empty dir and dotfiles",
			src: func(t *testing.T, src string) {
				mkdir(t, src+"/srv/empty", 0o750)
				write(t, src+"/root/.bashrc", "alias l=ls\n", 0o600)
				mkdir(t, src+"/.hidden-dir", 0o700)
			},
			check: func(t *testing.T, root string, st Stats) {
				wantMode(t, root+"/srv/empty", unix.S_IFDIR|0o750)
				wantNames(t, root+"/srv/empty")
				wantContent(t, root+"/root/.bashrc", "alias l=ls\n")
				wantMode(t, root+"/.hidden-dir", unix.S_IFDIR|0o700)
				if st.Dirs != 4 || st.Files != 1 {
					t.Errorf("stats %+v, want 4 dirs and 1 file", st)
				}
			},
		},
		{
			name: "symlinks in src are copied as links, never followed",
			src: func(t *testing.T, src string) {
				outside := t.TempDir()
				write(t, outside+"/secret", "do not copy", 0o644)
				symlink(t, "/usr/share/zoneinfo/UTC", src+"/etc/localtime")
				symlink(t, "../../..", src+"/etc/up")
				symlink(t, outside, src+"/dirlink")
				symlink(t, outside+"/secret", src+"/filelink")
			},
			check: func(t *testing.T, root string, st Stats) {
				wantLink(t, root+"/etc/localtime", "/usr/share/zoneinfo/UTC")
				wantLink(t, root+"/etc/up", "../../..")
				for _, l := range []string{"/dirlink", "/filelink"} {
					if m := lstat(t, root+l).Mode; m&unix.S_IFMT != unix.S_IFLNK {
						t.Errorf("%s has mode %#o, want the symlink src has, not what it points to", l, m)
					}
				}
				if target, err := os.Readlink(root + "/filelink"); err != nil || !filepath.IsAbs(target) || filepath.Base(target) != "secret" {
					t.Errorf("filelink -> %q, %v; want src's absolute target .../secret", target, err)
				}
				if st.Symlinks != 4 || st.Files != 0 {
					t.Errorf("stats %+v, want 4 symlinks and no files", st)
				}
			},
		},
		{
			name: "hardlinks stay hardlinks, image links are broken not written through",
			image: func(t *testing.T, root string) {
				write(t, root+"/a", "image a", 0o644)
				must(t, os.Link(root+"/a", root+"/image-other-name"))
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/a", "shared", 0o644)
				must(t, os.MkdirAll(src+"/sub/deeper", 0o755))
				must(t, os.Link(src+"/a", src+"/sub/deeper/b"))
				must(t, os.Link(src+"/a", src+"/sub/c"))
			},
			check: func(t *testing.T, root string, st Stats) {
				a, b, c := lstat(t, root+"/a"), lstat(t, root+"/sub/deeper/b"), lstat(t, root+"/sub/c")
				if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
					t.Errorf("inodes %d %d %d nlink %d, want one inode with 3 links", a.Ino, b.Ino, c.Ino, a.Nlink)
				}
				wantContent(t, root+"/sub/deeper/b", "shared")
				wantContent(t, root+"/image-other-name", "image a")
				if st.Files != 1 || st.Hardlinks != 2 || st.Bytes != 6 {
					t.Errorf("stats %+v, want 1 file, 2 hardlinks, 6 bytes", st)
				}
			},
		},
		{
			name: "fifo",
			src: func(t *testing.T, src string) {
				must(t, os.MkdirAll(src+"/run", 0o755))
				must(t, unix.Mkfifo(src+"/run/pipe", 0o620))
				must(t, os.Chmod(src+"/run/pipe", 0o620))
			},
			check: func(t *testing.T, root string, st Stats) {
				wantMode(t, root+"/run/pipe", unix.S_IFIFO|0o620)
				if st.Specials != 1 {
					t.Errorf("stats %+v, want 1 special", st)
				}
			},
		},
		{
			name:      "char and block devices",
			needsRoot: true,
			src: func(t *testing.T, src string) {
				must(t, os.MkdirAll(src+"/dev", 0o755))
				must(t, unix.Mknod(src+"/dev/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
				must(t, unix.Mknod(src+"/dev/nvme0n1p300", unix.S_IFBLK|0o660, int(unix.Mkdev(259, 300))))
				must(t, os.Chmod(src+"/dev/null", 0o666)) // past the umask
				must(t, os.Chmod(src+"/dev/nvme0n1p300", 0o660))
				must(t, os.Chown(src+"/dev/nvme0n1p300", 0, 6))
			},
			check: func(t *testing.T, root string, st Stats) {
				null, blk := lstat(t, root+"/dev/null"), lstat(t, root+"/dev/nvme0n1p300")
				if null.Mode != unix.S_IFCHR|0o666 || null.Rdev != unix.Mkdev(1, 3) {
					t.Errorf("dev/null: mode %#o rdev %d:%d, want char 1:3 0666", null.Mode, unix.Major(null.Rdev), unix.Minor(null.Rdev))
				}
				if blk.Mode != unix.S_IFBLK|0o660 || blk.Rdev != unix.Mkdev(259, 300) || blk.Gid != 6 {
					t.Errorf("dev/nvme0n1p300: mode %#o rdev %d:%d gid %d, want block 259:300 0660 gid 6", blk.Mode, unix.Major(blk.Rdev), unix.Minor(blk.Rdev), blk.Gid)
				}
				if st.Specials != 2 {
					t.Errorf("stats %+v, want 2 specials", st)
				}
			},
		},
		{
			name:      "owner with setuid, setgid and sticky bits",
			needsRoot: true,
			image: func(t *testing.T, root string) {
				mkdir(t, root+"/srv/shared", 0o755)
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/usr/bin/tool", "#!/bin/sh\n", 0o4755)
				must(t, os.Chown(src+"/usr/bin/tool", 1234, 5678))
				must(t, os.Chmod(src+"/usr/bin/tool", 0o4755|os.ModeSetuid))
				mkdir(t, src+"/srv/shared", 0o2775)
				must(t, os.Chown(src+"/srv/shared", 1000, 1000))
				must(t, os.Chmod(src+"/srv/shared", 0o775|os.ModeSetgid))
				mkdir(t, src+"/tmp", 0o777)
				must(t, os.Chmod(src+"/tmp", 0o777|os.ModeSticky))
				symlink(t, "tool", src+"/usr/bin/alias")
				must(t, os.Lchown(src+"/usr/bin/alias", 42, 43))
			},
			check: func(t *testing.T, root string, st Stats) {
				tool := lstat(t, root+"/usr/bin/tool")
				if tool.Uid != 1234 || tool.Gid != 5678 || tool.Mode != unix.S_IFREG|unix.S_ISUID|0o755 {
					t.Errorf("usr/bin/tool: %d:%d mode %#o, want 1234:5678 setuid 0755", tool.Uid, tool.Gid, tool.Mode)
				}
				shared := lstat(t, root+"/srv/shared")
				if shared.Uid != 1000 || shared.Gid != 1000 || shared.Mode != unix.S_IFDIR|unix.S_ISGID|0o775 {
					t.Errorf("srv/shared: %d:%d mode %#o, want 1000:1000 setgid 0775", shared.Uid, shared.Gid, shared.Mode)
				}
				wantMode(t, root+"/tmp", unix.S_IFDIR|unix.S_ISVTX|0o777)
				if l := lstat(t, root+"/usr/bin/alias"); l.Uid != 42 || l.Gid != 43 {
					t.Errorf("usr/bin/alias symlink owned by %d:%d, want 42:43", l.Uid, l.Gid)
				}
			},
		},
		{
			name: "user xattrs on files and dirs, the image dir's extra ones removed",
			image: func(t *testing.T, root string) {
				mkdir(t, root+"/etc", 0o755)
				must(t, unix.Setxattr(root+"/etc", "user.image-only", []byte("x"), 0))
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/etc/app.conf", "x", 0o644)
				must(t, unix.Setxattr(src+"/etc/app.conf", "user.test", []byte("file value"), 0))
				// More than the 256 bytes Apply first reads a list or value into.
				must(t, unix.Setxattr(src+"/etc", "user.test", bytes.Repeat([]byte("v"), 1000), 0))
				for i := range 20 {
					must(t, unix.Setxattr(src+"/etc", fmt.Sprintf("user.a-rather-long-attribute-name-%02d", i), nil, 0))
				}
			},
			check: func(t *testing.T, root string, st Stats) {
				wantXattr(t, root+"/etc/app.conf", "user.test", []byte("file value"))
				wantXattr(t, root+"/etc", "user.test", bytes.Repeat([]byte("v"), 1000))
				wantXattr(t, root+"/etc", "user.a-rather-long-attribute-name-19", nil)
				buf := make([]byte, 8192)
				if _, err := unix.Getxattr(root+"/etc", "user.image-only", buf); err == nil {
					t.Errorf("etc keeps the image's xattr user.image-only, which the top layer's etc lacks")
				}
			},
		},
		{
			name:      "security.capability survives chown, trusted xattrs on symlinks and fifos",
			needsRoot: true,
			src: func(t *testing.T, src string) {
				write(t, src+"/usr/bin/ping", "ELF", 0o755)
				must(t, os.Chown(src+"/usr/bin/ping", 0, 1234))
				must(t, unix.Setxattr(src+"/usr/bin/ping", "security.capability", vfsCapNetRaw(), 0))
				symlink(t, "ping", src+"/usr/bin/ping4")
				must(t, unix.Lsetxattr(src+"/usr/bin/ping4", "trusted.overlay.test", []byte("link"), 0))
				must(t, unix.Mkfifo(src+"/usr/bin/fifo", 0o600))
				must(t, unix.Lsetxattr(src+"/usr/bin/fifo", "trusted.test", []byte("fifo"), 0))
			},
			check: func(t *testing.T, root string, st Stats) {
				wantXattr(t, root+"/usr/bin/ping", "security.capability", vfsCapNetRaw())
				if p := lstat(t, root+"/usr/bin/ping"); p.Gid != 1234 {
					t.Errorf("usr/bin/ping gid %d, want 1234", p.Gid)
				}
				wantXattr(t, root+"/usr/bin/ping4", "trusted.overlay.test", []byte("link"))
				wantXattr(t, root+"/usr/bin/fifo", "trusted.test", []byte("fifo"))
			},
		},
		{
			name: "times of files, symlinks and dirs",
			image: func(t *testing.T, root string) {
				mkdir(t, root+"/var/log", 0o755)
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/var/log/app/today.log", "log", 0o644)
				symlink(t, "today.log", src+"/var/log/app/latest")
				mkdir(t, src+"/var/empty", 0o755)
				for i, p := range []string{"/var/log/app/today.log", "/var/log/app/latest", "/var/log/app", "/var/log", "/var/empty", "/var"} {
					setTimesAt(t, src+p, 1_000_000_000+int64(i), 1_100_000_000+int64(i))
				}
			},
			check: func(t *testing.T, root string, st Stats) {
				for i, p := range []string{"/var/log/app/today.log", "/var/log/app/latest", "/var/log/app", "/var/log", "/var/empty", "/var"} {
					wantTimes(t, root+p, 1_000_000_000+int64(i), 1_100_000_000+int64(i))
				}
			},
		},
		{
			name: "a directory replaces an image symlink and file",
			image: func(t *testing.T, root string) {
				symlink(t, "/nonexistent/target", root+"/etc/x")
				write(t, root+"/etc/y", "file", 0o644)
				symlink(t, "real", root+"/etc/z")
				mkdir(t, root+"/etc/real", 0o755)
				write(t, root+"/etc/real/image-file", "kept", 0o644)
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/etc/x/f", "in x", 0o644)
				mkdir(t, src+"/etc/y", 0o711)
				write(t, src+"/etc/z/g", "in z", 0o644)
			},
			check: func(t *testing.T, root string, st Stats) {
				wantMode(t, root+"/etc/x", unix.S_IFDIR|0o755)
				wantContent(t, root+"/etc/x/f", "in x")
				wantMode(t, root+"/etc/y", unix.S_IFDIR|0o711)
				wantMode(t, root+"/etc/z", unix.S_IFDIR|0o755)
				wantNames(t, root+"/etc/z", "g")
				wantNames(t, root+"/etc/real", "image-file")
				// Only symlinks are reported: a replaced file was the user's plain intent.
				if got, want := strings.Join(st.ReplacedLinks, "; "), "etc/x -> /nonexistent/target; etc/z -> real"; got != want {
					t.Errorf("ReplacedLinks %q, want %q", got, want)
				}
			},
		},
		{
			name: "a file or symlink replaces an image directory, recursively",
			image: func(t *testing.T, root string) {
				write(t, root+"/opt/app/lib/deep/x.so", "x", 0o644)
				mkdir(t, root+"/opt/app/ro", 0o555)
				write(t, root+"/opt/cache/a/b", "b", 0o644)
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/opt/app", "now a file", 0o755)
				symlink(t, "/var/cache", src+"/opt/cache")
			},
			check: func(t *testing.T, root string, st Stats) {
				wantContent(t, root+"/opt/app", "now a file")
				wantLink(t, root+"/opt/cache", "/var/cache")
			},
		},
		{
			name: "whiteouts delete files and directories, and are not copied",
			image: func(t *testing.T, root string) {
				write(t, root+"/etc/motd", "welcome", 0o644)
				write(t, root+"/usr/share/doc/pkg/README", "doc", 0o644)
				write(t, root+"/usr/share/keep", "keep", 0o644)
				write(t, root+"/etc/issue", "image issue", 0o644)
				symlink(t, "/etc", root+"/usr/share/link")
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/etc/.wh.motd", "", 0o644)
				write(t, src+"/usr/share/.wh.doc", "", 0o644)
				write(t, src+"/usr/share/.wh.link", "", 0o644)
				write(t, src+"/usr/share/.wh.never-existed", "", 0o644)
				write(t, src+"/etc/.wh.issue", "", 0o644)
				write(t, src+"/etc/issue", "top layer issue", 0o644) // whiteout and entry together: the entry wins
			},
			check: func(t *testing.T, root string, st Stats) {
				wantNames(t, root+"/etc", "issue")
				wantContent(t, root+"/etc/issue", "top layer issue")
				wantNames(t, root+"/usr/share", "keep")
				if st.Whiteouts != 5 || st.Files != 1 {
					t.Errorf("stats %+v, want 5 whiteouts and 1 file", st)
				}
			},
		},
		{
			name: "opaque directory",
			image: func(t *testing.T, root string) {
				write(t, root+"/etc/apt/sources.list", "image", 0o644)
				write(t, root+"/etc/apt/trusted.gpg.d/debian.gpg", "key", 0o644)
				write(t, root+"/etc/apt/apt.conf", "image", 0o644)
				write(t, root+"/etc/passwd", "kept", 0o644)
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/etc/apt/.wh..wh..opq", "", 0o644)
				write(t, src+"/etc/apt/sources.list", "mine", 0o644)
				write(t, src+"/new/.wh..wh..opq", "", 0o644) // opaque dir the image lacks
			},
			check: func(t *testing.T, root string, st Stats) {
				wantNames(t, root+"/etc/apt", "sources.list")
				wantContent(t, root+"/etc/apt/sources.list", "mine")
				wantContent(t, root+"/etc/passwd", "kept")
				wantNames(t, root+"/new")
				if st.Whiteouts != 2 {
					t.Errorf("stats %+v, want 2 whiteouts", st)
				}
			},
		},
		{
			name:    "reserved whiteout name",
			src:     func(t *testing.T, src string) { write(t, src+"/etc/.wh..wh.plnk", "", 0o644) },
			wantErr: "etc/.wh..wh.plnk",
		},
		{
			name:    "whiteout of dot-dot",
			src:     func(t *testing.T, src string) { write(t, src+"/etc/.wh...", "", 0o644) },
			wantErr: `whiteout of ".."`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsRoot {
				requireRoot(t)
			}
			src, root := t.TempDir(), t.TempDir()
			if tt.image != nil {
				tt.image(t, root)
			}
			tt.src(t, src)
			st, err := Apply(src, root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Apply = %v, want an error naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			tt.check(t, root, st)
		})
	}
}

// TestApplyNeverLeavesRoot puts image symlinks pointing outside root (to a
// sentinel directory) where the top layer has entries, at several depths.
func TestApplyNeverLeavesRoot(t *testing.T) {
	tests := []struct {
		name      string
		needsRoot bool
		// image gets sentinel's absolute path and the relative way up to it.
		image func(t *testing.T, root, sentinel, up string)
		src   func(t *testing.T, src string)
	}{
		{
			name:  "absolute symlink dir",
			image: func(t *testing.T, root, sentinel, up string) { symlink(t, sentinel, root+"/etc") },
			src: func(t *testing.T, src string) {
				write(t, src+"/etc/passwd", "pwned", 0o644)
				write(t, src+"/etc/sub/file", "pwned", 0o4755)
				mkdir(t, src+"/etc/victim-dir", 0o777)
			},
		},
		{
			name: "relative symlink deep down",
			image: func(t *testing.T, root, sentinel, up string) {
				mkdir(t, root+"/a/b", 0o755)
				symlink(t, "../../"+up, root+"/a/b/c")
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/a/b/c/victim-dir/file", "pwned", 0o644)
				write(t, src+"/a/b/c/victim-file", "pwned", 0o644)
			},
		},
		{
			name: "symlink to a file the top layer replaces",
			image: func(t *testing.T, root, sentinel, up string) {
				symlink(t, sentinel+"/victim-file", root+"/abs-file")
				symlink(t, up+"/victim-file", root+"/rel-file")
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/abs-file", "pwned", 0o777)
				write(t, src+"/rel-file", "pwned", 0o777)
			},
		},
		{
			name: "whiteouts and opaque markers under symlinks",
			image: func(t *testing.T, root, sentinel, up string) {
				symlink(t, sentinel, root+"/var")
				symlink(t, up, root+"/opt")
			},
			src: func(t *testing.T, src string) {
				write(t, src+"/var/.wh..wh..opq", "", 0o644)
				write(t, src+"/var/.wh.victim-file", "", 0o644)
				write(t, src+"/opt/.wh.victim-dir", "", 0o644)
				write(t, src+"/opt/.wh..wh..opq", "", 0o644)
			},
		},
		{
			name:  "hardlinks under a symlinked dir",
			image: func(t *testing.T, root, sentinel, up string) { symlink(t, up, root+"/lib") },
			src: func(t *testing.T, src string) {
				write(t, src+"/lib/x", "pwned", 0o644)
				must(t, os.Link(src+"/lib/x", src+"/y"))
				must(t, os.Link(src+"/lib/x", src+"/lib/z"))
			},
		},
		{
			name:  "symlink that is the root's parent",
			image: func(t *testing.T, root, sentinel, up string) { symlink(t, "..", root+"/dotdot") },
			src: func(t *testing.T, src string) {
				write(t, src+"/dotdot/sentinel/victim-file", "pwned", 0o644)
				write(t, src+"/dotdot/.wh.sentinel", "", 0o644)
			},
		},
		{
			name:      "devices and owners under a symlink",
			needsRoot: true,
			image:     func(t *testing.T, root, sentinel, up string) { symlink(t, sentinel, root+"/dev") },
			src: func(t *testing.T, src string) {
				must(t, os.MkdirAll(src+"/dev", 0o755))
				must(t, unix.Mknod(src+"/dev/victim-file", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
				must(t, os.Chown(src+"/dev", 999, 999))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsRoot {
				requireRoot(t)
			}
			parent := t.TempDir()
			root, sentinel, src := parent+"/root", parent+"/sentinel", t.TempDir()
			mkdir(t, root, 0o755)
			write(t, sentinel+"/victim-file", "precious", 0o600)
			write(t, sentinel+"/victim-dir/file", "precious", 0o600)
			must(t, unix.Setxattr(sentinel+"/victim-file", "user.keep", []byte("1"), 0))
			tt.image(t, root, sentinel, "../sentinel")
			tt.src(t, src)
			before := fingerprint(t, parent+"/sentinel")

			if _, err := Apply(src, root); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if after := fingerprint(t, parent+"/sentinel"); after != before {
				t.Errorf("Apply changed a directory outside root:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			wantNames(t, parent, "root", "sentinel")
		})
	}
}

// TestApplyXattrRefused: an xattr the new root's file system refuses is an
// error naming the file, not something skipped.
func TestApplyXattrRefused(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ramfs", "ramfs", root).CombinedOutput(); err != nil {
		t.Fatalf("mount ramfs (no xattr support) on %s: %v: %s", root, err, out)
	}
	t.Cleanup(func() { must(t, unix.Unmount(root, 0)) })
	src := t.TempDir()
	write(t, src+"/etc/app.conf", "x", 0o644)
	must(t, unix.Setxattr(src+"/etc/app.conf", "user.test", []byte("v"), 0))
	_, err := Apply(src, root)
	if err == nil || !strings.Contains(err.Error(), "etc/app.conf: set xattr user.test") {
		t.Fatalf("Apply = %v, want an error naming etc/app.conf and user.test", err)
	}
}

// TestApplyAcrossFileSystems copies data with read/write where
// copy_file_range cannot cross file systems (ext4 or btrfs to tmpfs).
func TestApplyAcrossFileSystems(t *testing.T) {
	requireRoot(t)
	src, root := t.TempDir(), t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "tmpfs", root).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", root, err, out)
	}
	t.Cleanup(func() { must(t, unix.Unmount(root, 0)) })
	big := make([]byte, 3<<20+12345) // several read/write buffers and a short one
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	must(t, os.WriteFile(src+"/big", big, 0o644))
	write(t, src+"/empty", "", 0o644)
	write(t, src+"/small", "small", 0o644)

	a := newApplier()
	if err := a.apply(src, root, nil); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !a.noCopyRange {
		t.Error("copy_file_range from another file system to tmpfs worked; this test no longer covers the read/write fallback")
	}
	if got := content(t, root+"/big"); got != string(big) {
		t.Errorf("big: %d bytes differ from the source's %d", len(got), len(big))
	}
	wantContent(t, root+"/empty", "")
	wantContent(t, root+"/small", "small")
	if want := int64(len(big) + 5); a.stats.Bytes != want {
		t.Errorf("stats.Bytes = %d, want %d", a.stats.Bytes, want)
	}
}

func BenchmarkApply(b *testing.B) {
	src := b.TempDir()
	data := bytes.Repeat([]byte("x"), 1024)
	for d := range 30 {
		dir := fmt.Sprintf("%s/dir%02d", src, d)
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(fmt.Sprintf("%s/file%03d", dir, f), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	base := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		root := fmt.Sprintf("%s/%d", base, i)
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		st, err := Apply(src, root)
		if err != nil || st.Files != 3000 {
			b.Fatalf("Apply = %+v, %v; want 3000 files", st, err)
		}
		b.StopTimer()
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestApplyHoldingTheRoot is a top layer folder that holds the new root and a store, as
// toplayer_path=/ on the root device does: both are left out, by inode, whatever path leads there.
func TestApplyHoldingTheRoot(t *testing.T) {
	top := t.TempDir()
	root := filepath.Join(top, "rw", "layer")
	mkdir(t, root, 0o755)
	write(t, filepath.Join(root, "etc/os-release"), "image\n", 0o644)
	write(t, filepath.Join(top, "store/layers/abc/bin/sh"), "layer\n", 0o755)
	write(t, filepath.Join(top, "etc/hostname"), "machine\n", 0o644)
	symlink(t, "store", filepath.Join(top, "docker")) // a link is copied as a link, never followed
	st, err := Apply(top, root, filepath.Join(top, "store"))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantContent(t, filepath.Join(root, "etc/hostname"), "machine\n")
	wantContent(t, filepath.Join(root, "etc/os-release"), "image\n")
	wantGone(t, filepath.Join(root, "store"))
	wantGone(t, filepath.Join(root, "rw/layer"))
	wantLink(t, filepath.Join(root, "docker"), "store")
	slices.Sort(st.Skipped)
	if want := []string{"rw/layer", "store"}; !slices.Equal(st.Skipped, want) {
		t.Errorf("Skipped = %q, want %q", st.Skipped, want)
	}

	for _, src := range []string{root, filepath.Join(root, "etc")} {
		if _, err := Apply(src, root); err == nil || !strings.Contains(err.Error(), "cannot be laid over itself") {
			t.Errorf("Apply(%s) inside the root = %v, want a refusal", src, err)
		}
	}
}
