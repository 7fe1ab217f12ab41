package kmod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/safego"
	"github.com/dockerinit/dockerinit/internal/uevent"
	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// Loader loads the modules of the initramfs's load plan for the running kernel: the forced ones
// when told to, the optional ones for devices (Coldplug, Watch) or by name (Load). Every module is
// loaded at most once, in its own goroutine, after the modules it depends on; its methods are
// safe to call from several goroutines. Module parameters come from <root>/proc/cmdline
// ("module.param=value"), as modprobe would pass them, and modprobe.blacklist= keeps modules from
// being loaded for a device or an alias (not when named, nor as a dependency), as with modprobe.
type Loader struct {
	root, kver string
	load       loadFunc
	born       time.Time

	plan      []modindex.Entry
	index     map[string]int   // plan position by module name
	aliases   []modindex.Alias // of plan modules, for Load
	devices   []modindex.Alias // of loadable modules not blacklisted, for modaliases
	params    map[string]string
	blacklist map[string]bool
	cpuOnly   map[string][]string // module -> its cpu: alias patterns, for modules that have some
	cpu       string              // the CPU's modalias ("" when unknown)

	mu         sync.Mutex
	idle       *sync.Cond      // broadcast when busy drops or a Watch returns
	jobs       []*job          // by plan position, nil until started
	busy       int             // jobs and coldplug scans in flight
	seen       map[string]bool // device modaliases already matched
	noDriver   []string        // of them, storage devices no plan module matches
	scanErrs   []error
	sysDevices string // of the last Coldplug, scanned again when uevents were lost

	events    io.ReadCloser // the uevent socket, opened before the first scan so no device is missed
	eventsErr error         // why it could not be opened
	watched   bool
	watchCtx  context.Context // of the running Watch, whose events can start loads
}

// job is the loading of one module. Its fields are set before done is closed.
type job struct {
	done   chan struct{}
	err    error
	absent bool
	end    time.Time
}

// NewLoader reads the load plan of the running kernel from <root>/lib/modules/<uname -r>/ and
// opens the uevent socket that Watch reads. An initramfs without any lib/modules (a kernel with
// everything built in) gives a Loader that loads nothing. Modules only for another kernel give a
// *KernelMismatchError; a damaged plan an error that says to rebuild the initramfs.
func NewLoader(root string) (*Loader, error) {
	kver, err := runningKernel()
	if err != nil {
		return nil, err
	}
	l, err := newLoader(root, kver, finitModule)
	if err != nil {
		return nil, err
	}
	if len(l.devices) > 0 {
		// Kept apart so that a failed Open leaves l.events a nil interface, not a nil *os.File.
		if f, err := uevent.Open(); err != nil {
			l.eventsErr = err
		} else {
			l.events = f
		}
	}
	return l, nil
}

func newLoader(root, kver string, load loadFunc) (*Loader, error) {
	l := &Loader{root: root, kver: kver, load: load, born: time.Now(), index: map[string]int{}, seen: map[string]bool{}}
	l.idle = sync.NewCond(&l.mu)
	plan, err := readPlan(root, kver)
	if err != nil {
		return nil, err
	}
	if plan == nil {
		return l, nil
	}
	aliases, err := readAliases(root, kver)
	if err != nil {
		return nil, fmt.Errorf("module aliases: %w", err)
	}
	l.plan, l.jobs = plan, make([]*job, len(plan))
	for i, e := range plan {
		l.index[e.Name] = i
	}
	if b, err := os.ReadFile(filepath.Join(root, "sys/devices/system/cpu/modalias")); err == nil {
		l.cpu = modindex.Name(strings.TrimSpace(string(b)))
	}
	args := readCmdline(filepath.Join(root, "proc/cmdline"))
	l.params, l.blacklist = moduleParams(args), blacklist(args)
	for _, a := range aliases {
		i, ok := l.index[a.Module]
		if !ok {
			continue
		}
		if strings.HasPrefix(a.Pattern, "cpu:") {
			if l.cpuOnly == nil {
				l.cpuOnly = map[string][]string{}
			}
			l.cpuOnly[a.Module] = append(l.cpuOnly[a.Module], a.Pattern)
		}
		l.aliases = append(l.aliases, a)
		if plan[i].Path != modindex.Builtin && !l.blacklist[a.Module] {
			l.devices = append(l.devices, a)
		}
	}
	return l, nil
}

// LoadForced starts loading the forced modules of the plan and returns at once.
func (l *Loader) LoadForced() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.plan {
		if e.Forced {
			l.startLocked(i)
		}
	}
}

