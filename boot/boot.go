// Package boot runs dockerinit's boot sequence: a list of named steps, read top to bottom, shared
// by `dockerinit` as PID 1 (which ends by switching root) and `dockerinit prepare` (which stops
// after the top layer and leaves mounting the root to the caller's initramfs).
package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/bootstate"
	"github.com/dockerinit/dockerinit/imagestore"
	"github.com/dockerinit/dockerinit/internal/safego"
	"github.com/dockerinit/dockerinit/kmod"
	"github.com/dockerinit/dockerinit/status"
	"github.com/dockerinit/dockerinit/switchroot"
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
	topLevelDir = "/mnt/top"      // the root file system whole (on btrfs its top level, subvolid=5)
	topLayerDir = "/mnt/toplayer" // a separate top layer device
	newRootDir  = "/mnt/root"     // the new root: the rw layer mounted, or the overlay over the image
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
	choice bootstate.Choice // the image of the list this boot takes, and why
	count  bootstate.Record // the boot counting record, when the boot counts
	report status.Report
	mounts []string // mounted by the steps, unmounted in reverse when they are undone
	start  time.Time

	steps []step
	next  int   // the step the next Run starts at
	marks []int // len(mounts) when each step last started: what rewinding to it unmounts

	links   chan scanned // the /dev/disk links being made, nil when none are
	devkmsg string       // printk_devkmsg as the kernel had it, restored before the switch

	removing chan struct{} // closed when the previous overlay rw layers are deleted

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
		// Before the parameters: the modules btrfs needs take the longest of the boot (raid6_pq's
		// benchmark), and loading them needs nothing the parameters say.
		{name: "start loading modules", run: s.startModules},
		{name: "read parameters", run: s.readParams},
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
			// The generators move /run into the new root: dockerinit status finds it there.
			step{name: "write boot.json", run: s.writeReport},
		)
	}
	return append(steps,
		// A device found twice there is checked again only by a new scan.
		step{name: "finish linking /dev/disk/by-*", run: s.finishLinks, retryFrom: "start linking /dev/disk/by-*"},
		step{name: "check init", run: s.checkInit},
		step{name: "count the try", run: s.countTry},
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
		if s.opts.Mode == Full {
			s.log.Infof("/init started") // the first line: how long the kernel's exec and Go's start-up took
		}
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
	line, ignored := bootparam.Seal(cfg.Boot.SealedCmdline, strings.TrimSpace(string(cmdline)))
	s.report.CmdlineSealed, s.report.Ignored = cfg.Boot.SealedCmdline != "", ignored
	s.p, err = bootparam.Resolve(cfg, legacy, line)
	if len(ignored) > 0 {
		// Said once, here: the boot loader's words cannot steer a signed image.
		s.log.Warnf("the kernel command line is sealed in the UKI: ignoring what the boot loader added: %s", strings.Join(ignored, " "))
	}
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
