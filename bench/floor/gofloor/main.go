// Command gofloor is the bench's floor written in Go: the work of bench/floor/floor.c (load the
// modules dockerinit loaded, wait for the root device, mount the rw layer, switch root), done the
// plain Go way, so that the bench sets the start-up of a Go /init that does nothing else beside
// the C floor's and dockerinit's. The difference to the C floor is what Go's runtime costs on
// this kernel and VM; the difference to dockerinit is ours. Its plan comes from the linker
// (-ldflags -X, written by bench.GoFloorLdflags) so that, like the C floor, it reads nothing at
// boot.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Set by the linker: see bench.GoFloorLdflags.
var (
	modules    string // "/path.ko:dep,dep;/path.ko:;..." with dependencies as positions of earlier modules
	rootDev    string
	rootFSType string
	rootOpts   string
	realInit   string
	fsModule   = "-1" // position of the root file system's module; -1: built in
	firstLine  string
)

type module struct {
	path string
	deps []int
}

func main() {
	// The kernel mounts no devtmpfs for an initramfs's /init: the root device's node needs it.
	if err := syscall.Mount("devtmpfs", "/dev", "devtmpfs", syscall.MS_NOSUID, "mode=0755"); err != nil {
		fail("mount /dev", err)
	}
	// As early as the C floor's: the bench's start-up figure.
	if kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		kmsg.WriteString(firstLine + "\n")
		kmsg.Close()
	}
	mods, fs, err := plan()
	if err != nil {
		fail("plan", err)
	}
	done := make([]chan struct{}, len(mods))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var loads sync.WaitGroup
	for i, m := range mods {
		loads.Go(func() {
			defer close(done[i])
			for _, d := range m.deps {
				<-done[d]
			}
			// A failed load is not fatal, as in dockerinit: the mount says whether it mattered.
			if err := load(m.path); err != nil {
				fmt.Fprintf(os.Stderr, "gofloor: load %s: %v\n", m.path, err)
			}
		})
	}
	for tries := 0; ; tries++ {
		if _, err := os.Stat(rootDev); err == nil {
			break
		}
		if tries == 60000 {
			fail("wait for "+rootDev, os.ErrNotExist)
		}
		time.Sleep(time.Millisecond)
	}
	if fs >= 0 {
		<-done[fs]
	}
	if err := syscall.Mount(rootDev, "/mnt", rootFSType, 0, rootOpts); err != nil {
		fail("mount "+rootDev, err)
	}
	if err := syscall.Mount("proc", "/mnt/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		fail("mount /mnt/proc", err)
	}
	// Every load ends before the switch, as in dockerinit.
	loads.Wait()
	if err := syscall.Mount("/dev", "/mnt/dev", "", syscall.MS_MOVE, ""); err != nil {
		fail("move /dev", err)
	}
	for _, step := range []func() error{
		func() error { return syscall.Chdir("/mnt") },
		func() error { return syscall.Mount(".", "/", "", syscall.MS_MOVE, "") },
		func() error { return syscall.Chroot(".") },
		func() error { return syscall.Chdir("/") },
	} {
		if err := step(); err != nil {
			fail("switch root to /mnt", err)
		}
	}
	fail("exec "+realInit, syscall.Exec(realInit, []string{realInit}, os.Environ()))
}

func load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
		return err
	}
	return nil
}

// plan reads the modules and the position of the file system's module from the linker's strings.
func plan() ([]module, int, error) {
	var mods []module
	for i, m := range strings.Split(modules, ";") {
		path, deps, ok := strings.Cut(m, ":")
		if !ok || path == "" {
			return nil, 0, fmt.Errorf("module %d: %q is not PATH:DEPS", i, m)
		}
		mod := module{path: path}
		for _, d := range strings.Split(deps, ",") {
			if d == "" {
				continue
			}
			n, err := strconv.Atoi(d)
			if err != nil || n < 0 || n >= i {
				return nil, 0, fmt.Errorf("module %s: dependency %q is not an earlier module", path, d)
			}
			mod.deps = append(mod.deps, n)
		}
		mods = append(mods, mod)
	}
	fs, err := strconv.Atoi(fsModule)
	if err != nil || fs >= len(mods) {
		return nil, 0, fmt.Errorf("file system module %q is not a module's position", fsModule)
	}
	return mods, fs, nil
}

// fail says what failed and exits: PID 1 exiting panics the kernel, and the bench sees a failed
// boot.
func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "gofloor: %s: %v\n", what, err)
	os.Exit(1)
}
