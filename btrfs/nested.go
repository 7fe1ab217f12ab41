package btrfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Nested subvolumes are found in the root tree (ROOT_REF items of the parent
// subvolume, then INO_LOOKUP for the directory each one sits in) rather than
// by walking directories: a rw layer is a whole OS root of ~20k files, while
// the tree search reads only the few items that name its children.
// Both ioctls need CAP_SYS_ADMIN, which PID 1 has.

// childRef is one ROOT_REF item: subvolume id, named name, sits in the
// directory with inode dirID of its parent subvolume.
type childRef struct {
	id    uint64
	dirID uint64
	name  string
}

// nestedSubvolumes returns the paths of the subvolumes directly inside the
// subvolume at path (their own children are not included).
func nestedSubvolumes(path string) ([]string, error) {
	fd, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	id, err := subvolumeID(fd)
	if err != nil {
		return nil, err
	}
	refs, err := childRefs(fd, id)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(refs))
	for _, r := range refs {
		dir, err := inodePath(fd, id, r.dirID)
		if err != nil {
			return nil, fmt.Errorf("directory of nested subvolume %d (%s): %w", r.id, r.name, err)
		}
		paths = append(paths, filepath.Join(path, dir, r.name))
	}
	return paths, nil
}

// subvolumeID returns the id of the subvolume fd is in: INO_LOOKUP of the
// subvolume root inode with tree id 0 fills in the tree id.
func subvolumeID(fd int) (uint64, error) {
	args := inoLookupArgs{ObjectID: firstFreeObjectID}
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(&args)); err != nil {
		return 0, fmt.Errorf("BTRFS_IOC_INO_LOOKUP (subvolume id): %w", err)
	}
	return args.TreeID, nil
}

// inodePath returns the path of directory ino relative to the root of
// subvolume tree; "" for the root itself.
func inodePath(fd int, tree, ino uint64) (string, error) {
	args := inoLookupArgs{TreeID: tree, ObjectID: ino}
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(&args)); err != nil {
		return "", fmt.Errorf("BTRFS_IOC_INO_LOOKUP tree %d inode %d: %w", tree, ino, err)
	}
	return parseInodePath(args.Name[:])
}

// parseInodePath decodes INO_LOOKUP's answer: a NUL-terminated relative path
// with a trailing slash, or empty for the subvolume root.
func parseInodePath(b []byte) (string, error) {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	if n == len(b) {
		return "", errors.New("INO_LOOKUP path is not NUL-terminated")
	}
	p := strings.TrimSuffix(string(b[:n]), "/")
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("INO_LOOKUP path %q is absolute, expected one relative to the subvolume", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." || c == "." {
			return "", fmt.Errorf("INO_LOOKUP path %q has a %q component", p, c)
		}
	}
	return p, nil
}

// childRefs lists the ROOT_REF items of subvolume parent with TREE_SEARCH,
// in pages, resuming after the last offset (child id) seen.
func childRefs(fd int, parent uint64) ([]childRef, error) {
	var args searchArgs
	var refs []childRef
	minOffset := uint64(0)
	for {
		args.Key = searchKey{
			TreeID:      rootTreeObjectID,
			MinObjectID: parent, MaxObjectID: parent,
			MinType: rootRefKey, MaxType: rootRefKey,
			MinOffset: minOffset, MaxOffset: math.MaxUint64,
			MaxTransID: math.MaxUint64,
			NrItems:    math.MaxUint32, // as many as fit in Buf
		}
		if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&args)); err != nil {
			return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH for children of subvolume %d: %w", parent, err)
		}
		if args.Key.NrItems == 0 {
			return refs, nil
		}
		var last uint64
		var err error
		refs, last, err = parseRootRefs(args.Buf[:], args.Key.NrItems, parent, refs)
		if err != nil {
			return nil, err
		}
		if last == math.MaxUint64 {
			return refs, nil
		}
		minOffset = last + 1
	}
}

// parseRootRefs appends the ROOT_REF items of parent among the n search
// results in buf to refs, and returns the offset of the last result.
func parseRootRefs(buf []byte, n uint32, parent uint64, refs []childRef) ([]childRef, uint64, error) {
	var last uint64
	for i := uint32(0); i < n; i++ {
		if len(buf) < searchHeaderSize {
			return refs, 0, fmt.Errorf("tree search result %d of %d: header truncated at %d bytes", i, n, len(buf))
		}
		objectID := binary.NativeEndian.Uint64(buf[8:])
		offset := binary.NativeEndian.Uint64(buf[16:])
		typ := binary.NativeEndian.Uint32(buf[24:])
		size := binary.NativeEndian.Uint32(buf[28:])
		buf = buf[searchHeaderSize:]
		if uint64(size) > uint64(len(buf)) {
			return refs, 0, fmt.Errorf("tree search result %d of %d: item of %d bytes, %d left", i, n, size, len(buf))
		}
		item := buf[:size]
		buf = buf[size:]
		last = offset
		if typ != rootRefKey || objectID != parent {
			continue
		}
		if len(item) < rootRefSize {
			return refs, 0, fmt.Errorf("ROOT_REF %d->%d: %d bytes, expected at least %d", parent, offset, len(item), rootRefSize)
		}
		nameLen := int(binary.LittleEndian.Uint16(item[16:]))
		if nameLen == 0 || nameLen > len(item)-rootRefSize {
			return refs, 0, fmt.Errorf("ROOT_REF %d->%d: name of %d bytes in an item of %d", parent, offset, nameLen, len(item))
		}
		name := string(item[rootRefSize : rootRefSize+nameLen])
		if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return refs, 0, fmt.Errorf("ROOT_REF %d->%d: name %q is not a directory entry", parent, offset, name)
		}
		refs = append(refs, childRef{id: offset, dirID: binary.LittleEndian.Uint64(item), name: name})
	}
	return refs, last, nil
}

// Subvolumes returns the paths of every subvolume below the subvolume at dir, at any depth,
// parents before their children. It reads the subvolume tree (ROOT_REF items) instead of walking
// directories, which on a full root file system takes seconds.
func Subvolumes(dir string) ([]string, error) {
	if ok, err := IsSubvolume(dir); err != nil {
		return nil, err
	} else if !ok {
		return nil, &NotSubvolumeError{Path: dir, Reason: "not the root of a subvolume (mount one, e.g. the top level with subvolid=5, and give its mount point)"}
	}
	var out []string
	queue := []string{dir}
	for len(queue) > 0 {
		kids, err := nestedSubvolumes(queue[0])
		if err != nil {
			return out, fmt.Errorf("subvolumes in %s: %w", queue[0], err)
		}
		queue = append(queue[1:], kids...)
		out = append(out, kids...)
	}
	return out, nil
}
