// Package toplayer owns laying a folder (the per-machine "top layer") over a
// new root with OCI layer semantics, never following a symlink out of that
// root: every change is made through directory fds with *at system calls on
// single path components, and directories are opened with O_NOFOLLOW.
package toplayer

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/fileid"
)

// Stats counts what Apply laid over the root.
type Stats struct {
	Files     int   // regular files copied (a hardlink group counts once)
	Dirs      int   // directories below src, created or merged
	Symlinks  int   // symlinks copied as links
	Hardlinks int   // extra names of an inode already copied
	Specials  int   // fifos, sockets, char and block devices
	Whiteouts int   // .wh.NAME and .wh..wh..opq entries in src
	Bytes     int64 // file data copied (or reflinked)
	// ReplacedLinks are the image's symlinks that a directory of src replaced, as "lib -> usr/lib":
	// what the image held through them is gone, which on a merged-/usr image breaks the boot.
	ReplacedLinks []string
	// Skipped are the directories below src that were left out because they are root itself or
	// one of the skip directories Apply was given, relative to src.
	Skipped []string
}

// Apply lays the tree at src over the tree at root, so that root then shows
// at each path exactly what src holds there: file data, type, owner, mode
// (setuid included), times and xattrs; an entry of another type in root is
// replaced, never followed (a symlink in root where src has a directory
// becomes a real directory). .wh.NAME in src deletes NAME from root and
// .wh..wh..opq empties the directory it is in before src's entries are
// copied. src and root themselves are used as given; the metadata of src
// itself is not applied to root. Nothing below src is followed either.
//
// A directory below src that is root itself, or one of skip (a store the
// image comes from), is left out: a top layer folder that holds the new root
// (toplayer_path=/ on the root device) would otherwise copy it into itself
// without end. They are told apart by device and inode, whatever path leads
// to them. src inside root is refused: it would be copied over itself.
// On error the stats say what was done before it.
func Apply(src, root string, skip ...string) (Stats, error) {
	a := newApplier()
	err := a.apply(src, root, skip)
	if err != nil {
		return a.stats, fmt.Errorf("apply top layer %s over %s: %w", src, root, err)
	}
	return a.stats, nil
}

// applier holds one Apply's state and buffers reused for every entry.
type applier struct {
	stats       Stats
	rootFd      int
	links       map[fileid.ID]string // src inode with several names -> its first copy, relative to root
	dirents     []byte
	copyBuf     []byte // for when copy_file_range cannot be used
	noCopyRange bool
	linkBuf     []byte
	xattrs      xattrBufs
	skip        map[fileid.ID]bool // directories never entered: root and the caller's skip list
}

func newApplier() *applier {
	return &applier{links: make(map[fileid.ID]string), dirents: make([]byte, 32<<10)}
}

func (a *applier) apply(src, root string, skip []string) error {
	srcFd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open top layer folder: %w", err)
	}
	defer unix.Close(srcFd)
	rootFd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new root: %w", err)
	}
	defer unix.Close(rootFd)
	a.rootFd = rootFd
	rootID, err := fileid.Fd(rootFd)
	if err != nil {
		return fmt.Errorf("stat new root: %w", err)
	}
	a.skip = map[fileid.ID]bool{rootID: true}
	for _, p := range skip {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			continue // nothing there: nothing to leave out
		}
		a.skip[fileid.Of(&st)] = true
	}
	srcID, err := fileid.Fd(srcFd)
	if err != nil {
		return fmt.Errorf("stat top layer folder: %w", err)
	}
	ups, err := fileid.Parents(srcFd)
	if err != nil {
		return fmt.Errorf("check where the top layer folder is: %w", err)
	}
	if srcID == rootID || slices.Contains(ups, rootID) {
		return fmt.Errorf("the top layer folder %s is the new root %s or inside it: it cannot be laid over itself; put the top layer outside the rw layer", src, root)
	}
	return a.dir(srcFd, rootFd, "", true)
}

// dir lays the entries of src directory srcFd into dstFd, which is rel below
// root; inImage says whether dstFd existed before Apply (else whiteouts have
// nothing to delete). Whiteouts go first: they delete what the image had,
// never what src brings.
func (a *applier) dir(srcFd, dstFd int, rel string, inImage bool) error {
	names, err := a.readNames(srcFd)
	if err != nil {
		return fmt.Errorf("%s: read directory: %w", display(rel), err)
	}
	for _, name := range names {
		k, target, err := classify(name)
		if err != nil {
			return fmt.Errorf("%s: %w", path.Join(rel, name), err)
		}
		switch k {
		case opaque:
			a.stats.Whiteouts++
			if inImage {
				if err := a.clear(dstFd); err != nil {
					return fmt.Errorf("%s: make %s opaque: %w", path.Join(rel, name), display(rel), err)
				}
			}
		case whiteout:
			a.stats.Whiteouts++
			if !inImage {
				continue
			}
			if err := a.removeAll(dstFd, target); err != nil {
				return fmt.Errorf("%s: delete %s: %w", path.Join(rel, name), path.Join(rel, target), err)
			}
		}
	}
	for _, name := range names {
		if k, _, _ := classify(name); k != entry {
			continue
		}
		if err := a.entry(srcFd, dstFd, rel, name, inImage); err != nil {
			return err
		}
	}
	return nil
}

