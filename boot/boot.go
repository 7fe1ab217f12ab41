// Package boot runs dockerinit's boot sequence: a list of named steps, read top to bottom, shared
// by `dockerinit` as PID 1 (which ends by switching root) and `dockerinit prepare` (which stops
// after the top layer and leaves mounting the root to the caller's initramfs).
package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/imagestore"
	"github.com/dockerinit/dockerinit/internal/safego"
	"github.com/dockerinit/dockerinit/kmod"
	"github.com/dockerinit/dockerinit/status"
	"github.com/dockerinit/dockerinit/switchroot"
	"github.com/dockerinit/dockerinit/toplayer"
)

// Mode says how far the sequence goes.
type Mode int

const (
	// Full mounts the new root and switches to it (dockerinit as PID 1).
	Full Mode = iota
	// Prepare stops after the top layer (dockerinit prepare, inside another initramfs).
	Prepare
)

// Where the sequence mounts things inside the initramfs.
const (
	topLevelDir = "/mnt/top"      // btrfs top level (subvolid=5)
	topLayerDir = "/mnt/toplayer" // a separate top layer device
	newRootDir  = "/mnt/root"     // the rw layer, mounted as the new root
	configPath  = "/etc/dockerinit.toml"
	legacyPath  = "/etc/docker-btrfs.json" // the origin's configuration
	// prepareModulesRoot is never created: in Prepare mode, modules are the caller's business.
	prepareModulesRoot = "/run/dockerinit/no-modules"
)

// Started is when this process started, read as the program initializes: as PID 1, when the
// kernel ran /init.
var Started = switchroot.Now()

// Options are what the caller knows before the sequence starts.
type Options struct {
	Mode     Mode
	InitArgs []string // passed on to the real init
	Env      []string
	Log      *Logger
}

// Sequence is the boot sequence of one boot and what its steps found so far. After a failure
// the next Run resumes at the failed step: what the steps before it did (the root device found,
// the top level mounted, modules loading) stays, so a fix made in the rescue shell counts and a
// disk that came late is not searched for again.
type Sequence struct {
	opts   Options
	log    *Logger
	p      bootparam.Params
	dev    blockdev.Device
	img    imagestore.Image
	store  imagestore.Store
	report status.Report
	mounts []string // mounted by the steps, unmounted in reverse when they are undone
	start  time.Time

	steps []step
	next  int   // the step the next Run starts at
	marks []int // len(mounts) when each step last started: what rewinding to it unmounts

	links   chan scanned // the /dev/disk links being made, nil when none are
	devkmsg string       // printk_devkmsg as the kernel had it, restored before the switch

	modules    *kmod.Loader
	stopWatch  context.CancelFunc // ends the uevent watch that loads modules for new devices
	watchErr   chan error
	modulesRep kmod.Report
}

type step struct {
	name string
	run  func() error
	// retryFrom names the step a retry starts at when redoing this one alone would not do: a
	// top layer applied halfway needs a fresh rw layer. Empty: this step.
	retryFrom string
}

func (s *Sequence) stepList() []step {
	full := s.opts.Mode == Full
	steps := []step{
		{name: "mount /proc /sys /dev /run", run: s.mountAPI},
		{name: "read parameters", run: s.readParams},
		{name: "start loading modules", run: s.startModules},
		{name: "find root device", run: s.findRoot},
		{name: "wait for file system modules", run: s.waitForcedModules},
		{name: "wait for all btrfs devices", run: s.assembleRoot},
	}
	if full {
		steps = append(steps, step{name: "start linking /dev/disk/by-*", run: s.startLinks})
	}
	steps = append(steps,
		step{name: "mount root file system", run: s.mountTopLevel},
		step{name: "resolve image", run: s.resolveImage},
		step{name: "make rw layer", run: s.makeRWLayer},
		step{name: "apply top layer", run: s.applyTopLayer, retryFrom: "make rw layer"},
	)
	if !full {
		return append(steps,
			step{name: "release top level", run: s.releaseTopLevel},
			step{name: "finish loading modules", run: s.finishModules},
		)
	}
	return append(steps,
		// A device found twice there is checked again only by a new scan.
		step{name: "finish linking /dev/disk/by-*", run: s.finishLinks, retryFrom: "start linking /dev/disk/by-*"},
		step{name: "check init", run: s.checkInit},
		step{name: "mount new root", run: s.mountNewRoot},
		step{name: "finish loading modules", run: s.finishModules},
		step{name: "write boot.json", run: s.writeReport},
		// A switch that failed may have moved /dev and friends or emptied the initramfs
		// already: the retry starts over from the modules, with nothing of ours mounted.
		step{name: "switch root", run: s.switchRoot, retryFrom: "start loading modules"},
	)
}

// StepError says which step failed, and where a retry starts.
type StepError struct {
	Step    string
	RetryAt string
	Err     error
}

