package boot

// Loading the kernel modules: what the initramfs always loads, the drivers for the devices
// present and those that come later, and the file systems the boot mounts.

import (
	"context"
	"errors"
	"strings"

	"github.com/dockerinit/dockerinit/internal/safego"
	"github.com/dockerinit/dockerinit/kmod"
)

// startModules starts loading what the initramfs always loads (btrfs and its dependencies), and,
// like udev's coldplug, the bundled drivers for the devices present and for those that appear
// later; the boot goes on meanwhile, and waits only where it needs a module.
func (s *Sequence) startModules() error {
	root := "/"
	if s.opts.Mode == Prepare {
		// Inside another generator's initramfs its udev and modprobe load the drivers (the hooks
		// add and load btrfs), and its /lib/modules has no dockerinit load plan: a root without
		// lib/modules gives a Loader that loads nothing, so the steps that ask it still work.
		root = prepareModulesRoot
	}
	s.stopModules() // a retry after a failed switch starts the loading over
	l, err := kmod.NewLoader(root)
	if err != nil {
		return err
	}
	s.modules = l
	l.LoadForced()
	ctx, cancel := context.WithCancel(context.Background())
	s.stopWatch, s.watchErr = cancel, make(chan error, 1)
	go func() { s.watchErr <- watch(ctx, l) }()
	l.Coldplug("/sys/devices")
	return nil
}

// watch loads modules for new devices until ctx ends.
func watch(ctx context.Context, l *kmod.Loader) (err error) {
	defer safego.Recover("loading modules for new devices", &err)
	return l.Watch(ctx)
}

// waitForcedModules waits for what the initramfs always loads, and the root file system's driver.
func (s *Sequence) waitForcedModules() error {
	r := s.modules.WaitForced()
	for _, name := range r.Failed {
		s.log.Warnf("module %s failed to load: %v", name, r.Errors[name])
	}
	s.loadFSModule(s.dev.FSType, s.p.Root.Flags)
	return nil
}

// finishModules ends the uevent watch and waits for every load in flight: switching root with
// a module still loading would leave its init running against a vanished initramfs.
func (s *Sequence) finishModules() error {
	r := s.stopModules()
	s.report.ModulesLoad = len(r.Loaded)
	for _, name := range r.Failed {
		s.log.Warnf("module %s failed to load: %v", name, r.Errors[name])
	}
	for _, err := range r.ScanErrors {
		s.log.Warnf("module coldplug: %v", err)
	}
	for _, name := range r.Absent {
		s.log.Debugf("module %s: no such hardware (%v)", name, r.Errors[name])
	}
	s.log.Debugf("modules: %d loaded, %d built in, %d for absent hardware", len(r.Loaded), len(r.Builtin), len(r.Absent))
	return nil
}

// stopModules cancels the watch and waits for the loads; it is safe to call more than once.
func (s *Sequence) stopModules() kmod.Report {
	if s.modules == nil {
		return s.modulesRep
	}
	s.stopWatch()
	s.modulesRep = s.modules.Wait()
	if err := <-s.watchErr; err != nil {
		s.log.Warnf("module loading for new devices: %v", err)
	}
	s.modules = nil
	return s.modulesRep
}

// loadFSModule loads the driver of a file system type; one the initramfs lacks may be built in,
// which the mount will tell.
func (s *Sequence) loadFSModule(fstype, flags string) {
	var nb *kmod.NotBundledError
	if err := s.modules.Load(fsModules(fstype, flags)...); err != nil && !errors.As(err, &nb) {
		s.log.Warnf("module for %s: %v", fstype, err)
	}
}

// fsModules names the modules a mount of fstype with the options flags needs: the file system's,
// and the character sets FAT and ISO 9660 look up by name at mount time, which the kernel cannot
// load itself in an initramfs without modprobe. Without codepage= or iocharset=, the defaults
// the kernel was configured with: 437, and ascii (Debian's FAT default), utf8 or iso8859-1.
func fsModules(fstype, flags string) []string {
	codepages, iocharsets := []string{"437"}, []string{"ascii", "utf8", "iso8859-1"}
	for o := range strings.SplitSeq(flags, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "codepage":
			codepages = []string{v}
		case "iocharset":
			iocharsets = []string{v}
		}
	}
	mods := []string{"fs-" + fstype}
	switch fstype {
	case "vfat", "msdos":
		for _, c := range codepages {
			mods = append(mods, "nls_cp"+c)
		}
	case "iso9660":
	default:
		return mods
	}
	for _, c := range iocharsets {
		mods = append(mods, "nls_"+c)
	}
	return mods
}