func display(rel string) string {
	if rel == "" {
		return "/"
	}
	return rel
}

// entry lays src entry name (in srcFd) over the same name in dstFd.
// inImage says whether dstFd existed before Apply: in a directory Apply made,
// there is nothing to replace, and not looking saves a system call per entry.
func (a *applier) entry(srcFd, dstFd int, rel, name string, inImage bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(srcFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: %w", path.Join(rel, name), err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if a.skip[fileid.Of(&st)] {
			a.stats.Skipped = append(a.stats.Skipped, path.Join(rel, name))
			return nil
		}
		return a.directory(srcFd, dstFd, rel, name, &st, inImage)
	}
	err := a.nonDir(srcFd, dstFd, rel, name, &st, inImage)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(rel, name), err)
	}
	return nil
}

func (a *applier) directory(srcFd, dstFd int, rel, name string, st *unix.Stat_t, inImage bool) error {
	childRel := path.Join(rel, name)
	in, err := unix.Openat(srcFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: open: %w", childRel, err)
	}
	defer unix.Close(in)
	out, existed, err := a.openDstDir(dstFd, childRel, name, inImage)
	if err != nil {
		return fmt.Errorf("%s: %w", childRel, err)
	}
	defer unix.Close(out)
	a.stats.Dirs++
	if err := a.dir(in, out, childRel, existed); err != nil {
		return err
	}
	// Owner, mode, xattrs and times last: writing the children changed the
	// times, and a read-only mode must not get in the way of writing them.
	err = a.attrs(node{fd: in}, node{fd: out}, st, existed)
	if err == nil {
		err = setTimes(dstFd, name, st)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", childRel, err)
	}
	return nil
}

// openDstDir opens directory name (rel from the root) in dirFd, first
// replacing whatever else is there (a file, or a symlink, which is never
// followed) with an empty one. Only a dirFd from the image (inImage) can have
// anything there.
func (a *applier) openDstDir(dirFd int, rel, name string, inImage bool) (fd int, existed bool, err error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if inImage {
		fd, err = unix.Openat(dirFd, name, flags, 0)
		switch {
		case err == nil:
			return fd, true, nil
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
			// A symlink fails the open too (O_NOFOLLOW); readlink tells it from a file.
			if target, err := a.readlink(dirFd, name); err == nil {
				a.stats.ReplacedLinks = append(a.stats.ReplacedLinks, rel+" -> "+target)
			}
			if err := unix.Unlinkat(dirFd, name, 0); err != nil {
				return -1, false, fmt.Errorf("replace the image's non-directory with a directory: %w", err)
			}
		case !errors.Is(err, unix.ENOENT):
			return -1, false, fmt.Errorf("open: %w", err)
		}
	}
	// 0700 until the real mode is set, after the children are written.
	if err := unix.Mkdirat(dirFd, name, 0o700); err != nil {
		return -1, false, fmt.Errorf("mkdir: %w", err)
	}
	fd, err = unix.Openat(dirFd, name, flags, 0)
	if err != nil {
		return -1, false, fmt.Errorf("open: %w", err)
	}
	return fd, false, nil
}

// nonDir replaces name in dstFd with a copy of the src entry, or a hardlink
// to the copy of an inode already seen.
func (a *applier) nonDir(srcFd, dstFd int, rel, name string, st *unix.Stat_t, inImage bool) error {
	if inImage {
		if err := a.removeAll(dstFd, name); err != nil {
			return fmt.Errorf("remove the image's entry: %w", err)
		}
	}
	var id fileid.ID
	if st.Nlink > 1 {
		id = fileid.Of(st)
		if first, ok := a.links[id]; ok {
			if err := a.link(first, dstFd, name); err != nil {
				return err
			}
			a.stats.Hardlinks++
			return nil
		}
	}
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		err = a.file(srcFd, dstFd, name, st)
	case unix.S_IFLNK:
		err = a.symlink(srcFd, dstFd, name, st)
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
		err = a.special(srcFd, dstFd, name, st)
	default:
		err = fmt.Errorf("unsupported file type %#o", st.Mode&unix.S_IFMT)
	}
	if err != nil {
		return err
	}
	if st.Nlink > 1 {
		a.links[id] = path.Join(rel, name)
	}
	return nil
}

