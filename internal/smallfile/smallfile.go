// Package smallfile reads the small metadata files that a disk, an image or a store supplies
// (repositories.json, an image config, a cache-id) without trusting their type or size: read
// blindly, one that is a symlink to /dev/zero fills the memory of the initramfs, and a fifo hangs
// the boot. It imports only the standard library, as kmod's boot half must.
package smallfile

import (
	"fmt"
	"io"
	"io/fs"
)

// Read returns the contents of the file name of fsys, which must be a regular file of at most
// limit bytes. The type is checked with fs.Stat, which with os.DirFS follows symlinks, so a link
// is judged by what it points at (a link to /dev/zero is a character device) before anything is
// opened: opening a fifo would block. At most limit+1 bytes are read, so a file that grows
// between the check and the read is refused too. The checks race with whoever changes the file
// in between; at boot nothing else runs. A file that does not exist gives fs.Stat's error, which
// errors.Is(err, fs.ErrNotExist) recognises.
func Read(fsys fs.FS, name string, limit int64) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		what := kind(fi.Mode())
		if li, err := fs.Lstat(fsys, name); err == nil && li.Mode()&fs.ModeSymlink != 0 {
			what = "a symbolic link to " + what
		}
		return nil, fmt.Errorf("%s is %s, not a regular file", name, what)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %s (%d bytes), more than the %s such a file may have", name, size(fi.Size()), fi.Size(), size(limit))
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s grew past the %s such a file may have while it was read", name, size(limit))
	}
	return b, nil
}

// kind names a file type that is not a regular file, for messages.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (fifo)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "an irregular file (" + m.Type().String() + ")"
}

// size prints a byte count for people: "512 B", "64 MiB", "1.5 GiB".
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.4g %s", v, suffix)
}
