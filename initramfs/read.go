package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// Read returns the entries of a newc archive, zstd- or gzip-compressed or plain.
func Read(data []byte) ([]Entry, error) {
	raw, err := decompress(data)
	if err != nil {
		return nil, err
	}
	rr := cpio.Newc.Reader(bytes.NewReader(raw))
	var out []Entry
	for {
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("initramfs: read cpio: %w", err)
		}
		if rec.Name == "TRAILER!!!" {
			return out, nil
		}
		e, err := entry(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}

func decompress(data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, zstdMagic):
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		out, err := d.DecodeAll(data, nil)
		if err != nil {
			return nil, fmt.Errorf("initramfs: zstd: %w", err)
		}
		return out, nil
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("initramfs: gzip: %w", err)
		}
		return io.ReadAll(zr)
	case bytes.HasPrefix(data, []byte("070701")):
		return data, nil
	}
	return nil, fmt.Errorf("initramfs: not a newc cpio archive (plain, gzip or zstd)")
}

func entry(rec cpio.Record) (Entry, error) {
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
	var data []byte
	if rec.FileSize > 0 {
		data = make([]byte, rec.FileSize)
		if _, err := rec.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
			return Entry{}, fmt.Errorf("initramfs: read %s: %w", rec.Name, err)
		}
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
	return e, nil
}
