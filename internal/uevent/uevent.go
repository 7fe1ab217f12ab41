// Package uevent owns the kernel's device announcements: the netlink socket on which the kernel
// broadcasts a uevent whenever a device comes, changes or goes, and the parsing of its messages.
// blockdev waits on it for disks and kmod for devices that need a module, as udev would.
package uevent

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Event is the part of a uevent dockerinit acts on.
type Event struct {
	Action    string // add, change, remove, bind, ...
	Subsystem string // block, pci, virtio, ...
	Modalias  string // what module matches the device, if any
}

// Open subscribes to the kernel's own broadcast (netlink group 1; udev's re-broadcast is group 2).
// The socket is non-blocking, so it goes through Go's poller and Close unblocks a Read. A read
// that fails with ENOBUFS means events were lost: the reader should rescan sysfs.
func Open() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("open uevent socket: %w", err)
	}
	// Loading modules sends bursts of events; a larger buffer makes overruns rarer. Best effort:
	// the default works too.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind uevent socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "uevent socket"), nil
}

// Parse reads a kernel uevent, "ACTION@DEVPATH\0KEY=VALUE\0...".
func Parse(msg []byte) Event {
	var e Event
	header, rest, _ := bytes.Cut(msg, []byte{0})
	if a, _, ok := bytes.Cut(header, []byte("@")); ok {
		e.Action = string(a)
	}
	for field := range bytes.SplitSeq(rest, []byte{0}) {
		k, v, _ := bytes.Cut(field, []byte("="))
		switch string(k) {
		case "ACTION":
			e.Action = string(v)
		case "SUBSYSTEM":
			e.Subsystem = string(v)
		case "MODALIAS":
			e.Modalias = string(v)
		}
	}
	return e
}
