// Package atomicfile replaces files so that whoever reads them, a boot manager after a crash
// included, finds the old bytes or the new ones, never a part: a new file is written under a
// temporary name beside its final one, synced, renamed over it, and the directory synced (a
// rename lives in the directory, not in the file), then the renamed file synced again: on FAT,
// where boot managers read, the final name takes the new file's clusters only then (see
// replace).
//
// A crash leaves the temporary file behind, and on an ESP of a few hundred MiB each one is a
// kernel's or an initramfs' worth of space. So every temporary file holds an exclusive flock(2)
// while it is written, which the kernel drops when its process dies, and the next write of the
// same name removes the temporary files nobody holds: those of crashed runs, never those of a run
// still writing.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// tempMark sits in a temporary file's name between the final name and a random part
// (".vmlinuz.mkbootimg-12345"), so that only files made here are ever taken for leftovers. The
// leading dot keeps boot managers' scans off them.
const tempMark = ".mkbootimg-"

// File is one file of a set that WriteSet writes.
type File struct {
	Name string // in the directory
	Data []byte
	Mode fs.FileMode // permissions, whatever the umask
}

// Temp is a new file written under a temporary name beside the file it is to replace, and
// locked until it is renamed or discarded.
type Temp struct {
	*os.File
	path    string // the name it replaces
	renamed bool
}

// live are the temporary files neither renamed nor discarded, for RemoveOnSignal; mu also keeps
// RemoveOnSignal from ending the process inside replace.
var (
	mu   sync.Mutex
	live = map[*Temp]bool{}
)

// RemoveOnSignal makes SIGINT, SIGTERM and SIGHUP remove the temporary files being written
// before the process dies of the signal, as it would have without this. RemoveStale would free
// them only at the next write of the same name, and a disk image's is gigabytes. A set being
// renamed (replace) is finished first, so a signal never leaves half a set replaced. Commands
// that handle an interrupt themselves do not call it.
func RemoveOnSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-c
		mu.Lock() // never unlocked: no replace starts after this
		for t := range live {
			os.Remove(t.Name())
		}
		signal.Reset()
		_ = unix.Kill(os.Getpid(), s.(syscall.Signal))
	}()
}

// LockDir takes an exclusive flock(2) on the directory dir, waiting for another process to
// release it, for a read-change-write of a file in dir that several runs may do at once (two
// installs adding their entries to one refind.conf): the file itself is no lock, as each write
// renames a new one over it. unlock releases it; so does the process's death.
func LockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	err = unix.Flock(int(d.Fd()), unix.LOCK_EX)
	switch {
	case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		// A file system without flock gets no lock, as in Create: runs at once may then race.
	case err != nil:
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { d.Close() }, nil
}

// Create removes the temporary files that crashed runs left for path, and starts a new one
// beside it, mode 0600 until changed.
func Create(path string) (*Temp, error) {
	RemoveStale(path)
	dir, base := filepath.Dir(path), filepath.Base(path)
	// Between the create and the lock, another run's RemoveStale may take the new file for a
	// leftover and remove it: then start again.
	for range 3 {
		f, err := os.CreateTemp(dir, "."+base+tempMark+"*")
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		// A file system without flock gets no lock: RemoveStale then leaves its files alone.
		if unix.Flock(int(f.Fd()), unix.LOCK_EX) != nil || stillNamed(f) {
			t := &Temp{File: f, path: path}
			mu.Lock()
			live[t] = true
			mu.Unlock()
			return t, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("write %s: another process keeps removing the temporary files in %s", path, dir)
}

func stillNamed(f *os.File) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	named, err := os.Lstat(f.Name())
	return err == nil && os.SameFile(held, named)
}

// RemoveStale removes the temporary files for path that no process holds locked: those crashed
// runs left. It is best effort: a leftover it cannot remove wastes space but is read by no one.
func RemoveStale(path string) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // a missing directory holds nothing; other errors surface when writing
	}
	prefix := "." + base + tempMark
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}