// WaitForced starts the forced modules if LoadForced did not, and waits until each has loaded
// or failed. The report is about them only.
func (l *Loader) WaitForced() Report {
	l.LoadForced()
	l.mu.Lock()
	jobs := slices.Clone(l.jobs)
	l.mu.Unlock()
	isForced := func(i int) bool { return l.plan[i].Forced }
	for i, j := range jobs {
		if isForced(i) {
			<-j.done
		}
	}
	return l.report(jobs, isForced, nil)
}

// Load loads the modules named, by module name or alias ("vfat", "fs-vfat"; '-' and '_' are
// equal), with what they need, and waits for them. An alias stands for every bundled module it
// matches that modprobe.blacklist= does not exclude; a built-in module needs nothing. Names with
// no such module give a *NotBundledError; modules that did not load give their errors, joined.
func (l *Loader) Load(names ...string) error {
	var unknown []string
	var want []int
	for _, n := range names {
		mods := l.resolve(n)
		if mods == nil {
			unknown = append(unknown, n)
		}
		want = append(want, mods...)
	}
	slices.Sort(want)
	want = slices.Compact(want)
	jobs := l.start(want)
	var errs []error
	if unknown != nil {
		errs = append(errs, &NotBundledError{Names: unknown, Kver: l.kver})
	}
	for k, j := range jobs {
		if <-j.done; j.err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", l.plan[want[k]].Name, j.err))
		}
	}
	return errors.Join(errs...)
}

// resolve returns the plan positions name stands for, as modprobe looks: the module of that name,
// else every module with a matching alias.
func (l *Loader) resolve(name string) []int {
	name = modindex.Name(name)
	if i, ok := l.index[name]; ok {
		return []int{i}
	}
	var out []int
	for _, a := range l.aliases {
		if !l.blacklist[a.Module] && modindex.Match(a.Pattern, name) {
			out = append(out, l.index[a.Module])
		}
	}
	return out
}

// Wait waits for every load and coldplug scan started so far, and, when the context of a
// running Watch is done, for that Watch to return (so no uevent can start another load). Call it
// after cancelling Watch and before switch_root: loading must not race the switch. The report is
// about every module started since NewLoader.
func (l *Loader) Wait() Report {
	l.mu.Lock()
	for l.busy > 0 || (l.watchCtx != nil && l.watchCtx.Err() != nil) {
		l.idle.Wait()
	}
	jobs, scanErrs := slices.Clone(l.jobs), slices.Clone(l.scanErrs)
	l.mu.Unlock()
	return l.report(jobs, func(int) bool { return true }, scanErrs)
}

// start starts loading the plan entries at positions want and returns their jobs. The deferred
// Unlock keeps a panic, which the caller's recover may survive, from leaving the loader locked.
func (l *Loader) start(want []int) []*job {
	l.mu.Lock()
	defer l.mu.Unlock()
	jobs := make([]*job, len(want))
	for k, i := range want {
		jobs[k] = l.startLocked(i)
	}
	return jobs
}

// startLocked starts loading plan entry i, and what it depends on, unless already started.
func (l *Loader) startLocked(i int) *job {
	if j := l.jobs[i]; j != nil {
		return j
	}
	e := l.plan[i]
	j := &job{done: make(chan struct{})}
	l.jobs[i] = j
	hard := make([]*job, len(e.Deps))
	for k, d := range e.Deps {
		hard[k] = l.startLocked(l.index[d])
	}
	soft := make([]*job, len(e.Soft))
	for k, d := range e.Soft {
		soft[k] = l.startLocked(l.index[d])
	}
	l.busy++
	go func() {
		for _, s := range soft {
			<-s.done
		}
		j.absent, j.err = l.loadEntry(e, hard)
		j.end = time.Now()
		close(j.done)
		l.mu.Lock()
		l.busy--
		l.idle.Broadcast()
		l.mu.Unlock()
	}()
	return j
}

