package initramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
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
// or a symlink among its parents (one made by an earlier entry, or already in dir). Nothing is ever
// written outside dir: every operation goes through an os.Root of dir, which refuses to resolve a
// name outside it whatever the archive has put in the way, and acts on the final name itself, never
// on what a symlink there points to. It returns notes on what it skipped.
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
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
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
		if err := prepare(root, dir, rel, e.Mode); err != nil {
			return nil, err
		}
		mode := e.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if e.Mode.IsDir() {
			dirModes[rel] = mode
		}
		if err := create(root, rel, e, o.Owners, mode); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", rel, err)
		}
	}
	dirs := make([]string, 0, len(dirModes))
	for d := range dirModes {
		dirs = append(dirs, d)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children before parents
	for _, d := range dirs {
		if err := chmodDir(root, d, dirModes[d]); err != nil {
			return nil, fmt.Errorf("unpack %s: set the directory's mode %v: %w", d, dirModes[d], err)
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

// prepare makes rel's parents in root, refusing to go through a symlink, and clears the way for
// the entry: whatever is at rel goes, except a directory that a directory entry keeps. dir is
// root's path, for messages.
func prepare(root *os.Root, dir, rel string, mode fs.FileMode) error {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		p := path.Join(parts[:i]...)
		fi, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			t, _ := root.Readlink(p)
			return fmt.Errorf("entry %q: its parent %s is a symlink (to %s): %w", rel, filepath.Join(dir, p), t, ErrUnsafePath)
		case !fi.IsDir():
			return fmt.Errorf("entry %q: its parent %s is not a directory (%s)", rel, filepath.Join(dir, p), ModeString(fi.Mode()))
		}
	}
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case mode.IsDir() && fi.IsDir():
	default:
		// Remove acts on the name itself: a symlink goes, not what it points to. A directory goes
		// only if empty; its mode, still pending in Unpack, is then never set (see chmodDir).
		err := root.Remove(rel)
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("entry %q (%s) would replace the directory %s, which earlier entries filled: the archive is inconsistent; "+
				"the kernel would keep the directory and drop the entry", rel, ModeString(mode), filepath.Join(dir, rel))
		}
		if err != nil {
			return fmt.Errorf("entry %q replaces %s: %w", rel, filepath.Join(dir, rel), err)
		}
	}
	return nil
}

// create makes the entry at rel in root, which does not exist unless both are directories, and
// gives it its owner (if owners) and, but for directories and symlinks, its mode.
func create(root *os.Root, rel string, e Entry, owners bool, mode fs.FileMode) error {
	switch {
	case e.Mode.IsDir():
		if err := root.Mkdir(rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return lchown(root, rel, e, owners)
	case e.Mode&fs.ModeSymlink != 0:
		if err := root.Symlink(e.Target, rel); err != nil {
			return err
		}
		return lchown(root, rel, e, owners)
	case e.Mode.IsRegular():
		// O_EXCL: never opens an existing file, nor follows a symlink.
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(e.Data)
		if err == nil && owners {
			err = f.Chown(int(e.UID), int(e.GID))
		}
		if err == nil {
			err = f.Chmod(mode) // after the chown, which clears the set-user-ID bit
		}
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
	// os.Root has no mknod: make the node in its parent, opened through root.
	parent, err := root.Open(path.Dir(rel))
	if err != nil {
		return err
	}
	err = unix.Mknodat(int(parent.Fd()), path.Base(rel), typ|0o600, int(unix.Mkdev(e.Major, e.Minor)))
	parent.Close()
	if err != nil {
		return &os.PathError{Op: "mknod", Path: rel, Err: err}
	}
	if err := lchown(root, rel, e, owners); err != nil {
		return err
	}
	// Root.Chmod stays in root even if the node were swapped for a symlink meanwhile.
	return root.Chmod(rel, mode)
}

// lchown gives rel the entry's owner, if owners, without following a symlink.
func lchown(root *os.Root, rel string, e Entry, owners bool) error {
	if !owners {
		return nil
	}
	return root.Lchown(rel, int(e.UID), int(e.GID))
}

// chmodDir sets the mode of the directory an entry made at rel, unless a later entry replaced it:
// then rel is a symlink, a file or a node whose mode is the later entry's, and a symlink there may
// point anywhere, even out of dir. Opening rel with O_NOFOLLOW|O_DIRECTORY and changing the mode of
// what was opened leaves no moment at which rel could be swapped for a symlink.
func chmodDir(root *os.Root, rel string, mode fs.FileMode) error {
	parent, err := root.Open(path.Dir(rel))
	if err != nil {
		return err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), path.Base(rel), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case err == unix.ELOOP || err == unix.ENOTDIR:
		return nil // replaced by a later entry, which the kernel too would leave in place
	case err == unix.EACCES:
		// A directory its owner may not read (d-wx------ from an earlier unpack, with Force): no fd
		// to change. Root.Chmod does not follow a symlink that took its place out of root either.
		return root.Chmod(rel, mode)
	case err != nil:
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	d := os.NewFile(uintptr(fd), rel)
	defer d.Close()
	return d.Chmod(mode)
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