func (e *StepError) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// New returns the sequence for opts, not started.
func New(opts Options) *Sequence {
	s := &Sequence{opts: opts, log: opts.Log}
	s.steps = s.stepList()
	s.marks = make([]int, len(s.steps))
	return s
}

// Run runs the steps from the first one not done. In Full mode it ends by switching root and
// returns only on failure. In Prepare mode a nil error means the rw layer is ready.
func (s *Sequence) Run() (*status.Report, error) {
	if s.start.IsZero() {
		s.start = time.Now()
		s.report.StartedS = Started.Monotonic.Seconds()
	} else {
		s.log.Infof("retrying the boot from step %q", s.steps[s.next].name)
	}
	s.report.Steps = s.report.Steps[:s.next] // one entry a step done, in order
	for ; s.next < len(s.steps); s.next++ {
		st := s.steps[s.next]
		s.marks[s.next] = len(s.mounts)
		t0 := time.Now()
		s.log.Debugf("step: %s", st.name)
		if err := runStep(st); err != nil {
			at := s.next
			if st.retryFrom != "" {
				at = slices.IndexFunc(s.steps, func(o step) bool { return o.name == st.retryFrom })
			}
			s.rewind(at)
			return nil, &StepError{Step: st.name, RetryAt: s.steps[at].name, Err: err}
		}
		d := time.Since(t0)
		s.report.Steps = append(s.report.Steps, status.StepTime{Name: st.name, MS: ms(d)})
		s.log.Debugf("step %s took %v", st.name, d.Round(time.Microsecond))
	}
	s.report.TotalMS = ms(time.Since(s.start))
	return &s.report, nil
}

// runStep runs st; a bug that panics becomes a failure like any other, so the console still gets
// the explanation and the rescue prompt, and the step's mounts are undone.
func runStep(st step) (err error) {
	defer safego.Recover("running step "+st.name, &err)
	return st.run()
}

// rewind undoes the mounts of step i and of those after it, so that the next Run starts at i.
func (s *Sequence) rewind(i int) {
	s.unmountFrom(s.marks[i])
	s.next = i
}

// Abandon undoes everything the sequence mounted and stops loading modules: for a caller that
// gives up after a failure (dockerinit prepare exits).
func (s *Sequence) Abandon() {
	s.unmountFrom(0)
	s.stopModules()
}