// link hardlinks first (relative to root) as name in dstFd. The directory of
// first is resolved again beneath root refusing every symlink, so the link
// cannot point outside root whatever happened since.
func (a *applier) link(first string, dstFd int, name string) error {
	dir, base := path.Split(first)
	dirFd := a.rootFd
	if dir != "" {
		fd, err := unix.Openat2(a.rootFd, dir, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != nil {
			return fmt.Errorf("open %s to hardlink %s: %w", dir, first, err)
		}
		defer unix.Close(fd)
		dirFd = fd
	}
	if err := unix.Linkat(dirFd, base, dstFd, name, 0); err != nil {
		return fmt.Errorf("hardlink to %s: %w", first, err)
	}
	return nil
}

func (a *applier) file(srcFd, dstFd int, name string, st *unix.Stat_t) error {
	in, err := unix.Openat(srcFd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(in)
	// O_EXCL: never write through whatever might be at name.
	out, err := unix.Openat(dstFd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer unix.Close(out)
	n, err := a.copyData(out, in, st.Size)
	a.stats.Bytes += n
	if err != nil {
		return fmt.Errorf("copy data: %w", err)
	}
	if err := a.attrs(node{fd: in}, node{fd: out}, st, false); err != nil {
		return err
	}
	a.stats.Files++
	return setTimes(dstFd, name, st)
}

// copyData copies size bytes of in to out with copy_file_range, which
// reflinks on one btrfs, falling back to read/write where the kernel cannot
// (across file systems, or an old kernel); both file offsets have advanced
// equally, so the fallback goes on where it stopped. Stopping at size saves
// the call that would find the end of the file.
func (a *applier) copyData(out, in int, size int64) (int64, error) {
	var total int64
	for !a.noCopyRange && total < size {
		n, err := unix.CopyFileRange(in, nil, out, nil, int(min(size-total, 1<<30)), 0)
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			a.noCopyRange = true
			break
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil // the file shrank since it was stat'ed
		}
		total += int64(n)
	}
	if total >= size {
		return total, nil
	}
	if a.copyBuf == nil {
		a.copyBuf = make([]byte, 256<<10)
	}
	for total < size {
		n, err := unix.Read(in, a.copyBuf[:min(int64(len(a.copyBuf)), size-total)])
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		for b := a.copyBuf[:n]; len(b) > 0; {
			w, err := unix.Write(out, b)
			if err != nil {
				return total, err
			}
			b = b[w:]
			total += int64(w)
		}
	}
	return total, nil
}

func (a *applier) symlink(srcFd, dstFd int, name string, st *unix.Stat_t) error {
	target, err := a.readlink(srcFd, name)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, dstFd, name); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	// A symlink has no mode of its own to set.
	if err := unix.Fchownat(dstFd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := a.copyXattrs(procNode(srcFd, name), procNode(dstFd, name), false); err != nil {
		return err
	}
	a.stats.Symlinks++
	return setTimes(dstFd, name, st)
}

func (a *applier) readlink(dirFd int, name string) (string, error) {
	if a.linkBuf == nil {
		a.linkBuf = make([]byte, unix.PathMax)
	}
	for {
		n, err := unix.Readlinkat(dirFd, name, a.linkBuf)
		if err != nil {
			return "", fmt.Errorf("readlink: %w", err)
		}
		if n < len(a.linkBuf) {
			return string(a.linkBuf[:n]), nil
		}
		a.linkBuf = make([]byte, 2*len(a.linkBuf))
	}
}

func (a *applier) special(srcFd, dstFd int, name string, st *unix.Stat_t) error {
	if err := unix.Mknodat(dstFd, name, st.Mode, int(st.Rdev)); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := unix.Fchownat(dstFd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// Following is safe: name is the node just made, not a symlink. mknod's
	// mode went through the umask, so set it again.
	if err := unix.Fchmodat(dstFd, name, st.Mode&0o7777, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := a.copyXattrs(procNode(srcFd, name), procNode(dstFd, name), false); err != nil {
		return err
	}
	a.stats.Specials++
	return setTimes(dstFd, name, st)
}

// attrs sets owner, then mode (chown clears setuid and setgid), then xattrs
// (chown clears security.capability) of out from st and in. prune removes
// xattrs out has and in lacks, for directories the image already had.
func (a *applier) attrs(in, out node, st *unix.Stat_t, prune bool) error {
	if err := unix.Fchown(out.fd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %d:%d: %w", st.Uid, st.Gid, err)
	}
	if err := unix.Fchmod(out.fd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %#o: %w", st.Mode&0o7777, err)
	}
	return a.copyXattrs(in, out, prune)
}

func setTimes(dirFd int, name string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dirFd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// readNames returns the names in directory fd, but . and ..
func (a *applier) readNames(fd int) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, a.dirents)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(a.dirents[:n], -1, names)
	}
}

// removeAll removes name from dirFd, a directory with all it holds; a
// missing name is fine. Symlinks are removed, never followed. The error is an
// *fs.PathError naming the entry that could not be removed, relative to dirFd.
func (a *applier) removeAll(dirFd int, name string) error {
	err := unix.Unlinkat(dirFd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return &fs.PathError{Op: "unlink", Path: name, Err: err}
	}
	fd, err := unix.Openat(dirFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	err = a.clear(fd)
	unix.Close(fd)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		pe.Path = name + "/" + pe.Path
		return pe
	}
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirFd, name, unix.AT_REMOVEDIR); err != nil {
		return &fs.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

// clear removes everything in directory fd.
func (a *applier) clear(fd int) error {
	names, err := a.readNames(fd)
	if err != nil {
		return &fs.PathError{Op: "read directory", Path: ".", Err: err}
	}
	for _, n := range names {
		if err := a.removeAll(fd, n); err != nil {
			return err
		}
	}
	return nil
}
