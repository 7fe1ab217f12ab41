// Package kmod owns loading kernel modules at boot: it runs the load plan that kmod/modtree wrote
// into the initramfs, every module in its own goroutine after its dependencies, with
// finit_module, and loads bundled modules for devices by modalias (coldplug). It imports only the
// standard library and x/sys so PID 1 stays small; building the bundle lives in kmod/modtree.
package kmod

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// Report says what a load did, module names in plan order.
type Report struct {
	Loaded   []string         // loaded now, or already loaded before (EEXIST, or present in /sys/module)
	Builtin  []string         // compiled into the kernel: nothing to load
	Failed   []string         // failed to load, or skipped because a dependency failed
	Errors   map[string]error // why each Failed module failed
	Duration time.Duration
}

// KernelMismatchError says the initramfs carries modules for another kernel than the one running.
type KernelMismatchError struct {
	Running string // uname -r
	Built   string // the kernel version(s) the initramfs was built for, comma-separated
}

func (e *KernelMismatchError) Error() string {
	return fmt.Sprintf("the initramfs holds modules for kernel %s but kernel %s is running: "+
		"rebuild the initramfs with mkbootimg from the image whose kernel booted, and boot that image's vmlinuz with it",
		e.Built, e.Running)
}

// loadFunc loads one module file with the given parameters; tests replace finitModule.
type loadFunc func(path, params string) error

// LoadAll runs the load plan of the running kernel from <root>/lib/modules/<uname -r>/.
// Module parameters come from <root>/proc/cmdline ("module.param=value"), as modprobe would pass
// them. An initramfs without any lib/modules is fine (a kernel with everything built in): the
// report is empty. Modules only for another kernel give a *KernelMismatchError. Per-module
// failures are in the report; the error is for problems with the plan itself.
func LoadAll(root string) (Report, error) {
	kver, err := runningKernel()
	if err != nil {
		return Report{}, err
	}
	return loadAll(root, kver, finitModule)
}

func loadAll(root, kver string, load loadFunc) (Report, error) {
	start := time.Now()
	plan, err := readPlan(root, kver)
	if err != nil || plan == nil {
		return Report{}, err
	}
	rep := run(root, kver, plan, nil, load)
	rep.Duration = time.Since(start)
	return rep, nil
}

// readPlan returns nil, nil when the initramfs has no modules at all.
func readPlan(root, kver string) ([]modindex.Entry, error) {
	modules := filepath.Join(root, "lib/modules")
	if _, err := os.Stat(filepath.Join(modules, kver)); errors.Is(err, fs.ErrNotExist) {
		ents, rerr := os.ReadDir(modules)
		if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, fmt.Errorf("list %s: %w", modules, rerr)
		}
		var built []string
		for _, e := range ents {
			if e.IsDir() {
				built = append(built, e.Name())
			}
		}
		if len(built) == 0 {
			return nil, nil
		}
		return nil, &KernelMismatchError{Running: kver, Built: strings.Join(built, ", ")}
	}
	p := filepath.Join(modules, kver, modindex.PlanFile)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open module load plan: %w (the initramfs was not built by mkbootimg, or is damaged: rebuild it)", err)
	}
	defer f.Close()
	plan, err := modindex.ParsePlan(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return plan, nil
}

// run loads the plan entries selected by want (all when want is nil) and the entries they depend
// on. Each module gets a goroutine that waits for its dependencies, hard and soft; one that fails
// makes the modules that need it (hard) fail too, and leaves the others alone.
func run(root, kver string, plan []modindex.Entry, want map[string]bool, load loadFunc) Report {
	byName := make(map[string]modindex.Entry, len(plan))
	for _, e := range plan {
		byName[e.Name] = e
	}
	if want != nil {
		want = withDeps(byName, want)
	}
	params := moduleParams(readCmdline(filepath.Join(root, "proc/cmdline")))
	type result struct {
		done chan struct{}
		err  error
	}
	results := make(map[string]*result, len(plan))
	for _, e := range plan {
		if want == nil || want[e.Name] {
			results[e.Name] = &result{done: make(chan struct{})}
		}
	}
	var wg sync.WaitGroup
	for _, e := range plan {
		r := results[e.Name]
		if r == nil {
			continue
		}
		wg.Go(func() {
			defer close(r.done)
			for _, d := range e.Soft {
				<-results[d].done
			}
			for _, d := range e.Deps {
				dr := results[d]
				<-dr.done
				if dr.err != nil {
					r.err = fmt.Errorf("skipped: dependency %s failed", d)
					return
				}
			}
			if e.Path == modindex.Builtin || isLoaded(root, e.Name) {
				return
			}
			err := load(filepath.Join(root, "lib/modules", kver, e.Path), params[e.Name])
			if err != nil && !errors.Is(err, unix.EEXIST) {
				r.err = fmt.Errorf("load %s: %w", e.Path, err)
			}
		})
	}
	wg.Wait()
	var rep Report
	for _, e := range plan {
		r := results[e.Name]
		switch {
		case r == nil:
		case r.err != nil:
			rep.Failed = append(rep.Failed, e.Name)
			if rep.Errors == nil {
				rep.Errors = map[string]error{}
			}
			rep.Errors[e.Name] = r.err
		case e.Path == modindex.Builtin:
			rep.Builtin = append(rep.Builtin, e.Name)
		default:
			rep.Loaded = append(rep.Loaded, e.Name)
		}
	}
	return rep
}

// withDeps returns want plus everything its modules depend on, directly or not.
func withDeps(byName map[string]modindex.Entry, want map[string]bool) map[string]bool {
	all := map[string]bool{}
	var add func(string)
	add = func(n string) {
		if all[n] {
			return
		}
		all[n] = true
		for _, d := range slices.Concat(byName[n].Deps, byName[n].Soft) {
			add(d)
		}
	}
	for n := range want {
		add(n)
	}
	return all
}

// isLoaded reports whether the kernel already has the module; initstate exists only for loaded
// modules, not for built-in ones. Asking first spares the kernel reading the file again.
func isLoaded(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "sys/module", name, "initstate"))
	return err == nil
}

func runningKernel() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// finitModule hands the file to the kernel by descriptor, so the kernel reads it (and checks its
// signature against the file) without the module passing through our memory.
func finitModule(path, params string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	return unix.FinitModule(fd, params, 0)
}
