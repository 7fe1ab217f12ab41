package initramfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// maxArchive bounds what Read inflates in all, so a hostile header cannot exhaust memory.
const maxArchive = 2 << 30

// Archive is one newc archive of an initramfs file. A file may hold several one after another, as
// the kernel accepts: Debian's starts with an uncompressed one holding CPU microcode, followed by
// the compressed main one.
type Archive struct {
	Offset      int    // where its segment starts in the file
	Compression string // "none", "gzip", "zstd", "xz" or "lz4"
	Entries     []Entry
}

// Read returns the entries of every archive in data, in order; where two have one path, the later
// is what the kernel leaves in place.
func Read(data []byte) ([]Entry, error) {
	archives, err := ReadArchives(data)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, a := range archives {
		out = append(out, a.Entries...)
	}
	return out, nil
}

// ReadArchives splits data as the kernel does: newc archives, each plain or compressed (gzip,
// zstd, xz, lz4 legacy), with zero padding between them. It parses the headers itself rather than
// with u-root's reader, which allocates whatever name length a header claims; here every length is
// checked against the bytes that are really there.
func ReadArchives(data []byte) ([]Archive, error) {
	var out []Archive
	budget := maxArchive
	for off := 0; off < len(data); {
		b := data[off:]
		switch {
		case b[0] == 0:
			off++ // padding between segments
		case isNewc(b):
			entries, n, err := readNewc(b)
			if err != nil {
				return nil, fmt.Errorf("initramfs: archive at byte %d: %w", off, err)
			}
			out = append(out, Archive{Offset: off, Compression: "none", Entries: entries})
			off += n
		default:
			c, err := codecOf(b)
			if err != nil {
				return nil, fmt.Errorf("initramfs: at byte %d: %w", off, err)
			}
			raw, n, err := c.decode(b, budget)
			if err != nil {
				return nil, fmt.Errorf("initramfs: %s data at byte %d: %w", c.name, off, err)
			}
			budget -= len(raw)
			archives, err := splitRaw(raw)
			if err != nil {
				return nil, fmt.Errorf("initramfs: %s data at byte %d: %w", c.name, off, err)
			}
			for _, entries := range archives {
				out = append(out, Archive{Offset: off, Compression: c.name, Entries: entries})
			}
			off += n
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("initramfs: no archive: the file is empty or all zeros")
	}
	return out, nil
}

// splitRaw parses what a compressed segment inflates to: archives and zero padding only, as the
// kernel allows no compressed data inside compressed data.
func splitRaw(raw []byte) ([][]Entry, error) {
	var out [][]Entry
	for off := 0; off < len(raw); {
		switch {
		case raw[off] == 0:
			off++
		case isNewc(raw[off:]):
			entries, n, err := readNewc(raw[off:])
			if err != nil {
				return nil, fmt.Errorf("archive at byte %d of the inflated data: %w", off, err)
			}
			out = append(out, entries)
			off += n
		default:
			return nil, fmt.Errorf("at byte %d of the inflated data: %q is neither padding nor a newc archive", off, head(raw[off:]))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("inflates to no archive")
	}
	return out, nil
}

func isNewc(b []byte) bool {
	return bytes.HasPrefix(b, []byte("070701")) || bytes.HasPrefix(b, []byte("070702"))
}

// head is the start of b, for error messages.
func head(b []byte) []byte { return b[:min(len(b), 6)] }

const newcHeaderLen = 110

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// readNewc reads one archive from the start of b up to its trailer and says how many bytes it spans.
func readNewc(b []byte) ([]Entry, int, error) {
	links := map[linkKey][]int{}
	var out []Entry
	for off := 0; ; {
		if off == len(b) {
			return nil, 0, fmt.Errorf("ends without a trailer: it is truncated")
		}
		rec, next, err := parseRecord(b, off)
		if err != nil {
			return nil, 0, fmt.Errorf("at byte %d: %w", off, err)
		}
		if rec.Name == "TRAILER!!!" {
			fillHardlinks(out, links)
			return out, next, nil
		}
		if rec.Mode&cpio.S_IFMT == cpio.S_IFREG && rec.NLink > 1 {
			k := linkKey{rec.Ino, rec.Major, rec.Minor}
			links[k] = append(links[k], len(out))
		}
		out = append(out, entry(rec, b[next-int(align4(rec.FileSize)):][:rec.FileSize]))
		off = next
	}
}

// linkKey identifies a file in the file system an archive was made from.
type linkKey struct{ ino, major, minor uint64 }

// fillHardlinks gives every name of a hard-linked file its data: newc stores the data once, with
// one of the names (GNU cpio: the last), and the others empty.
func fillHardlinks(entries []Entry, links map[linkKey][]int) {
	for _, idx := range links {
		var data []byte
		for _, i := range idx {
			if len(entries[i].Data) > 0 {
				data = entries[i].Data
			}
		}
		for _, i := range idx {
			if entries[i].Data == nil {
				entries[i].Data = data
			}
		}
	}
}

// parseRecord reads the newc record at off and returns it with the offset of the next one.
func parseRecord(raw []byte, off int) (cpio.Info, int, error) {
	if len(raw)-off < newcHeaderLen {
		return cpio.Info{}, 0, fmt.Errorf("header cut short: the archive is damaged or truncated")
	}
	h := raw[off : off+newcHeaderLen]
	if !isNewc(h) {
		return cpio.Info{}, 0, fmt.Errorf("bad magic %q: not a newc cpio archive", h[:6])
	}
	var f [13]uint64
	for i := range f {
		v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return cpio.Info{}, 0, fmt.Errorf("bad header field: %w", err)
		}
		f[i] = v
	}
	info := cpio.Info{Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], NLink: f[4], MTime: f[5], FileSize: f[6],
		Major: f[7], Minor: f[8], Rmajor: f[9], Rminor: f[10]}
	nameLen := f[11]
	nameEnd := uint64(off) + newcHeaderLen + nameLen
	dataStart := align4(nameEnd)
	next := dataStart + align4(info.FileSize)
	if nameLen == 0 || next > uint64(len(raw)) {
		return cpio.Info{}, 0, fmt.Errorf("record runs past the end of the archive: it is damaged or truncated")
	}
	info.Name = strings.TrimRight(string(raw[off+newcHeaderLen:nameEnd]), "\x00")
	return info, int(next), nil
}