// loadEntry loads one module once the modules it depends on are in the kernel, loaded or still
// running their init: the kernel holds a module whose dependency is initializing until that
// finishes, before it resolves its symbols. Starting then overlaps reading, checking and
// relocating this module with the dependency's init, as btrfs's 4 MB with raid6_pq's benchmark of
// its algorithms, which takes a quarter of a second whatever the CPU. A failed dependency makes
// the module fail too, and an absent one makes it absent. A panic is the module's error, so that
// the report has it and its job still ends (Wait would hang) instead of PID 1 dying.
func (l *Loader) loadEntry(e modindex.Entry, hard []*job) (absent bool, err error) {
	defer safego.Recover("loading module "+e.Name, &err)
	for k, h := range hard {
		l.waitRegistered(e.Deps[k], h)
	}
	if derr := depFailed(e, hard); derr != nil {
		return derr.absent, derr
	}
	if e.Path == modindex.Builtin || isLoaded(l.root, e.Name) {
		return false, nil
	}
	if !l.cpuHasFeature(e.Name) {
		return true, errors.New("skipped: the CPU lacks the feature it is for")
	}
	err = l.load(filepath.Join(l.root, "lib/modules", l.kver, e.Path), l.moduleParams(e))
	if err == nil || errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	// A dependency whose init failed while this load waited for it explains the failure better.
	for _, h := range hard {
		<-h.done
	}
	if derr := depFailed(e, hard); derr != nil {
		return derr.absent, derr
	}
	return isAbsent(err), fmt.Errorf("load %s: %w", e.Path, err)
}

// moduleParams are the parameters e is loaded with: the command line's, and the kernel's
// async_probe unless the command line sets it. For a driver, finit_module then returns without
// waiting for its probe (AHCI finding its SATA links and a CD drive, say), which the boot need not
// wait for: it waits for the devices it needs by their uevents, and the probes go on in the kernel
// across the switch of root. For any module, forced ones (btrfs) too, it also spares the
// async_synchronize_full that finit_module otherwise runs after the module's init, which waits
// for every probe in flight in the kernel, the other drivers' included: about 0.17 s of AHCI
// under QEMU's q35 before btrfs could mount.
func (l *Loader) moduleParams(e modindex.Entry) string {
	p := l.params[e.Name]
	if strings.Contains(p, "async_probe") {
		return p
	}
	return strings.TrimSpace(p + " async_probe")
}

// cpuHasFeature reports whether the CPU has a feature the module is for, as udev would match its
// cpu: aliases (crc32c_intel: SSE4.2), so that forced and soft-dependency loads skip modules whose
// load the kernel would only refuse (ENODEV) after reading and relocating them. A module without
// cpu: aliases, or an unknown CPU, is loaded.
func (l *Loader) cpuHasFeature(name string) bool {
	patterns := l.cpuOnly[name]
	if len(patterns) == 0 || l.cpu == "" {
		return true
	}
	return slices.ContainsFunc(patterns, func(p string) bool { return modindex.Match(p, l.cpu) })
}

// waitRegistered waits until module dep, loaded by job h, has its initstate in sysfs, which the
// kernel makes once the module's symbols can be found, just before its init runs; or until h is
// done (a built-in module, or a failure).
func (l *Loader) waitRegistered(dep string, h *job) {
	tick := time.NewTicker(2 * time.Millisecond) // sysfs cannot be watched; the wait is short
	defer tick.Stop()
	for !isLoaded(l.root, dep) {
		select {
		case <-h.done:
			return
		case <-tick.C:
		}
	}
}

// depError says that a module was not loaded because of a dependency.
type depError struct {
	dep, what string
	absent    bool
}

func (e *depError) Error() string { return fmt.Sprintf("skipped: dependency %s %s", e.dep, e.what) }

// depFailed returns the first of e's hard dependencies whose job is done and failed, or nil.
func depFailed(e modindex.Entry, hard []*job) *depError {
	for k, h := range hard {
		select {
		case <-h.done:
		default:
			continue // registered and still loading
		}
		if h.err != nil {
			what := "failed"
			if h.absent {
				what = "is absent"
			}
			return &depError{dep: e.Deps[k], what: what, absent: h.absent}
		}
	}
	return nil
}

// report tells what the done jobs at the picked plan positions did.
func (l *Loader) report(jobs []*job, pick func(int) bool, scanErrs []error) Report {
	rep := Report{ScanErrors: scanErrs}
	var last time.Time
	for i, j := range jobs {
		if j == nil || !pick(i) {
			continue
		}
		name := l.plan[i].Name
		if j.end.After(last) {
			last = j.end
		}
		switch {
		case j.err != nil:
			if j.absent {
				rep.Absent = append(rep.Absent, name)
			} else {
				rep.Failed = append(rep.Failed, name)
			}
			if rep.Errors == nil {
				rep.Errors = map[string]error{}
			}
			rep.Errors[name] = j.err
		case l.plan[i].Path == modindex.Builtin:
			rep.Builtin = append(rep.Builtin, name)
		default:
			rep.Loaded = append(rep.Loaded, name)
		}
	}
	if !last.IsZero() {
		rep.Duration = last.Sub(l.born)
	}
	return rep
}
