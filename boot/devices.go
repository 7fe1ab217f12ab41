package boot

// Finding the devices: the root file system (all of a multi-device btrfs), and the
// /dev/disk links the booted system expects.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/internal/safego"
)

// findDevice waits for the device sp names, parsed by bootparam.
func (s *Sequence) findDevice(sp blockdev.Spec) (blockdev.Device, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.p.Timeout)
	defer cancel()
	d, err := blockdev.Find(ctx, sp)
	var nf *blockdev.NotFoundError
	if errors.As(err, &nf) {
		nf.NoDriver = s.modules.NoDriver()
	}
	return d, err
}

// assembleRoot waits until the kernel knows every device of a multi-device btrfs root (a RAID1
// over two disks), within the device timeout; rootflags=degraded boots without the missing ones.
func (s *Sequence) assembleRoot() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.p.Timeout)
	defer cancel()
	err := blockdev.AssembleBtrfs(ctx, s.dev)
	var inc *blockdev.IncompleteError
	if !errors.As(err, &inc) {
		return err
	}
	inc.NoDriver = s.modules.NoDriver()
	if slices.Contains(strings.Split(s.p.Root.Flags, ","), "degraded") {
		s.log.Warnf("rootflags has degraded: mounting anyway. %v", err)
		return nil
	}
	return fmt.Errorf("root=%s: %w", s.p.Root.Device, err)
}

// startLinks starts making /dev/disk/by-{uuid,label,partuuid,partlabel} as udev would, for the
// booted system's fstab and tools until its own udev runs (/dev moves into the new root). In the
// background: opening an optical drive alone takes a fifth of a second under QEMU, and the boot
// needs none of the links.
func (s *Sequence) startLinks() error {
	s.finishLinks() // a retry's earlier run
	done := make(chan scanned, 1)
	s.links = done
	go func() { done <- scanLinks() }()
	return nil
}

// scanLinks scans the block devices and makes their links.
func scanLinks() (r scanned) {
	defer safego.Recover("making the /dev/disk links", &r.err)
	if r.devs, r.err = blockdev.Scan("/sys/class/block", "/dev"); r.err == nil {
		r.err = blockdev.Links("/dev", r.devs)
	}
	return r
}

// scanned is what the links step found: every block device, and what went wrong making links.
type scanned struct {
	devs []blockdev.Device
	err  error
}

// finishLinks waits for the links, whose failure is not worth failing the boot over; and checks
// again, among the devices there now, that root= and toplayer= each name one file system: a USB
// stick slower than the disk was not there yet when the device was found.
func (s *Sequence) finishLinks() error {
	if s.links == nil {
		return nil
	}
	r := <-s.links
	s.links = nil
	if r.err != nil {
		s.log.Warnf("/dev/disk links: %v", r.err)
	}
	for _, m := range []struct {
		key string
		dev bootparam.Mount
	}{{"root", s.p.Root}, {"toplayer", s.p.TopLayer.Mount}} {
		if m.dev.Device == "" || r.devs == nil {
			continue // no such device, or reported where it was looked for
		}
		if err := blockdev.Unique(m.dev.Spec, r.devs); err != nil {
			return fmt.Errorf("%s=%s: %w", m.key, m.dev.Device, err)
		}
	}
	return nil
}

func (s *Sequence) findRoot() error {
	t0 := time.Now()
	dev, err := s.findDevice(s.p.Root.Spec)
	if err != nil {
		return fmt.Errorf("root=%s: %w", s.p.Root.Device, err)
	}
	switch {
	case dev.FSType == "" && s.p.Root.FSType == "":
		return fmt.Errorf("root=%s is %s, whose file system type cannot be read; give rootfstype=btrfs, ext4 or xfs", s.p.Root.Device, dev.Path)
	case dev.FSType == "":
		dev.FSType = s.p.Root.FSType
	case s.p.Root.FSType != "" && dev.FSType != s.p.Root.FSType:
		return fmt.Errorf("root=%s is %s, a %s file system, but rootfstype=%s: fix root= or rootfstype= (see blkid)", s.p.Root.Device, dev.Path, dev.FSType, s.p.Root.FSType)
	case !rootFSOK(dev.FSType):
		return fmt.Errorf("root=%s is %s, a %s file system; dockerinit needs the btrfs, ext4 or xfs file system that holds the image store: fix root= (see blkid)", s.p.Root.Device, dev.Path, dev.FSType)
	}
	s.dev = dev
	s.log.Infof("root device %s (%s) found after %v", dev.Path, s.p.Root.Device, time.Since(t0).Round(time.Millisecond))
	return nil
}