func entry(rec cpio.Info, data []byte) Entry {
	m := rec.Mode
	perm := fs.FileMode(m & 0o777)
	if m&cpio.S_ISUID != 0 {
		perm |= fs.ModeSetuid
	}
	if m&cpio.S_ISGID != 0 {
		perm |= fs.ModeSetgid
	}
	if m&cpio.S_ISVTX != 0 {
		perm |= fs.ModeSticky
	}
	e := Entry{Path: rec.Name, UID: uint32(rec.UID), GID: uint32(rec.GID)}
	if len(data) == 0 {
		data = nil
	}
	switch m & cpio.S_IFMT {
	case cpio.S_IFDIR:
		e.Mode = fs.ModeDir | perm
	case cpio.S_IFLNK:
		e.Mode, e.Target = fs.ModeSymlink|perm, string(data)
	case cpio.S_IFCHR:
		e.Mode, e.Major, e.Minor = fs.ModeDevice|fs.ModeCharDevice|perm, uint32(rec.Rmajor), uint32(rec.Rminor)
	case cpio.S_IFBLK:
		e.Mode, e.Major, e.Minor = fs.ModeDevice|perm, uint32(rec.Rmajor), uint32(rec.Rminor)
	case cpio.S_IFIFO:
		e.Mode = fs.ModeNamedPipe | perm
	case cpio.S_IFSOCK:
		e.Mode = fs.ModeSocket | perm
	default:
		e.Mode, e.Data = perm, data
	}
	return e
}
