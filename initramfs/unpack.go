package initramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// UnpackOptions says what Unpack may do besides files, directories, symlinks, FIFOs and modes.
type UnpackOptions struct {
	Force   bool // unpack into a directory that is not empty
	Owners  bool // give entries their owners (needs root)
	Devices bool // create device nodes (needs root); otherwise they are skipped with a note
}

// ErrNotEmpty is a directory to unpack into that already holds files, and Force is not set.
var ErrNotEmpty = errors.New("is not empty: unpack into an empty directory, or force writing over what is there")

// ErrUnsafePath is an entry that would land outside the directory Unpack writes to.
var ErrUnsafePath = errors.New("it would land outside the directory")

// Unpack writes entries under dir, creating it, as the kernel would unpack them: a later entry
// replaces an earlier one. It refuses, before writing it, any entry with an absolute path, a ".."
// or a symlink among its parents (one made by an earlier entry, or already in dir): nothing is
// ever written outside dir. It returns notes on what it skipped.
func Unpack(entries []Entry, dir string, o UnpackOptions) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if !o.Force {
		names, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		if len(names) > 0 {
			return nil, fmt.Errorf("%s %w (it holds %s)", dir, ErrNotEmpty, abbreviate(entryNames(names), 3))
		}
	}
	dirModes := map[string]fs.FileMode{} // set last, so a read-only directory can still be filled
	var skipped []string
	for _, e := range entries {
		rel, err := safePath(e.Path)
		if err != nil {
			return nil, err
		}
		if rel == "" {
			continue // the root: dir itself, whose mode is the caller's
		}
		if e.Mode&fs.ModeDevice != 0 && !o.Devices {
			skipped = append(skipped, rel)
			continue
		}
		target, err := prepare(dir, rel, e.Mode.IsDir())
		if err != nil {
			return nil, err
		}
		if err := create(target, e); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", rel, err)
		}
		if o.Owners {
			if err := os.Lchown(target, int(e.UID), int(e.GID)); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", rel, err)
			}
		}
		mode := e.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		switch {
		case e.Mode.IsDir():
			dirModes[target] = mode
		case e.Mode&fs.ModeSymlink == 0:
			// After the chown, which clears the set-user-ID bit.
			if err := os.Chmod(target, mode); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", rel, err)
			}
		}
	}
	dirs := make([]string, 0, len(dirModes))
	for d := range dirModes {
		dirs = append(dirs, d)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children before parents
	for _, d := range dirs {
		if err := os.Chmod(d, dirModes[d]); err != nil {
			return nil, err
		}
	}
	var notes []string
	if len(skipped) > 0 {
		notes = append(notes, fmt.Sprintf("skipped %d device node(s) (%s): creating them needs root", len(skipped), abbreviate(skipped, 5)))
	}
	return notes, nil
}

// safePath checks an entry's name and returns it relative to the root ("" for the root).
func safePath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("entry %q has an absolute path: %w", name, ErrUnsafePath)
	}
	parts := splitPath(name)
	for _, c := range parts {
		if c == ".." {
			return "", fmt.Errorf("entry %q has a \"..\" component: %w", name, ErrUnsafePath)
		}
	}
	return strings.Join(parts, "/"), nil
}

// prepare makes rel's parents under dir, refusing to go through a symlink, and clears the way for
// the entry: whatever is at rel goes, except a directory that a directory entry keeps.
func prepare(dir, rel string, isDir bool) (string, error) {
	p := dir
	parts := strings.Split(rel, "/")
	for _, c := range parts[:len(parts)-1] {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			return "", fmt.Errorf("entry %q: its parent %s is a symlink (to %s): %w", rel, p, t, ErrUnsafePath)
		case !fi.IsDir():
			return "", fmt.Errorf("entry %q: its parent %s is not a directory", rel, p)
		}
	}
	target := filepath.Join(dir, rel)
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	case isDir && fi.IsDir():
	default:
		if err := os.Remove(target); err != nil {
			return "", fmt.Errorf("entry %q replaces %s: %w", rel, target, err)
		}
	}
	return target, nil
}

// create makes the entry at target, which does not exist unless both are directories.
func create(target string, e Entry) error {
	switch {
	case e.Mode.IsDir():
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	case e.Mode&fs.ModeSymlink != 0:
		return os.Symlink(e.Target, target)
	case e.Mode.IsRegular():
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(e.Data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	var typ uint32
	switch {
	case e.Mode&fs.ModeCharDevice != 0:
		typ = unix.S_IFCHR
	case e.Mode&fs.ModeDevice != 0:
		typ = unix.S_IFBLK
	case e.Mode&fs.ModeNamedPipe != 0:
		typ = unix.S_IFIFO
	case e.Mode&fs.ModeSocket != 0:
		typ = unix.S_IFSOCK
	default:
		return fmt.Errorf("unsupported file type %v", e.Mode.Type())
	}
	if err := unix.Mknod(target, typ|0o600, int(unix.Mkdev(e.Major, e.Minor))); err != nil {
		return &os.PathError{Op: "mknod", Path: target, Err: err}
	}
	return nil
}

func entryNames(des []fs.DirEntry) []string {
	out := make([]string, len(des))
	for i, d := range des {
		out[i] = d.Name()
	}
	return out
}

// abbreviate joins the first n names and says how many more there are.
func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
