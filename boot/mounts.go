package boot

// The mounts the steps make, kept so that a failed step undoes its own.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// joinFlags joins comma-separated mount options, dropping empty ones.
func joinFlags(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.Trim(p, ","); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

func (s *Sequence) mount(src, dir, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dir, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (type %s, options %q): %w", src, dir, fstype, data, err)
	}
	s.mounts = append(s.mounts, dir)
	return nil
}

func (s *Sequence) unmount(dir string) error {
	if err := unix.Unmount(dir, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	s.forget(dir)
	return nil
}

// forget drops dir, unmounted, from the mounts to undo.
func (s *Sequence) forget(dir string) {
	for i := len(s.mounts) - 1; i >= 0; i-- {
		if s.mounts[i] == dir {
			s.mounts = append(s.mounts[:i], s.mounts[i+1:]...)
			break
		}
	}
}

// unmountFrom unmounts mounts[from:], the newest first.
func (s *Sequence) unmountFrom(from int) {
	for i := len(s.mounts) - 1; i >= from; i-- {
		if err := unix.Unmount(s.mounts[i], 0); err != nil {
			_ = unix.Unmount(s.mounts[i], unix.MNT_DETACH)
		}
	}
	s.mounts = s.mounts[:from]
}

// mounted reports whether dir is a mount point (its device differs from its parent's).
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
