// Package initramfs owns the initramfs format: it writes dockerinit's (a newc cpio archive,
// zstd-compressed, byte-for-byte reproducible: sorted entries, mtime 0, parents created 0755) and
// reads, lists and unpacks any initramfs the kernel would take.
package initramfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// Entry is one file of the archive. Path is slash-separated and relative ("etc/dockerinit.toml").
type Entry struct {
	Path   string
	Mode   fs.FileMode // type bits + permissions; 0 type bits = regular file
	Data   []byte      // regular files
	Target string      // symlinks
	Major  uint32      // devices
	Minor  uint32
	UID    uint32 // owner; 0 (root) in what mkbootimg builds
	GID    uint32
}

// File, Dir, Symlink and CharDev build the common entries.
func File(p string, perm fs.FileMode, data []byte) Entry {
	return Entry{Path: p, Mode: perm, Data: data}
}
func Dir(p string) Entry { return Entry{Path: p, Mode: fs.ModeDir | 0o755} }
func Symlink(p, target string) Entry {
	return Entry{Path: p, Mode: fs.ModeSymlink | 0o777, Target: target}
}
func CharDev(p string, perm fs.FileMode, major, minor uint32) Entry {
	return Entry{Path: p, Mode: fs.ModeDevice | fs.ModeCharDevice | perm, Major: major, Minor: minor}
}

// Base is what every dockerinit initramfs holds besides /init: the mount points the init uses and
// /dev/console, without which the kernel starts init with no stdin, stdout or stderr.
func Base() []Entry {
	return []Entry{
		Dir("dev"), Dir("proc"), Dir("sys"), Dir("run"), Dir("tmp"), Dir("mnt"),
		CharDev("dev/console", 0o600, 5, 1),
	}
}

// Write writes entries as a zstd-compressed newc archive to w. Missing parent directories are
// added with mode 0755; two entries with one path are an error (u-root's writer would silently
// keep the first).
func Write(w io.Writer, entries []Entry) error {
	recs, err := records(entries)
	if err != nil {
		return err
	}
	// One goroutine and a fixed level keep the output identical from run to run.
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("initramfs: zstd: %w", err)
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	cw := cpio.Newc.Writer(bw)
	for _, r := range recs {
		if err := cw.WriteRecord(r); err != nil {
			return fmt.Errorf("initramfs: write %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("initramfs: write trailer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("initramfs: zstd: %w", err)
	}
	return nil
}

func records(entries []Entry) ([]cpio.Record, error) {
	byPath := make(map[string]Entry, len(entries))
	implicit := map[string]bool{} // parents added here, which an explicit entry may replace
	for _, e := range entries {
		p := path.Clean(strings.TrimPrefix(e.Path, "/"))
		if p == "." || p == ".." || strings.HasPrefix(p, "../") {
			return nil, fmt.Errorf("initramfs: bad path %q: want a path inside the archive", e.Path)
		}
		if _, dup := byPath[p]; dup && !(implicit[p] && e.Mode.IsDir()) {
			return nil, fmt.Errorf("initramfs: %s added twice", p)
		}
		e.Path = p
		byPath[p] = e
		delete(implicit, p)
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if prev, ok := byPath[d]; ok {
				if !prev.Mode.IsDir() {
					return nil, fmt.Errorf("initramfs: %s is a parent of %s but not a directory", d, p)
				}
				continue
			}
			byPath[d] = Dir(d)
			implicit[d] = true
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths) // parents sort before their children
	recs := make([]cpio.Record, 0, len(paths))
	for i, p := range paths {
		r, err := record(byPath[p])
		if err != nil {
			return nil, err
		}
		r.Ino = uint64(i + 1) // distinct inodes: equal ones would make the kernel hardlink files
		recs = append(recs, r)
	}
	return recs, nil
}

func record(e Entry) (cpio.Record, error) {
	perm := uint64(e.Mode.Perm())
	if e.Mode&fs.ModeSetuid != 0 {
		perm |= cpio.S_ISUID
	}
	if e.Mode&fs.ModeSetgid != 0 {
		perm |= cpio.S_ISGID
	}
	if e.Mode&fs.ModeSticky != 0 {
		perm |= cpio.S_ISVTX
	}
	info := cpio.Info{Name: e.Path, NLink: 1, UID: uint64(e.UID), GID: uint64(e.GID)}
	switch {
	case e.Mode.IsDir():
		info.Mode, info.NLink = cpio.S_IFDIR|perm, 2
		return cpio.Record{Info: info}, nil
	case e.Mode&fs.ModeSymlink != 0:
		info.Mode = cpio.S_IFLNK | perm
		info.FileSize = uint64(len(e.Target))
		return cpio.Record{ReaderAt: strings.NewReader(e.Target), Info: info}, nil
	case e.Mode&fs.ModeCharDevice != 0:
		info.Mode, info.Rmajor, info.Rminor = cpio.S_IFCHR|perm, uint64(e.Major), uint64(e.Minor)
		return cpio.Record{Info: info}, nil
	case e.Mode.IsRegular():
		if int64(len(e.Data)) >= 1<<32 {
			return cpio.Record{}, fmt.Errorf("initramfs: %s is %d bytes; newc holds at most 4 GiB a file", e.Path, len(e.Data))
		}
		info.Mode = cpio.S_IFREG | perm
		info.FileSize = uint64(len(e.Data))
		return cpio.Record{ReaderAt: bytes.NewReader(e.Data), Info: info}, nil
	}
	return cpio.Record{}, fmt.Errorf("initramfs: %s: unsupported file type %v", e.Path, e.Mode.Type())
}
