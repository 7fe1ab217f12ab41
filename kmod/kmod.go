// Package kmod owns loading kernel modules at boot: it runs the load plan that kmod/modtree wrote
// into the initramfs with finit_module, every module once, in its own goroutine after its
// dependencies. A Loader loads the plan's forced modules at once and the optional ones when a
// device's modalias asks for them (a sysfs scan, then netlink uevents) or a caller names them. It
// imports only the standard library and x/sys so PID 1 stays small; building the bundle lives in
// kmod/modtree.
package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/smallfile"
	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// Report says what a loader did, module names in plan order.
type Report struct {
	Loaded  []string // loaded now, or already loaded before (EEXIST, or present in /sys/module)
	Builtin []string // compiled into the kernel: nothing to load
	// Absent modules refused to load with ENODEV or ENXIO, or need one that did: the hardware or
	// CPU feature they drive is not there (crc32c_intel on a CPU without SSE4.2). Forced modules
	// too: btrfs's soft dependencies include such CPU-specific ones. Not worth a warning at boot.
	Absent []string
	Failed []string         // failed to load, or skipped because a dependency failed
	Errors map[string]error // why each Absent and Failed module did not load
	// ScanErrors are coldplug scans of sysfs that could not be done: modules for the devices
	// there may be missing.
	ScanErrors []error
	Duration   time.Duration // from NewLoader until the last of these modules was done
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

// NotBundledError lists names that Load was asked for and the initramfs has no module or alias
// for (or only for modules that modprobe.blacklist= excludes).
type NotBundledError struct {
	Names []string
	Kver  string
}

func (e *NotBundledError) Error() string {
	return fmt.Sprintf("the initramfs has no module or alias named %s for kernel %s (or modprobe.blacklist= excludes it): "+
		"if the kernel does not build it in, rebuild the initramfs with mkbootimg --add-module %s",
		strings.Join(e.Names, ", "), e.Kver, strings.Join(e.Names, " --add-module "))
}

// loadFunc loads one module file with the given parameters; tests replace finitModule.
type loadFunc func(path, params string) error

// The largest plan and modules.alias read: some 100 bytes a module, and a generic kernel has about
// 6,000 modules. Both come from the initramfs, which mkbootimg wrote; the limit and the check that
// they are regular files only keep a damaged one from hanging the boot or filling its memory.
const (
	planLimit    = 4 << 20
	aliasesLimit = 16 << 20
)

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
	dir := filepath.Join(modules, kver)
	b, err := smallfile.Read(os.DirFS(dir), modindex.PlanFile, planLimit)
	if err != nil {
		return nil, fmt.Errorf("open module load plan in %s: %w (the initramfs was not built by mkbootimg, or is damaged: rebuild it)", dir, err)
	}
	plan, err := modindex.ParsePlan(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, modindex.PlanFile), err)
	}
	return plan, nil
}

// readAliases returns the bundled modules.alias; without one no module has an alias.
func readAliases(root, kver string) ([]modindex.Alias, error) {
	dir := filepath.Join(root, "lib/modules", kver)
	b, err := smallfile.Read(os.DirFS(dir), "modules.alias", aliasesLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	aliases, err := modindex.ParseAliases(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "modules.alias"), err)
	}
	return aliases, nil
}

// isLoaded reports whether the kernel already has the module; initstate exists only for loaded
// modules, not for built-in ones. Asking first spares the kernel reading the file again.
func isLoaded(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "sys/module", name, "initstate"))
	return err == nil
}

// isAbsent reports whether a load error means the module has nothing to drive here.
func isAbsent(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)
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
