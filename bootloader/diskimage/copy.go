package diskimage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyInto copies src to dst at off. With sparse, runs of zeros are skipped: dst is a new
// sparse file, so the disk image takes only the space of src's data. A block device gets every
// byte, since skipping would leave whatever it held before.
func copyInto(dst *os.File, off int64, src *os.File, sparse bool) error {
	size, err := src.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for pos := int64(0); pos < size; {
		next, end := pos, size
		if sparse {
			// Jump over src's holes without reading them; a file system without SEEK_DATA
			// (EINVAL) is read through.
			if d, err := src.Seek(pos, unix.SEEK_DATA); err == nil {
				next = d
				if h, err := src.Seek(d, unix.SEEK_HOLE); err == nil {
					end = h
				}
			} else if errors.Is(err, syscall.ENXIO) {
				return nil // nothing but a hole up to the end
			}
		}
		for next < end {
			n, err := src.ReadAt(buf[:min(int64(len(buf)), end-next)], next)
			if n > 0 && !(sparse && allZero(buf[:n])) {
				if _, werr := dst.WriteAt(buf[:n], off+next); werr != nil {
					return werr
				}
			}
			next += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		pos = end
	}
	return nil
}

func allZero(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