// Commit syncs t, renames it over its final name as replace says, and closes t.
func (t *Temp) Commit() error {
	if err := t.syncNew(); err != nil {
		return fmt.Errorf("write %s (as %s): %w", t.path, t.Name(), err)
	}
	if err := replace(filepath.Dir(t.path), []*Temp{t}); err != nil {
		return err
	}
	if err := t.Close(); err != nil {
		return fmt.Errorf("write %s: %w", t.path, err)
	}
	return nil
}

// replace renames each of temps, written and synced, over its final name in dir, in an order
// that a power cut on FAT survives as well as one on a journalled file system:
//  1. the files being replaced are opened and held open until the end;
//  2. the renames, back to back;
//  3. the directory is synced: the temporary names are gone from the disk;
//  4. each renamed file is synced: its final name now holds it on the disk;
//  5. the replaced files are closed, and the directory synced again: on FAT this writes the FAT,
//     where closing them freed their clusters.
//
// Linux's vfat writes a rename in three places: the final name's directory entry (start
// cluster and size) is rewritten only when the renamed file's inode is written, which a sync of
// the directory does not do; the temporary name's entries are removed in the directory; the
// replaced file's clusters are freed in the FAT once no one holds it open. A sync of the
// directory alone after the renames wrote the removal and the freed clusters but not the final
// entry, which still named the old file's clusters, now free: after a power cut in the next half
// minute (until the kernel's writeback wrote the inode) the kernel, the initramfs and the entries
// had broken cluster chains, and the kernel set the ESP read-only on the first read. Syncing the
// file before the directory instead would leave, for a moment, the final name and the temporary
// one sharing the new clusters on disk (when their entries are in different sectors); removing
// that temporary file later would free the new file's clusters.
//
// In this order each moment on the disk is safe: before step 3 the old files and the temporary
// ones; between 3 and 4 the old files (still allocated, as they are held open) and the new
// files' clusters lost (fsck.fat frees them); after 4 the new files, and the old files' clusters
// lost until step 5 writes the FAT (without it, until the kernel's writeback did). A final name
// that did not exist holds an empty file between steps 3 and 4 on FAT (vfat makes the new entry
// empty), which the next run replaces.
func replace(dir string, temps []*Temp) error {
	mu.Lock()
	defer mu.Unlock()
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for _, t := range temps {
		// O_NOFOLLOW: a symlink is replaced, not its target, so there is nothing to hold.
		if old, err := os.OpenFile(t.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0); err == nil {
			held = append(held, old)
		}
	}
	trace("held", dir)
	for i, t := range temps {
		if err := t.rename(); err != nil {
			if i > 0 {
				var names []string
				for _, r := range temps[:i] {
					names = append(names, filepath.Base(r.path))
				}
				return fmt.Errorf("%w; %s already replaced, so the files do not match: fix the cause and run mkbootimg again",
					err, strings.Join(names, ", "))
			}
			return fmt.Errorf("%w (nothing was replaced)", err)
		}
	}
	trace("sync dir", dir)
	if err := syncDir(dir); err != nil {
		return err
	}
	for _, t := range temps {
		trace("sync", t.path)
		if err := t.Sync(); err != nil {
			return fmt.Errorf("write %s: %w", t.path, err)
		}
	}
	for _, f := range held {
		f.Close()
	}
	held = nil
	trace("sync dir", dir)
	return syncDir(dir)
}

// syncNew makes the bytes of t, not yet renamed, durable. Linux's vfat syncs a file's directory
// entry (start cluster, size) before the FAT that chains its clusters, so a power cut between the
// two left an entry longer than its chain, and the kernel set the ESP read-only when the next run
// removed that temporary file ("deleting FAT entry beyond EOF"). A sync of the directory first
// writes the FAT (the clusters were allocated as the bytes were written) with the entry still
// empty on the disk; the file's sync then writes its data and entry, the FAT already there.
func (t *Temp) syncNew() error {
	var st unix.Statfs_t
	if unix.Fstatfs(int(t.Fd()), &st) == nil && st.Type == unix.MSDOS_SUPER_MAGIC {
		if err := syncDir(filepath.Dir(t.path)); err != nil {
			return err
		}
	}
	return t.Sync()
}

// trace, when a test sets it, is told each step of replace.
var trace = func(step, name string) {}

