package bootimage

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// outFile is one file Build writes to the output directory.
type outFile struct {
	name string // in the directory
	data []byte
	mode fs.FileMode
}

// writeFiles replaces each file in dir as one set, as far as fixed names allow. The boot manager
// reads dir/vmlinuz and dir/initramfs.img, so there is no third name (a symlink, a directory) to
// switch both with in one rename. What it can do:
//   - a file whose bytes are already there is not replaced (its mode is fixed in place): rebuilding
//     for the same kernel replaces the initramfs alone, in one rename, with no window at all;
//   - every new file is written to a temporary name in dir and synced, and dir synced, before the
//     first rename; the renames run back to back, and dir is synced after them.
//
// The window that remains: when both files change (a new kernel), a crash between the two renames
// (microseconds; on a journaling file system usually in one transaction, on FAT not) leaves the new
// kernel with the old initramfs, whose modules are the old kernel's. Running mkbootimg again
// repairs it. On an error no temporary file is left behind.
func writeFiles(dir string, files ...outFile) error {
	type temp struct{ name, path string } // a file written under path, to be renamed to name
	var pending []temp
	defer func() {
		for _, t := range pending {
			os.Remove(t.path) // left only on an error
		}
	}()
	for _, f := range files {
		same, err := keepIfSame(filepath.Join(dir, f.name), f)
		if err != nil {
			return err
		}
		if same {
			continue
		}
		path, err := writeTemp(dir, f)
		if path != "" {
			pending = append(pending, temp{f.name, path})
		}
		if err != nil {
			return err
		}
	}
	if len(pending) > 0 {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	var replaced []string
	for len(pending) > 0 {
		t := pending[0]
		if err := os.Rename(t.path, filepath.Join(dir, t.name)); err != nil {
			if len(replaced) > 0 {
				return fmt.Errorf("replace %s: %w; %s already replaced, so the files do not match: fix the cause and run mkbootimg again",
					t.name, err, strings.Join(replaced, ", "))
			}
			return fmt.Errorf("replace %s: %w (nothing was replaced)", t.name, err)
		}
		pending = pending[1:]
		replaced = append(replaced, t.name)
	}
	return syncDir(dir)
}

// keepIfSame reports whether path already holds f's bytes, as a regular file (not a symlink to
// one). Then it gives the file f's mode, if it has another, and syncs it, so that on return it is
// as durable as a new file would be.
func keepIfSame(path string, f outFile) (bool, error) {
	old, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, nil // missing, a symlink, unreadable: replace it
	}
	defer old.Close()
	fi, err := old.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(f.data)) {
		return false, nil
	}
	data, err := io.ReadAll(old)
	if err != nil || !bytes.Equal(data, f.data) {
		return false, nil
	}
	if fi.Mode().Perm() != f.mode {
		// On FAT, which has no such modes, this changes nothing and does not fail.
		if err := old.Chmod(f.mode); err != nil {
			return false, fmt.Errorf("%s holds the same bytes but mode %v: make it %v: %w", path, fi.Mode().Perm(), f.mode, err)
		}
	}
	if err := old.Sync(); err != nil {
		return false, fmt.Errorf("sync %s: %w", path, err)
	}
	return true, nil
}

// writeTemp writes f to a new temporary file in dir, with f's mode from the start (CreateTemp makes
// it 0600, never wider), and syncs it. It returns the file's name once it exists, even on error.
func writeTemp(dir string, f outFile) (string, error) {
	tmp, err := os.CreateTemp(dir, "."+f.name+".*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", filepath.Join(dir, f.name), err)
	}
	_, err = tmp.Write(f.data)
	if err == nil {
		err = tmp.Chmod(f.mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return tmp.Name(), fmt.Errorf("write %s (as %s): %w", filepath.Join(dir, f.name), tmp.Name(), err)
	}
	return tmp.Name(), nil
}

// syncDir makes the names in dir durable: a rename is in the directory, not in the file.
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
