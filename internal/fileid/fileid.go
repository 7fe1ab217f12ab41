// Package fileid identifies files on the mounted file systems by device and inode, whatever path
// leads to them: a check of where a directory is must not be fooled by a symlink or by how its
// path is spelled. On btrfs each subvolume has a device number of its own.
package fileid

import "golang.org/x/sys/unix"

// ID is a file's device and inode.
type ID struct{ Dev, Ino uint64 }

// Of is the ID of what st describes.
func Of(st *unix.Stat_t) ID { return ID{st.Dev, st.Ino} }

// Fd is the ID of the open file fd.
func Fd(fd int) (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ID{}, err
	}
	return Of(&st), nil
}

// Parents returns the IDs of the directories above the directory fd, found by "..", not by a
// path, nearest first, up to the root of the namespace (whose ".." is itself). It crosses mount
// points as ".." does.
func Parents(fd int) ([]ID, error) {
	cur, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	defer func() { unix.Close(cur) }()
	last, err := Fd(cur)
	if err != nil {
		return nil, err
	}
	var ids []ID
	for {
		up, err := unix.Openat(cur, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		unix.Close(cur)
		cur = up
		id, err := Fd(cur)
		if err != nil {
			return nil, err
		}
		if id == last {
			return ids, nil
		}
		ids, last = append(ids, id), id
	}
}
