// Package switchroot hands the machine from the initramfs to the new root: it moves the API file
// systems, empties the initramfs, makes the new root "/" and execs the real init with its
// arguments and environment. u-root's mount.SwitchRoot is not used because it execs init with no
// arguments and an empty environment, and deletes the old root without checking what it is.
package switchroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// apiMounts move with the switch so the real init finds them already mounted.
var apiMounts = []string{"/dev", "/proc", "/sys", "/run"}

// ErrNoReturn is in the errors of a Switch that failed after emptying the initramfs. Its files are
// gone then (dockerinit's configuration and modules, the program itself) and PID 1 may be inside
// the new root already, so the boot cannot be retried; only a reboot starts it over.
var ErrNoReturn = errors.New("the initramfs was emptied already, so the boot cannot be retried: fix what failed (init= on the kernel command line, or the image) and reboot")

// CheckInit reports whether init (an absolute path inside newRoot, symlinks resolved inside
// newRoot) can run once newRoot is "/", so that an init that cannot is reported before anything is
// undone: Switch empties the initramfs before its exec, and an exec that fails then leaves the
// machine with no way back. The kernel runs a regular file with an x bit that is an ELF for this
// machine, whose program interpreter (the dynamic loader named by PT_INTERP) must then exist
// likewise, or a #! script whose interpreter can run by these same rules. The shared libraries
// the loader then loads are not checked.
func CheckInit(newRoot, init string) error {
	rootFd, err := openRoot(newRoot, init)
	if err != nil {
		return err
	}
	defer unix.Close(rootFd)
	return checkExec(rootFd, executable{path: init}, 0)
}

// openInit opens init as an O_PATH descriptor, resolved inside newRoot (see openInRoot).
func openInit(newRoot, init string) (int, error) {
	rootFd, err := openRoot(newRoot, init)
	if err != nil {
		return -1, err
	}
	defer unix.Close(rootFd)
	return openInRoot(rootFd, init, unix.O_PATH)
}

// openRoot opens newRoot as an O_PATH descriptor, after checking that init is a path in it.
func openRoot(newRoot, init string) (int, error) {
	if !filepath.IsAbs(init) {
		return -1, fmt.Errorf("init %q: want an absolute path such as /sbin/init", init)
	}
	fd, err := unix.Open(newRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open new root %s: %w", newRoot, err)
	}
	return fd, nil
}

// openInRoot opens path with flags, resolving it and its symlinks inside the directory root the
// way they will resolve once root is "/": Debian's /sbin/init is an absolute link.
func openInRoot(root int, path string, flags int) (int, error) {
	return unix.Openat2(root, path, &unix.OpenHow{
		Flags:   uint64(flags) | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// Switch makes newRoot (a mount point) the root file system and execs init there. It returns only
// on failure. The guards follow what a safe switch_root needs: we are PID 1, "/" is the initramfs
// (ramfs or tmpfs), and newRoot is a different file system, so emptying "/" cannot touch it.
// When init is systemd, it is told that the initramfs started at initrd (see systemdArgs).
func Switch(newRoot, init string, args, env []string, initrd Timestamp) error {
	if os.Getpid() != 1 {
		return errors.New("switch_root: not PID 1; refusing to empty /")
	}
	if err := checkInitramfs("/"); err != nil {
		return err
	}
	var rootSt, newSt unix.Stat_t
	if err := unix.Stat("/", &rootSt); err != nil {
		return fmt.Errorf("switch_root: stat /: %w", err)
	}
	if err := unix.Stat(newRoot, &newSt); err != nil {
		return fmt.Errorf("switch_root: stat %s: %w", newRoot, err)
	}
	if rootSt.Dev == newSt.Dev {
		return fmt.Errorf("switch_root: %s is not a mounted file system", newRoot)
	}
	if err := CheckInit(newRoot, init); err != nil {
		return err
	}
	if sys, fd := systemdArgs(newRoot, init, initrd); fd >= 0 {
		defer unix.Close(fd) // reached only when the exec fails
		args = append(sys, args...)
	}
	var moved []string
	for _, m := range apiMounts {
		ok, err := moveMount(m, filepath.Join(newRoot, m))
		if err != nil {
			// Put back what moved, so that the boot can be retried with /dev and /proc in place.
			for _, back := range slices.Backward(moved) {
				_ = unix.Mount(filepath.Join(newRoot, back), back, "", unix.MS_MOVE, "")
			}
			return err
		}
		if ok {
			moved = append(moved, m)
		}
	}
	// The point of no return: from here on every failure leaves no initramfs to retry from.
	// Free its memory before leaving it; a failure here only wastes RAM.
	_ = Empty("/", rootSt.Dev)
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: chdir %s: %w; %w", newRoot, err, ErrNoReturn)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch_root: move %s to /: %w; %w", newRoot, err, ErrNoReturn)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch_root: chroot: %w; %w", err, ErrNoReturn)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch_root: chdir /: %w; %w", err, ErrNoReturn)
	}
	argv := append([]string{init}, args...)
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("switch_root: exec %s: %w; %w", init, err, ErrNoReturn)
	}
	return nil
}

func checkInitramfs(dir string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return fmt.Errorf("switch_root: statfs %s: %w", dir, err)
	}
	if sfs.Type != unix.RAMFS_MAGIC && sfs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("switch_root: %s is not an initramfs (file system magic %#x); refusing to empty it", dir, sfs.Type)
	}
	return nil
}

// moveMount moves the mount at src onto dst and says whether it did; src not being a mount point
// is fine (nothing to move).
func moveMount(src, dst string) (bool, error) {
	var s, parent unix.Stat_t
	if err := unix.Stat(src, &s); err != nil {
		return false, nil
	}
	if err := unix.Stat(filepath.Dir(src), &parent); err == nil && s.Dev == parent.Dev {
		return false, nil
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return false, fmt.Errorf("switch_root: the new root has no %s and it cannot be made: %w", dst, err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_MOVE, ""); err != nil {
		return false, fmt.Errorf("switch_root: move %s to %s: %w", src, dst, err)
	}
	return true, nil
}

// Empty removes everything under dir that lives on device dev, never crossing into another file
// system (the new root, or anything still mounted). It keeps going after errors and returns the first.
func Empty(dir string, dev uint64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	keep := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			keep(err)
			continue
		}
		if st.Dev != dev {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			keep(Empty(p, dev))
			if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) {
				keep(err)
			}
			continue
		}
		keep(unix.Unlink(p))
	}
	return first
}