func (t *Temp) rename() error {
	trace("rename", t.path)
	if err := os.Rename(t.Name(), t.path); err != nil {
		return fmt.Errorf("replace %s: %w", t.path, err)
	}
	t.renamed = true
	delete(live, t) // mu is held by replace
	return nil
}

// Discard removes t unless it was renamed, and closes it. It may follow Commit, for a defer.
func (t *Temp) Discard() {
	mu.Lock()
	delete(live, t)
	mu.Unlock()
	if !t.renamed {
		os.Remove(t.Name())
	}
	t.Close()
}

// WriteSet replaces each file in dir, as one set as far as separate names allow:
//   - a file whose bytes are already there is not replaced (its mode is fixed in place);
//   - every new file is written to a temporary name in dir and synced, and dir synced, before
//     the first rename; the renames run back to back, then dir and the renamed files are synced
//     (replace).
//
// A crash between two renames leaves some files new and the others old; each file is whole.
// On an error no temporary file is left behind, and the error says which files were replaced.
func WriteSet(dir string, files ...File) error {
	var pending []*Temp
	defer func() {
		for _, t := range pending {
			t.Discard()
		}
	}()
	for _, f := range files {
		same, err := keepIfSame(filepath.Join(dir, f.Name), f)
		if err != nil {
			return err
		}
		if same {
			RemoveStale(filepath.Join(dir, f.Name)) // Create does it for the others
			continue
		}
		t, err := Create(filepath.Join(dir, f.Name))
		if err != nil {
			return err
		}
		pending = append(pending, t)
		_, err = t.Write(f.Data)
		if err == nil {
			err = t.Chmod(f.Mode)
		}
		if err == nil {
			err = t.syncNew()
		}
		if err != nil {
			return fmt.Errorf("write %s (as %s): %w", t.path, t.Name(), err)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return replace(dir, pending)
}

// keepIfSame reports whether path already holds f's bytes, as a regular file (not a symlink to
// one). Then it gives the file f's mode, if it has another, and syncs it, so that on return it is
// as durable as a new file would be.
func keepIfSame(path string, f File) (bool, error) {
	old, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, nil // missing, a symlink, unreadable: replace it
	}
	defer old.Close()
	fi, err := old.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(f.Data)) {
		return false, nil
	}
	data, err := io.ReadAll(old)
	if err != nil || !bytes.Equal(data, f.Data) {
		return false, nil
	}
	if fi.Mode().Perm() != f.Mode {
		// On FAT, which has no such modes, this changes nothing and does not fail.
		if err := old.Chmod(f.Mode); err != nil {
			return false, fmt.Errorf("%s holds the same bytes but mode %v: make it %v: %w", path, fi.Mode().Perm(), f.Mode, err)
		}
	}
	if err := old.Sync(); err != nil {
		return false, fmt.Errorf("sync %s: %w", path, err)
	}
	return true, nil
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("the names in %s may not survive a crash: %w", dir, err)
	}
	return nil
}

// MkdirAll makes dir and its missing parents, like os.MkdirAll, and syncs the directory that
// holds each one it made: a file committed into a new directory survives a power cut only if the
// directory's own name does (a first install's entry must not outlive its kernel's folder).
func MkdirAll(dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !os.IsExist(err) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// Rename gives the file oldpath the name newpath, in the same directory, where no file has that
// name: at every moment one of the two names holds it. The steps are replace's, for FAT: the
// file is held open across the rename, the directory synced, then the file (on FAT its new entry
// gets its clusters only then), then the directory again.
func Rename(oldpath, newpath string) error {
	dir := filepath.Dir(oldpath)
	if filepath.Dir(newpath) != dir {
		return fmt.Errorf("rename %s to %s: not in one directory", oldpath, newpath)
	}
	f, err := os.OpenFile(oldpath, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("rename %s: %w", oldpath, err)
	}
	defer f.Close()
	if _, err := os.Lstat(newpath); err == nil {
		return fmt.Errorf("rename %s: %s exists", oldpath, newpath)
	}
	trace("rename", newpath)
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", newpath, err)
	}
	return syncDir(dir)
}

// Remove removes the files, which must be in dir, and syncs dir. A file already gone is no error.
func Remove(dir string, names ...string) error {
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return syncDir(dir)
}
