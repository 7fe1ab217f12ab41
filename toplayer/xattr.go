package toplayer

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// node is an entry whose xattrs are read or written: an open fd, or, for
// symlinks and device nodes, which cannot be opened for that, a path through
// /proc/self/fd/<its directory fd>, used with the l*xattr calls so that its
// last component is never followed. The initramfs mounts /proc first thing.
type node struct {
	fd   int
	path string
}

func procNode(dirFd int, name string) node {
	return node{path: "/proc/self/fd/" + strconv.Itoa(dirFd) + "/" + name}
}

// xattrBufs are reused across entries: most files have no xattrs and cost
// one listxattr into srcList.
type xattrBufs struct {
	srcList, dstList, value []byte
}

// copyXattrs sets every xattr of in on out (user.*, trusted.*, security.*,
// system.* ACLs alike); one the destination refuses is an error, never
// skipped. prune removes the xattrs out has and in lacks.
func (a *applier) copyXattrs(in, out node, prune bool) error {
	list, err := listXattrs(in, &a.xattrs.srcList)
	if err != nil {
		return fmt.Errorf("list xattrs of the top layer's file: %w%s", err, procHint(in, err))
	}
	for rest := list; len(rest) > 0; {
		var name string
		name, rest = nextName(rest)
		value, err := getXattr(in, name, &a.xattrs.value)
		if err != nil {
			return fmt.Errorf("read xattr %s: %w", name, err)
		}
		if out.path != "" {
			err = unix.Lsetxattr(out.path, name, value, 0)
		} else {
			err = unix.Fsetxattr(out.fd, name, value, 0)
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: the new root's file system refused it: %w", name, err)
		}
	}
	if !prune {
		return nil
	}
	have, err := listXattrs(out, &a.xattrs.dstList)
	if err != nil {
		return fmt.Errorf("list xattrs: %w", err)
	}
	for len(have) > 0 {
		var name string
		name, have = nextName(have)
		if hasName(list, name) {
			continue
		}
		if out.path != "" {
			err = unix.Lremovexattr(out.path, name)
		} else {
			err = unix.Fremovexattr(out.fd, name)
		}
		if err != nil {
			return fmt.Errorf("remove xattr %s the top layer does not have: %w", name, err)
		}
	}
	return nil
}

func procHint(n node, err error) string {
	if n.path != "" && errors.Is(err, unix.ENOENT) {
		return " (is /proc mounted?)"
	}
	return ""
}

// nextName splits the first name off a listxattr list of NUL-terminated names.
func nextName(list []byte) (string, []byte) {
	i := bytes.IndexByte(list, 0)
	if i < 0 {
		return string(list), nil
	}
	return string(list[:i]), list[i+1:]
}

func hasName(list []byte, name string) bool {
	for len(list) > 0 {
		var n string
		n, list = nextName(list)
		if n == name {
			return true
		}
	}
	return false
}

// listXattrs lists n's xattr names into *buf, growing it as needed. A file
// system without xattrs has none.
func listXattrs(n node, buf *[]byte) ([]byte, error) {
	if *buf == nil {
		*buf = make([]byte, 256) // grown on ERANGE; most values are a label or a capability
	}
	for {
		var size int
		var err error
		if n.path != "" {
			size, err = unix.Llistxattr(n.path, *buf)
		} else {
			size, err = unix.Flistxattr(n.fd, *buf)
		}
		switch {
		case err == nil:
			return (*buf)[:size], nil
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case !errors.Is(err, unix.ERANGE):
			return nil, err
		}
		if n.path != "" {
			size, err = unix.Llistxattr(n.path, nil)
		} else {
			size, err = unix.Flistxattr(n.fd, nil)
		}
		if err != nil {
			return nil, err
		}
		*buf = make([]byte, size+size/2)
	}
}

// getXattr reads xattr name of n into *buf, growing it as needed.
func getXattr(n node, name string, buf *[]byte) ([]byte, error) {
	if *buf == nil {
		*buf = make([]byte, 256) // grown on ERANGE; most values are a label or a capability
	}
	for {
		var size int
		var err error
		if n.path != "" {
			size, err = unix.Lgetxattr(n.path, name, *buf)
		} else {
			size, err = unix.Fgetxattr(n.fd, name, *buf)
		}
		if err == nil {
			return (*buf)[:size], nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, err
		}
		if n.path != "" {
			size, err = unix.Lgetxattr(n.path, name, nil)
		} else {
			size, err = unix.Fgetxattr(n.fd, name, nil)
		}
		if err != nil {
			return nil, err
		}
		*buf = make([]byte, size+size/2)
	}
}
