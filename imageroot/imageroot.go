// Package imageroot reads an image's root file system on the build host the way the image will
// see itself once it is "/": every path, and every symlink met on the way (absolute targets and
// ".." included), resolves inside the image, never among the host's files. An image is untrusted
// input: its usr/lib/firmware -> /etc, joined into a host path, would put the host's /etc/shadow
// into the initramfs.
//
// The kernel does the resolution: openat2(2) with RESOLVE_IN_ROOT on a descriptor of the image's
// root (Linux 5.6+), through golang.org/x/sys, which the project already uses for the same call
// (switchroot). github.com/cyphar/filepath-securejoin's OpenInRoot is this call plus an emulation
// for older kernels and a procfs hardened against hostile container mounts, neither of which a
// build host reading a folder needs, so it is not worth a dependency. os.Root does not fit: it
// refuses symlinks that leave its folder instead of resolving them inside, and images have
// legitimate absolute ones (/vmlinuz -> /boot/vmlinuz-6.1.0-28-amd64, firmware links).
package imageroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// Root is an image's root directory, open. Its names are slash-separated and relative to it, as
// for any fs.FS; it is an fs.FS, fs.StatFS and fs.ReadLinkFS, so fs.ReadFile, fs.ReadDir,
// fs.WalkDir and fs.Sub work on it, and a tree from fs.Sub still resolves symlinks against the
// image's root. Safe for concurrent use.
type Root struct {
	fd int // O_PATH descriptor of the root directory
}

var _ interface {
	fs.StatFS
	fs.ReadLinkFS
} = (*Root)(nil)

// errNotRegular refuses FIFOs, sockets and device nodes: opening a FIFO would block the build,
// and a device node (an image's tar can hold any) would read the build host's disk or memory.
var errNotRegular = errors.New("not a regular file or directory: only those are read from an image")

// Open opens the image root directory dir, a host path.
func Open(dir string) (*Root, error) {
	fd, err := openat2(unix.AT_FDCWD, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC})
	if err != nil {
		return nil, &fs.PathError{Op: "open image root", Path: dir, Err: err}
	}
	return &Root{fd: fd}, nil
}

// Close closes the root; files opened from it stay open.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Open opens the named regular file or directory for reading; anything else is refused before it
// is opened for reading (errNotRegular). A directory's entries give their Info through the root.
func (r *Root) Open(name string) (fs.File, error) {
	p, err := r.resolve("open", name, 0)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	fi, err := p.Stat()
	if err != nil {
		return nil, err
	}
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	switch {
	case fi.IsDir():
		flags |= unix.O_DIRECTORY
	case !fi.Mode().IsRegular():
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("found a %v: %w", fi.Mode().Type(), errNotRegular)}
	}
	// An O_PATH descriptor cannot be read. Its /proc/self/fd link opens the very inode checked
	// above, where a second lookup by name could meet a file swapped in since.
	fd, err := openat2(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(p.Fd())), &unix.OpenHow{Flags: uint64(flags)})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("reopen for reading through /proc/self/fd (is /proc mounted?): %w", err)}
	}
	f := os.NewFile(uintptr(fd), name)
	if fi.IsDir() {
		return &dir{f: f, root: r, name: name}, nil
	}
	return f, nil
}

// Stat returns the FileInfo of name, following symlinks inside the image.
func (r *Root) Stat(name string) (fs.FileInfo, error) { return r.stat("stat", name, 0) }

// Lstat returns the FileInfo of name itself when it is a symlink (those before it are followed).
func (r *Root) Lstat(name string) (fs.FileInfo, error) { return r.stat("lstat", name, unix.O_NOFOLLOW) }

// ReadLink returns the target of the symlink name, as written: an absolute target is the image's
// path, not the host's.
func (r *Root) ReadLink(name string) (string, error) {
	p, err := r.resolve("readlink", name, unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer p.Close()
	// readlinkat of a descriptor that is not a link fails with ENOENT, which would read as "does
	// not exist"; readlink(2) says EINVAL.
	fi, err := p.Stat()
	if err != nil {
		return "", err
	}
	if fi.Mode().Type() != fs.ModeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: unix.EINVAL}
	}
	buf := make([]byte, unix.PathMax) // symlink(2) stores at most PATH_MAX-1 bytes
	n, err := unix.Readlinkat(int(p.Fd()), "", buf)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(buf[:n]), nil
}

func (r *Root) stat(op, name string, flags uint64) (fs.FileInfo, error) {
	p, err := r.resolve(op, name, flags)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.Stat()
}

// resolve looks name up inside the root and returns an O_PATH descriptor of it, which can be
// inspected (fstat, readlinkat) but not read, so nothing is opened before it is checked.
func (r *Root) resolve(op, name string, flags uint64) (*os.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	fd, err := openat2(r.fd, name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | flags,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openat2 is unix.Openat2, tried again on EAGAIN (a rename or mount raced with a ".." of a
// RESOLVE_IN_ROOT lookup) and EINTR (a slow file system interrupted by a signal), and saying what
// to do on a kernel without it.
func openat2(dirfd int, name string, how *unix.OpenHow) (int, error) {
	var fd int
	var err error
	for range 64 {
		if fd, err = unix.Openat2(dirfd, name, how); err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err == unix.ENOSYS {
		return -1, fmt.Errorf("%w: this kernel lacks openat2 (Linux 5.6+), which reading an image safely needs: build on a newer kernel", err)
	}
	return fd, err
}

// dir is an open directory of the image. Only these methods are offered: an *os.File's DirEntry
// (and Readdir) would lstat the host path its name joins to.
type dir struct {
	f    *os.File
	root *Root
	name string
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.f.Stat() }
func (d *dir) Read(b []byte) (int, error) { return d.f.Read(b) }
func (d *dir) Close() error               { return d.f.Close() }

// ReadDir lists entries as fs.ReadDirFile does. Their type comes from the directory read itself
// (or an fstatat on the directory's descriptor); their Info from the root.
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	ents, err := d.f.ReadDir(n)
	for i, e := range ents {
		ents[i] = dirEntry{DirEntry: e, root: d.root, name: path.Join(d.name, e.Name())}
	}
	return ents, err
}

type dirEntry struct {
	fs.DirEntry
	root *Root
	name string
}

func (e dirEntry) Info() (fs.FileInfo, error) { return e.root.Lstat(e.name) }
