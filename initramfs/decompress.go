package initramfs

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// codec is a compression the kernel unpacks an initramfs from.
type codec struct {
	name  string
	magic []byte
	// decode inflates the compressed data at the start of b to at most limit bytes and says how
	// many bytes of b it spans, so that whatever follows can be read in turn.
	decode func(b []byte, limit int) (raw []byte, n int, err error)
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

var codecs = []codec{
	{"gzip", []byte{0x1f, 0x8b}, gunzip},
	{"zstd", zstdMagic, unzstd},
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}, unxz},
	{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}, unlz4},
}

// unsupported are the other compressions a Linux initramfs may use, named so the error can say
// which one it met.
var unsupported = []codec{
	{name: "bzip2", magic: []byte("BZh")},
	{name: "lzma", magic: []byte{0x5d, 0, 0}},
	{name: "lzo", magic: []byte{0x89, 'L', 'Z', 'O'}},
	{name: "lz4 (frame format, which the kernel does not take: use lz4 -l)", magic: []byte{0x04, 0x22, 0x4d, 0x18}},
}

func codecOf(b []byte) (codec, error) {
	for _, c := range codecs {
		if bytes.HasPrefix(b, c.magic) {
			return c, nil
		}
	}
	for _, c := range unsupported {
		if bytes.HasPrefix(b, c.magic) {
			return codec{}, fmt.Errorf("data compressed with %s, which mkbootimg cannot read; decompress it first (plain, gzip, zstd, xz and lz4 -l are read)", c.name)
		}
	}
	return codec{}, fmt.Errorf("%q is neither a newc cpio archive nor gzip, zstd, xz or lz4 data", head(b))
}

// readLimited reads r to its end, failing beyond limit bytes.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, fmt.Errorf("inflates to more than %d bytes in all", maxArchive)
	}
	return out, nil
}

func gunzip(b []byte, limit int) ([]byte, int, error) {
	r := bytes.NewReader(b) // an io.ByteReader, so gzip reads no further than its member
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, 0, err
	}
	zr.Multistream(false)
	raw, err := readLimited(zr, limit)
	return raw, len(b) - r.Len(), err
}

func unzstd(b []byte, limit int) ([]byte, int, error) {
	n, err := zstdFrameLen(b)
	if err != nil {
		return nil, 0, err
	}
	for n < len(b) { // further frames belong to the same data (pzstd writes several)
		l, err := zstdFrameLen(b[n:])
		if errors.Is(err, errNotZstd) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		n += l
	}
	d, err := zstd.NewReader(bytes.NewReader(b[:n]), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)))
	if err != nil {
		return nil, 0, err
	}
	defer d.Close()
	raw, err := readLimited(d, limit)
	return raw, n, err
}

var errNotZstd = errors.New("not a zstd frame")

// zstdFrameLen walks the block headers of the zstd frame at the start of b (RFC 8878) to find
// where it ends: the decoder would take whatever follows for a broken next frame.
func zstdFrameLen(b []byte) (int, error) {
	truncated := fmt.Errorf("zstd frame of %d bytes is truncated", len(b))
	if len(b) < 8 {
		return 0, truncated
	}
	magic := binary.LittleEndian.Uint32(b)
	if magic&^0xf == 0x184d2a50 { // a skippable frame says its length
		n := 8 + int(binary.LittleEndian.Uint32(b[4:]))
		if n > len(b) {
			return 0, truncated
		}
		return n, nil
	}
	if magic != 0xfd2fb528 {
		return 0, errNotZstd
	}
	desc := b[4]
	single := desc&0x20 != 0
	n := 5
	if !single {
		n++ // window descriptor
	}
	n += [4]int{0, 1, 2, 4}[desc&3] // dictionary ID
	fcs := [4]int{0, 2, 4, 8}[desc>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	n += fcs
	for {
		if n+3 > len(b) {
			return 0, truncated
		}
		h := int(b[n]) | int(b[n+1])<<8 | int(b[n+2])<<16
		n += 3
		switch h >> 1 & 3 {
		case 0, 2: // raw, compressed: the size is what follows
			n += h >> 3
		case 1: // RLE: one byte, repeated
			n++
		case 3:
			return 0, fmt.Errorf("zstd block at byte %d has the reserved type: the data is damaged", n-3)
		}
		if n > len(b) {
			return 0, truncated
		}
		if h&1 != 0 {
			break
		}
	}
	if desc&4 != 0 {
		n += 4 // content checksum
	}
	if n > len(b) {
		return 0, truncated
	}
	return n, nil
}

// unxz reads to the end of b: xz blocks need not record their sizes, so only decoding finds where
// the data ends, and the xz reader consumes what follows. Generators put it last.
func unxz(b []byte, limit int) ([]byte, int, error) {
	r, err := xz.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	raw, err := readLimited(r, limit)
	return raw, len(b), err
}

// lz4Block is the most a block of the legacy format (lz4 -l, what the kernel reads) inflates to.
const lz4Block = 8 << 20

// unlz4 reads the legacy lz4 format: after the magic, blocks each preceded by their size. The
// data ends where a size is zero (padding) or beyond what a block can take (the next archive's
// "0707" reads as 925 MB); a repeated magic starts another run, as the kernel accepts.
func unlz4(b []byte, limit int) ([]byte, int, error) {
	var raw, buf []byte
	n := 4
	for n+4 <= len(b) {
		size := int(binary.LittleEndian.Uint32(b[n:]))
		if size == 0x184c2102 {
			n += 4
			continue
		}
		if size == 0 || size > lz4.CompressBlockBound(lz4Block) {
			break
		}
		if n+4+size > len(b) {
			return nil, 0, fmt.Errorf("lz4 block at byte %d claims %d bytes but %d remain: it is truncated", n, size, len(b)-n-4)
		}
		if buf == nil {
			buf = make([]byte, lz4Block)
		}
		k, err := lz4.UncompressBlock(b[n+4:n+4+size], buf)
		if err != nil {
			return nil, 0, fmt.Errorf("lz4 block at byte %d: %w", n, err)
		}
		if len(raw)+k > limit {
			return nil, 0, fmt.Errorf("inflates to more than %d bytes in all", maxArchive)
		}
		raw = append(raw, buf[:k]...)
		n += 4 + size
	}
	return raw, n, nil
}