// switchRoot hands over to the real init; systemd is told when the initramfs started, so that
// systemd-analyze counts the initramfs time.
func (s *Sequence) switchRoot() error {
	restoreDevkmsg(s.devkmsg) // the booted system's logging keeps the kernel's limit
	err := switchroot.Switch(newRootDir, s.p.Init, s.opts.InitArgs, s.opts.Env, Started)
	s.devkmsg = unlimitDevkmsg() // still here: the failure and the prompt must all be logged
	return err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// mountAPI mounts what the kernel does not: in prepare mode most are mounted already.
func (s *Sequence) mountAPI() error {
	for _, m := range []struct {
		dir, fstype string
		flags       uintptr
		data        string
	}{
		{"/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	} {
		if mounted(m.dir) {
			continue
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	if s.log == nil || !s.log.kmsg {
		s.log = NewLogger() // /dev/kmsg exists only now
	}
	if s.opts.Mode == Full && s.devkmsg == "" {
		s.devkmsg = unlimitDevkmsg()
	}
	return nil
}

func (s *Sequence) readParams() error {
	var cfg bootparam.Config
	if data, err := os.ReadFile(configPath); err == nil {
		if cfg, err = bootparam.DecodeConfig(data); err != nil {
			return fmt.Errorf("%w (in the initramfs: rebuild it with mkbootimg and a corrected --config, or override the key on the kernel command line)", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var legacy string
	if data, err := os.ReadFile(legacyPath); err == nil {
		if legacy, err = bootparam.DecodeLegacy(data); err != nil {
			return fmt.Errorf("%s: %w", legacyPath, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	s.p, err = bootparam.Resolve(cfg, legacy, strings.TrimSpace(string(cmdline)))
	// Debug and Rescue hold even when other parameters are wrong: that is when they are needed.
	s.log.Debug = s.p.Debug
	if err != nil {
		if s.p.Rescue {
			// The shell first, as asked; the boot still fails on these parameters afterwards.
			if rerr := Rescue(s.log, fmt.Sprintf("dockerinit.rescue: the boot parameters are wrong:\n%v", err)); rerr != nil {
				s.log.Warnf("rescue: %v", rerr)
			}
		}
		return err
	}
	for _, w := range s.p.Warnings {
		s.log.Warnf("%s", w)
	}
	s.log.Infof("booting image %s from root=%s subvol=%s docker_path=%s", s.p.Image, s.p.Root.Device, s.p.RWLayer, s.p.DockerPath)
	if s.p.Rescue {
		return Rescue(s.log, "dockerinit.rescue is on the kernel command line: here is the shell before anything is mounted.")
	}
	return nil
}

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

func (s *Sequence) findDevice(spec string) (blockdev.Device, error) {
	sp, err := blockdev.ParseSpec(spec)
	if err != nil {
		return blockdev.Device{}, err
	}
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
	for _, m := range []struct{ key, spec string }{{"root", s.p.Root.Device}, {"toplayer", s.p.TopLayer.Device}} {
		sp, err := blockdev.ParseSpec(m.spec)
		if m.spec == "" || err != nil || r.devs == nil {
			continue // no such device, or reported where it was looked for
		}
		if err := blockdev.Unique(sp, r.devs); err != nil {
			return fmt.Errorf("%s=%s: %w", m.key, m.spec, err)
		}
	}
	return nil
}

func (s *Sequence) findRoot() error {
	t0 := time.Now()
	dev, err := s.findDevice(s.p.Root.Device)
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

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func listDir(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	if len(entries) == 0 {
		return "(nothing)"
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ", ")
}

func (s *Sequence) applyTopLayer() error {
	tl := s.p.TopLayer
	if tl.Path == "" {
		s.log.Debugf("no toplayer_path: no top layer")
		return nil
	}
	base := topLevelDir
	sameDevice := tl.Device == "" || tl.Device == s.p.Root.Device
	if !sameDevice {
		dev, err := s.findDevice(tl.Device)
		if err != nil {
			return s.topLayerMissing(fmt.Errorf("toplayer=%s: %w", tl.Device, err))
		}
		if dev.Path == s.dev.Path {
			sameDevice = true
		} else {
			fstype := tl.FSType
			if fstype == "" {
				fstype = dev.FSType
			}
			s.loadFSModule(fstype, tl.Flags)
			if err := s.mount(dev.Path, topLayerDir, fstype, unix.MS_RDONLY, tl.Flags); err != nil {
				return s.topLayerMissing(err)
			}
			defer s.unmount(topLayerDir)
			base = topLayerDir
		}
	}
	src := filepath.Join(base, path.Clean("/"+tl.Path))
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		dev := tl.Device
		if dev == "" {
			dev = s.p.Root.Device
		}
		return s.topLayerMissing(fmt.Errorf("toplayer_path=%s: no such directory on %s, whose top level holds: %s",
			tl.Path, dev, listDir(base)))
	}
	st, err := toplayer.Apply(src, s.newRoot(), append(s.storeDirs(), filepath.Join(topLevelDir, s.p.RWLayer))...)
	if err != nil {
		return fmt.Errorf("apply top layer %s: %w", tl.Path, err)
	}
	n := st.Files + st.Dirs + st.Symlinks + st.Hardlinks + st.Specials + st.Whiteouts
	s.report.TopLayer, s.report.TopFiles = tl.Path, n
	shown := tl.Path
	if shown == "." { // toplayer_path=/, as bootparam cleans it
		shown = "/"
	}
	s.log.Infof("top layer %s applied: %d entries", shown, n)
	if len(st.Skipped) > 0 {
		s.log.Infof("top layer %s: left out %s (the rw layer and the image store are never copied into the root)", shown, strings.Join(st.Skipped, ", "))
	}
	for _, l := range st.ReplacedLinks {
		name, target, _ := strings.Cut(l, " -> ")
		s.log.Warnf("top layer %s: its directory /%s replaced the image's symlink /%s -> %s, and with it what the image has there; put those files under the link's target (%s) in the top layer instead",
			shown, name, name, target, target)
	}
	return nil
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

// topLayerMissing lets the boot go on without the top layer unless the configuration requires it.
func (s *Sequence) topLayerMissing(err error) error {
	if s.p.TopLayer.Required {
		return fmt.Errorf("%w\nthe top layer is required (required = true under [toplayer] in dockerinit.toml): make that folder, correct toplayer= and toplayer_path=, or rebuild the initramfs with --toplayer-required=false", err)
	}
	s.log.Warnf("%v; booting without the top layer (set toplayer required = true to stop instead)", err)
	return nil
}

func (s *Sequence) releaseTopLevel() error { return s.unmount(topLevelDir) }

func (s *Sequence) writeReport() error {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	r := &s.report
	r.Image, r.ImageID, r.ImageNames, r.Created = s.p.Image, s.img.ID, s.img.Names, s.img.Created
	r.ChainID, r.Layer, r.RWLayer, r.DockerPath = s.img.ChainID, s.img.Layer, s.p.RWLayer, s.p.DockerPath
	r.Store, r.RootKind, r.Layers = s.store.Kind(), s.img.Root.Kind.String(), len(s.img.Root.Layers)
	r.RootDevice, r.RootSpec, r.Init = s.dev.Path, s.p.Root.Device, s.p.Init
	r.Kernel = unix.ByteSliceToString(uts.Release[:])
	r.TotalMS = ms(time.Since(s.start)) // the file is written by the last step, before Run's total
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(status.BootJSON), 0o755); err != nil {
		return err
	}
	return os.WriteFile(status.BootJSON, append(data, '\n'), 0o644)
}

// mounted reports whether dir is a mount point (its device differs from its parent's).
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
