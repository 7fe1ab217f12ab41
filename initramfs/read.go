package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// maxArchive bounds what Read inflates, so a hostile header cannot exhaust memory.
const maxArchive = 2 << 30

// Read returns the entries of a newc archive, zstd- or gzip-compressed or plain. It parses the
// headers itself rather than with u-root's reader, which allocates whatever name length a header
// claims; here every length is checked against the bytes that are really there.
func Read(data []byte) ([]Entry, error) {
	raw, err := decompress(data)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for off := 0; ; {
		if off == len(raw) {
			return nil, fmt.Errorf("initramfs: archive ends without a trailer: it is truncated")
		}
		rec, next, err := parseRecord(raw, off)
		if err != nil {
			return nil, fmt.Errorf("initramfs: at byte %d: %w", off, err)
		}
		if rec.Name == "TRAILER!!!" {
			return out, nil
		}
		out = append(out, entry(rec, raw[next-int(align4(rec.FileSize)):][:rec.FileSize]))
		off = next
	}
}

const newcHeaderLen = 110

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// parseRecord reads the newc record at off and returns it with the offset of the next one.
func parseRecord(raw []byte, off int) (cpio.Info, int, error) {
	if len(raw)-off < newcHeaderLen {
		return cpio.Info{}, 0, fmt.Errorf("short header")
	}
	h := raw[off : off+newcHeaderLen]
	if string(h[:6]) != "070701" && string(h[:6]) != "070702" {
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

func decompress(data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, zstdMagic):
		d, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("initramfs: zstd: %w", err)
		}
		defer d.Close()
		return readLimited(d, "zstd")
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("initramfs: gzip: %w", err)
		}
		return readLimited(zr, "gzip")
	case bytes.HasPrefix(data, []byte("070701")):
		return data, nil
	}
	return nil, fmt.Errorf("initramfs: not a newc cpio archive (plain, gzip or zstd)")
}

func readLimited(r io.Reader, what string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, maxArchive+1))
	if err != nil {
		return nil, fmt.Errorf("initramfs: %s: %w", what, err)
	}
	if len(out) > maxArchive {
		return nil, fmt.Errorf("initramfs: %s: inflates to more than %d bytes", what, maxArchive)
	}
	return out, nil
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
	e := Entry{Path: rec.Name}
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
	default:
		e.Mode, e.Data = perm, data
	}
	return e
}
