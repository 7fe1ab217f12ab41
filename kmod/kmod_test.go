package kmod

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/internal/uevent"
	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
	"golang.org/x/sys/unix"
)

const kver = "6.1.0-28-amd64"

// requireRoot stops a test that needs root: in CI (CI=true, run as root) that is a failure,
// elsewhere a loud skip.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run in CI without root: %s", why)
	}
	t.Skipf("SKIPPED, NOT TESTED: needs root: %s", why)
}

// tree writes files (path relative to root -> content) into a fresh temp dir.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		write(t, filepath.Join(root, p), data)
	}
	return root
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The plan of a btrfs closure (forced) and some generic drivers (optional), as modtree writes it;
// planTree creates the module files so the loader's paths can be checked.
const plan = `# dockerinit load plan
forced xor kernel/crypto/xor.ko
forced raid6_pq kernel/lib/raid6/raid6_pq.ko
forced crc32c_generic kernel/crypto/crc32c_generic.ko
forced crc32c_intel kernel/arch/x86/crypto/crc32c_intel.ko
forced libcrc32c kernel/lib/libcrc32c.ko soft:crc32c_generic soft:crc32c_intel
forced btrfs kernel/fs/btrfs/btrfs.ko xor raid6_pq libcrc32c
optional ext4 builtin
optional sha256_ssse3 kernel/arch/x86/crypto/sha256_ssse3.ko
optional virtio kernel/drivers/virtio/virtio.ko
optional virtio_pci kernel/drivers/virtio/virtio_pci.ko virtio
optional virtio_blk kernel/drivers/block/virtio_blk.ko virtio
optional fat kernel/fs/fat/fat.ko
optional vfat kernel/fs/fat/vfat.ko fat
optional i8042 kernel/drivers/input/serio/i8042.ko
`

const aliases = `alias fs_btrfs btrfs
alias crc32c crc32c_generic
alias crc32c crc32c_intel
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias cpu:type:x86,ven*fam*mod*:feature:*0089* sha256_ssse3
alias fs_ext4 ext4
alias virtio:d00000002v* virtio_blk
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias fs_vfat vfat
alias acpi*:PNP0303:* i8042
alias pci:v*d*sv*sd*bc01sc06i01* ahci
`

var forced = []string{"xor", "raid6_pq", "crc32c_generic", "crc32c_intel", "libcrc32c", "btrfs"}

// Device modaliases of the fake machine.
const (
	virtioPCI  = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
	virtioDisk = "virtio:d00000002v00001AF4"
	cpuSSSE3   = "cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0089,00E6"
)

func planTree(t *testing.T, extra map[string]string) string {
	t.Helper()
	files := map[string]string{
		"lib/modules/" + kver + "/dockerinit.modules": plan,
		"lib/modules/" + kver + "/modules.alias":      aliases,
	}
	for _, line := range strings.Split(plan, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && strings.HasSuffix(f[2], ".ko") {
			files["lib/modules/"+kver+"/"+f[2]] = "ELF"
		}
	}
	for p, d := range extra {
		files[p] = d
	}
	return tree(t, files)
}

// planDeps returns the dependencies, hard and soft, of each module of plan.
func planDeps() map[string][]string {
	deps := map[string][]string{}
	for _, line := range strings.Split(plan, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] != "#" {
			for _, d := range f[3:] {
				deps[f[1]] = append(deps[f[1]], strings.TrimPrefix(d, "soft:"))
			}
		}
	}
	return deps
}

// fakeLoader records the modules it is asked to load and fails those in fail. Each load takes a
// moment, and a module asked for while one of its dependencies is not done yet is recorded as a
// violation, as is a second load of one module. onLoad runs while a module loads (to make
// devices appear); a module in gate waits until its channel is closed.
type fakeLoader struct {
	mu         sync.Mutex
	calls      []string
	done       map[string]bool
	violations []string
	params     map[string]string
	fail       map[string]error
	onLoad     map[string]func()
	gate       map[string]chan struct{}
	// register makes the module's /sys/module/NAME/initstate before its gate, as the kernel does
	// before running a module's init: its dependents may start loading then.
	register map[string]bool
}

func (f *fakeLoader) load(path, params string) error {
	name := strings.TrimSuffix(filepath.Base(path), ".ko")
	f.mu.Lock()
	if slices.Contains(f.calls, name) {
		f.violations = append(f.violations, name+" loaded twice")
	}
	f.calls = append(f.calls, name)
	root, _, _ := strings.Cut(path, "/lib/modules/")
	for _, d := range planDeps()[name] {
		if slices.Contains(f.calls, d) && !f.done[d] && !isLoaded(root, d) {
			f.violations = append(f.violations, name+" started while "+d+" was loading, before the kernel had it")
		}
	}
	if f.register[name] {
		initstate := filepath.Join(root, "sys/module", name, "initstate")
		if err := os.MkdirAll(filepath.Dir(initstate), 0o755); err == nil {
			_ = os.WriteFile(initstate, []byte("coming\n"), 0o644)
		}
	}
	if f.params == nil {
		f.params, f.done = map[string]string{}, map[string]bool{}
	}
	f.params[name] = params
	hook, gate := f.onLoad[name], f.gate[name]
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	time.Sleep(time.Millisecond)
	if hook != nil {
		hook()
	}
	// As the kernel does, wait for a dependency still in its init (one that registered early), and
	// fail (unknown symbols) when that init failed.
	for _, d := range planDeps()[name] {
		for f.register[d] {
			f.mu.Lock()
			started, done, failed := slices.Contains(f.calls, d), f.done[d], f.fail[d] != nil
			f.mu.Unlock()
			if !started || done {
				if done && failed {
					f.mu.Lock()
					f.done[name] = true
					f.mu.Unlock()
					return unix.ENOENT
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done[name] = true
	if _, err := os.Stat(path); err != nil {
		return err
	}
	return f.fail[name]
}

func (f *fakeLoader) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(slices.Values(f.calls))
}

// check fails the test for every ordering violation and for modules loaded before their
// dependencies.
func (f *fakeLoader) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		t.Error(v)
	}
	for i, m := range f.calls {
		for _, d := range planDeps()[m] {
			if j := slices.Index(f.calls, d); j > i {
				t.Errorf("%s loaded before its dependency %s: %v", m, d, f.calls)
			}
		}
	}
}

// fakeUevents stands in for the netlink socket: events sent with add or lose are read in order.
type fakeUevents struct {
	msgs   chan fakeEvent
	closed chan struct{}
	once   sync.Once
}

type fakeEvent struct {
	msg string
	err error
}

func newFakeUevents() *fakeUevents {
	return &fakeUevents{msgs: make(chan fakeEvent, 64), closed: make(chan struct{})}
}

func (f *fakeUevents) Read(b []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, os.ErrClosed
	case e := <-f.msgs:
		if e.err != nil {
			return 0, e.err
		}
		return copy(b, e.msg), nil
	}
}

func (f *fakeUevents) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// send queues a uevent as the kernel formats it.
func (f *fakeUevents) send(action, devpath, modalias string) {
	f.msgs <- fakeEvent{msg: fmt.Sprintf("%s@%s\x00ACTION=%s\x00DEVPATH=%s\x00SUBSYSTEM=virtio\x00MODALIAS=%s\x00SEQNUM=1234\x00", action, devpath, action, devpath, modalias)}
}

// testLoader returns a loader of root with a fake module loader and uevent source.
func testLoader(t *testing.T, root string, fl *fakeLoader) (*Loader, *fakeUevents) {
	t.Helper()
	l, err := newLoader(root, kver, fl.load)
	if err != nil {
		t.Fatal(err)
	}
	ev := newFakeUevents()
	if len(l.devices) > 0 {
		l.events = ev
	}
	return l, ev
}

// reportOf keeps what a user sees of a report: the lists, and each error's text.
type reportOf struct {
	Loaded, Builtin, Absent, Failed []string
	Errors                          map[string]string
}

func summary(r Report) reportOf {
	s := reportOf{Loaded: r.Loaded, Builtin: r.Builtin, Absent: r.Absent, Failed: r.Failed}
	for m, err := range r.Errors {
		if s.Errors == nil {
			s.Errors = map[string]string{}
		}
		s.Errors[m] = err.Error()
	}
	return s
}

func TestLoaderForced(t *testing.T) {
	for _, tc := range []struct {
		name       string
		extra      map[string]string
		fail       map[string]error
		want       reportOf
		wantCalled []string // modules the loader must have been asked for, sorted
		wantParams map[string]string
	}{
		{
			name:       "the forced modules load, the optional ones do not",
			want:       reportOf{Loaded: forced},
			wantCalled: []string{"btrfs", "crc32c_generic", "crc32c_intel", "libcrc32c", "raid6_pq", "xor"},
		},
		{
			name:       "already loaded is fine",
			fail:       map[string]error{"xor": unix.EEXIST, "libcrc32c": unix.EEXIST},
			want:       reportOf{Loaded: forced},
			wantCalled: []string{"btrfs", "crc32c_generic", "crc32c_intel", "libcrc32c", "raid6_pq", "xor"},
		},
		{
			name:       "loaded before is not loaded again",
			extra:      map[string]string{"sys/module/xor/initstate": "live\n"},
			want:       reportOf{Loaded: forced},
			wantCalled: []string{"btrfs", "crc32c_generic", "crc32c_intel", "libcrc32c", "raid6_pq"},
		},
		{
			name: "a soft dependency without its CPU feature is absent, not failed",
			fail: map[string]error{"crc32c_intel": unix.ENODEV},
			want: reportOf{
				Loaded: []string{"xor", "raid6_pq", "crc32c_generic", "libcrc32c", "btrfs"},
				Absent: []string{"crc32c_intel"},
				Errors: map[string]string{"crc32c_intel": "load kernel/arch/x86/crypto/crc32c_intel.ko: no such device"},
			},
			wantCalled: []string{"btrfs", "crc32c_generic", "crc32c_intel", "libcrc32c", "raid6_pq", "xor"},
		},
		{
			name: "a hard dependency that is absent makes its dependents absent",
			fail: map[string]error{"raid6_pq": unix.ENXIO},
			want: reportOf{
				Loaded: []string{"xor", "crc32c_generic", "crc32c_intel", "libcrc32c"},
				Absent: []string{"raid6_pq", "btrfs"},
				Errors: map[string]string{
					"raid6_pq": "load kernel/lib/raid6/raid6_pq.ko: no such device or address",
					"btrfs":    "skipped: dependency raid6_pq is absent",
				},
			},
			wantCalled: []string{"crc32c_generic", "crc32c_intel", "libcrc32c", "raid6_pq", "xor"},
		},
		{
			name: "a failure skips dependents only",
			fail: map[string]error{"raid6_pq": unix.ENOEXEC},
			want: reportOf{
				Loaded: []string{"xor", "crc32c_generic", "crc32c_intel", "libcrc32c"},
				Failed: []string{"raid6_pq", "btrfs"},
				Errors: map[string]string{
					"raid6_pq": "load kernel/lib/raid6/raid6_pq.ko: exec format error",
					"btrfs":    "skipped: dependency raid6_pq failed",
				},
			},
			wantCalled: []string{"crc32c_generic", "crc32c_intel", "libcrc32c", "raid6_pq", "xor"},
		},
		{
			name: "parameters from the command line; the blacklist is for aliases",
			extra: map[string]string{"proc/cmdline": `BOOT_IMAGE=/vmlinuz root=LABEL=linux btrfs.x=1 raid6-pq.a=64 raid6_pq.name="a b" xor.flag ` +
				`modprobe.blacklist=crc32c_intel -- btrfs.y=2` + "\n"},
			want:       reportOf{Loaded: forced},
			wantCalled: []string{"btrfs", "crc32c_generic", "crc32c_intel", "libcrc32c", "raid6_pq", "xor"},
			wantParams: map[string]string{"btrfs": "x=1 async_probe", "raid6_pq": `a=64 name="a b" async_probe`, "xor": "flag async_probe", "libcrc32c": "async_probe"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := &fakeLoader{fail: tc.fail}
			l, _ := testLoader(t, planTree(t, tc.extra), fl)
			l.LoadForced()
			rep := l.WaitForced()
			if got := summary(rep); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("WaitForced report:\n got %+v\nwant %+v", got, tc.want)
			}
			if rep.Duration <= 0 {
				t.Errorf("Duration = %v, want the time the loads took", rep.Duration)
			}
			if got := fl.called(); !reflect.DeepEqual(got, tc.wantCalled) {
				t.Errorf("loader called for %v, want %v", got, tc.wantCalled)
			}
			fl.check(t)
			for m, want := range tc.wantParams {
				if got := fl.params[m]; got != want {
					t.Errorf("params of %s = %q, want %q", m, got, want)
				}
			}
			if all := summary(l.Wait()); !reflect.DeepEqual(all, tc.want) {
				t.Errorf("Wait report %+v, want the forced modules' %+v", all, tc.want)
			}
		})
	}
}

func TestLoaderColdplug(t *testing.T) {
	for _, tc := range []struct {
		name    string
		devices map[string]string // path under sys/devices -> modalias
		cmdline string
		fail    map[string]error
		want    reportOf
	}{
		{
			name: "virtio PCI device",
			devices: map[string]string{
				"pci0000:00/0000:00:04.0/modalias": virtioPCI + "\n",
				"pci0000:00/0000:00:1f.0/modalias": "pci:v00008086d00002918sv00001AF4sd00001100bc06sc01i00\n",
			},
			want: reportOf{Loaded: []string{"virtio", "virtio_pci"}},
		},
		{
			name:    "no matching device",
			devices: map[string]string{"platform/serial8250/modalias": "platform:serial8250\n"},
		},
		{
			name:    "a pattern with wildcards",
			devices: map[string]string{"pnp0/00:02/modalias": "acpi:PNP0303:\n"},
			want:    reportOf{Loaded: []string{"i8042"}},
		},
		{
			name:    "blacklisted",
			devices: map[string]string{"pci0000:00/0000:00:04.0/modalias": virtioPCI + "\n"},
			cmdline: "root=LABEL=x modprobe.blacklist=xor,virtio-pci\n",
		},
		{
			name: "a CPU without the feature: absent; an alias of a module that is not bundled: nothing",
			devices: map[string]string{
				"system/cpu/modalias":              cpuSSSE3 + "\n",
				"pci0000:00/0000:00:1f.2/modalias": "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\n",
			},
			fail: map[string]error{"sha256_ssse3": unix.ENODEV},
			want: reportOf{
				Absent: []string{"sha256_ssse3"},
				Errors: map[string]string{"sha256_ssse3": "load kernel/arch/x86/crypto/sha256_ssse3.ko: no such device"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]string{}
			for p, m := range tc.devices {
				extra["sys/devices/"+p] = m
			}
			if tc.cmdline != "" {
				extra["proc/cmdline"] = tc.cmdline
			}
			root := planTree(t, extra)
			fl := &fakeLoader{fail: tc.fail}
			l, _ := testLoader(t, root, fl)
			l.Coldplug(filepath.Join(root, "sys/devices"))
			rep := l.Wait()
			if got := summary(rep); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("report:\n got %+v\nwant %+v", got, tc.want)
			}
			if rep.ScanErrors != nil {
				t.Errorf("ScanErrors = %v", rep.ScanErrors)
			}
			fl.check(t)
		})
	}
}

func TestLoaderColdplugNoSysfs(t *testing.T) {
	root := planTree(t, nil)
	l, _ := testLoader(t, root, &fakeLoader{})
	l.Coldplug(filepath.Join(root, "sys/devices"))
	rep := l.Wait()
	if len(rep.ScanErrors) != 1 || !strings.Contains(rep.ScanErrors[0].Error(), "coldplug: walk "+root+"/sys/devices: ") {
		t.Errorf("ScanErrors = %v, want the walk of the missing sysfs", rep.ScanErrors)
	}
}

// A device that appears only once a module is loaded is announced by a uevent, which Watch
// answers: loading virtio_pci makes the virtio disk appear, which needs virtio_blk.
func TestLoaderWatch(t *testing.T) {
	root := planTree(t, map[string]string{"sys/devices/pci0000:00/0000:00:04.0/modalias": virtioPCI + "\n"})
	sys := filepath.Join(root, "sys/devices")
	blk := make(chan struct{})
	var ev *fakeUevents
	fl := &fakeLoader{onLoad: map[string]func(){
		"virtio_pci": func() {
			write(t, filepath.Join(sys, "pci0000:00/0000:00:04.0/virtio1/modalias"), virtioDisk+"\n")
			ev.send("add", "/devices/pci0000:00/0000:00:04.0/virtio1", virtioDisk)
		},
		"virtio_blk": func() { close(blk) },
	}}
	l, ev := testLoader(t, root, fl)
	// Sent before Watch runs, as between NewLoader and Watch at boot: kept by the socket.
	ev.send("add", "/devices/system/cpu/cpu0", cpuSSSE3)
	ev.send("change", "/devices/pci0000:00/0000:00:05.0", "acpi:PNP0303:")                        // not an add
	ev.send("add", "/devices/pci0000:00/0000:00:06.0", "pci:v00008086d00001234sv0sd0bc02sc00i00") // no bundled driver
	ctx, cancel := context.WithCancel(t.Context())
	watched := make(chan error, 1)
	go func() { watched <- l.Watch(ctx) }()
	l.LoadForced()
	l.Coldplug(sys)
	select {
	case <-blk:
	case <-time.After(10 * time.Second):
		t.Fatalf("virtio_blk was not loaded for the disk that appeared; loader called for %v", fl.called())
	}
	cancel()
	rep := l.Wait()
	want := reportOf{Loaded: append(slices.Clone(forced), "sha256_ssse3", "virtio", "virtio_pci", "virtio_blk")}
	if got := summary(rep); !reflect.DeepEqual(got, want) {
		t.Errorf("report:\n got %+v\nwant %+v", got, want)
	}
	if err := <-watched; err != nil {
		t.Errorf("Watch = %v, want nil after its context is done", err)
	}
	fl.check(t)
	if err := l.Watch(t.Context()); err == nil || !strings.Contains(err.Error(), "Watch called twice") {
		t.Errorf("second Watch = %v, want an error", err)
	}
}

// Lost events (ENOBUFS) make Watch scan sysfs again, so a device whose event was dropped still
// gets its module; a broken socket ends Watch with an error.
func TestLoaderWatchLostEvents(t *testing.T) {
	root := planTree(t, nil)
	sys := filepath.Join(root, "sys/devices")
	write(t, filepath.Join(sys, "platform/modalias"), "platform:x\n")
	fl := &fakeLoader{}
	l, ev := testLoader(t, root, fl)
	l.Coldplug(sys)
	l.Wait()
	write(t, filepath.Join(sys, "pci0000:00/0000:00:04.0/modalias"), virtioPCI+"\n")
	ev.msgs <- fakeEvent{err: os.NewSyscallError("read", unix.ENOBUFS)}
	ev.msgs <- fakeEvent{err: errors.New("socket broke")}
	err := l.Watch(t.Context())
	if err == nil || err.Error() != "read uevent socket: socket broke (devices that appear from now on get no modules)" {
		t.Errorf("Watch = %v, want the socket's error", err)
	}
	want := reportOf{Loaded: []string{"virtio", "virtio_pci"}}
	if got := summary(l.Wait()); !reflect.DeepEqual(got, want) {
		t.Errorf("report:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoaderLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		names   []string
		cmdline string
		fail    map[string]error
		want    reportOf
		wantErr []string // parts of the error, none for nil
	}{
		{name: "by alias", names: []string{"fs-vfat"}, want: reportOf{Loaded: []string{"fat", "vfat"}}},
		{name: "by name, twice", names: []string{"vfat", "vfat"}, want: reportOf{Loaded: []string{"fat", "vfat"}}},
		{name: "built in, by alias", names: []string{"fs-ext4"}, want: reportOf{Builtin: []string{"ext4"}}},
		{name: "an alias of two modules", names: []string{"crc32c"}, want: reportOf{Loaded: []string{"crc32c_generic", "crc32c_intel"}}},
		{
			name: "not bundled", names: []string{"nosuch", "virtio-blk", "fs-nosuch"},
			want:    reportOf{Loaded: []string{"virtio", "virtio_blk"}},
			wantErr: []string{"the initramfs has no module or alias named nosuch, fs-nosuch for kernel " + kver, "--add-module nosuch --add-module fs-nosuch"},
		},
		{
			name: "blacklisted: not by alias, by name", names: []string{"fs-vfat", "vfat"}, cmdline: "modprobe.blacklist=vfat",
			want:    reportOf{Loaded: []string{"fat", "vfat"}},
			wantErr: []string{"no module or alias named fs-vfat"},
		},
		{
			name: "a failure", names: []string{"fs-vfat"}, fail: map[string]error{"fat": unix.ENOEXEC},
			want:    reportOf{Failed: []string{"fat", "vfat"}, Errors: map[string]string{"fat": "load kernel/fs/fat/fat.ko: exec format error", "vfat": "skipped: dependency fat failed"}},
			wantErr: []string{"module vfat: skipped: dependency fat failed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]string{}
			if tc.cmdline != "" {
				extra["proc/cmdline"] = tc.cmdline
			}
			fl := &fakeLoader{fail: tc.fail}
			l, _ := testLoader(t, planTree(t, extra), fl)
			err := l.Load(tc.names...)
			if tc.wantErr == nil && err != nil {
				t.Errorf("Load = %v", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Load = %v, want it to contain %q", err, w)
				}
			}
			var nb *NotBundledError
			if strings.Contains(fmt.Sprint(err), "no module or alias") != errors.As(err, &nb) {
				t.Errorf("Load = %#v: a missing name must be a *NotBundledError", err)
			}
			// Load has waited: nothing is in flight any more.
			fl.mu.Lock()
			for _, m := range fl.calls {
				if !fl.done[m] {
					t.Errorf("Load returned while %s was loading", m)
				}
			}
			fl.mu.Unlock()
			if got := summary(l.Wait()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("report:\n got %+v\nwant %+v", got, tc.want)
			}
			fl.check(t)
		})
	}
}

// A module starts loading as soon as the kernel has its dependencies, while their init still runs
// (raid6_pq's benchmark), and fails as skipped when that init fails.
func TestLoaderStartsOnceDependenciesRegister(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raid6Err error
		want     reportOf
	}{
		{name: "the dependency's init succeeds", want: reportOf{Loaded: forced}},
		{
			name: "the dependency's init fails", raid6Err: unix.ENOEXEC,
			want: reportOf{
				Loaded: []string{"xor", "crc32c_generic", "crc32c_intel", "libcrc32c"},
				Failed: []string{"raid6_pq", "btrfs"},
				Errors: map[string]string{
					"raid6_pq": "load kernel/lib/raid6/raid6_pq.ko: exec format error",
					"btrfs":    "skipped: dependency raid6_pq failed",
				},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			btrfsCalled := make(chan struct{})
			fl := &fakeLoader{
				gate:     map[string]chan struct{}{"raid6_pq": gate},
				register: map[string]bool{"raid6_pq": true},
				onLoad:   map[string]func(){"btrfs": func() { close(btrfsCalled) }},
				fail:     map[string]error{"raid6_pq": tc.raid6Err},
			}
			l, _ := testLoader(t, planTree(t, nil), fl)
			l.LoadForced()
			select {
			case <-btrfsCalled:
			case <-time.After(5 * time.Second):
				t.Fatal("btrfs did not start loading while raid6_pq, registered, was still in its init")
			}
			close(gate)
			if got := summary(l.WaitForced()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("report:\n got %+v\nwant %+v", got, tc.want)
			}
			fl.check(t)
		})
	}
}

// Modules are loaded with async_probe, so that no driver's probe holds the boot, a forced
// module's load included; a command line that sets async_probe wins.
func TestLoaderAsyncProbe(t *testing.T) {
	fl := &fakeLoader{}
	l, _ := testLoader(t, planTree(t, map[string]string{"proc/cmdline": "virtio_blk.async_probe=0 virtio.x=1 btrfs.y=2\n"}), fl)
	l.LoadForced()
	if err := l.Load("virtio_blk", "fat"); err != nil {
		t.Fatal(err)
	}
	l.Wait()
	for m, want := range map[string]string{
		"virtio_blk": "async_probe=0",
		"virtio":     "x=1 async_probe",
		"fat":        "async_probe",
		"btrfs":      "y=2 async_probe",
		"xor":        "async_probe",
	} {
		if got, ok := fl.params[m]; !ok || got != want {
			t.Errorf("%s loaded (%v) with %q, want %q", m, ok, got, want)
		}
	}
}

// Modules for a CPU feature load only on a CPU that has it: the kernel would refuse them anyway,
// after reading and relocating them.
func TestLoaderCPUFeatures(t *testing.T) {
	for _, tc := range []struct {
		name, cpu  string // "" : no modalias file
		wantAbsent []string
	}{
		{name: "SSE4.2 present", cpu: "cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0089,0094,00E6"},
		{name: "SSE4.2 missing", cpu: cpuSSSE3, wantAbsent: []string{"crc32c_intel"}},
		{name: "CPU unknown: load and let the kernel say"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]string{}
			if tc.cpu != "" {
				extra["sys/devices/system/cpu/modalias"] = tc.cpu + "\n"
			}
			fl := &fakeLoader{}
			l, _ := testLoader(t, planTree(t, extra), fl)
			l.LoadForced()
			rep := l.WaitForced()
			if !reflect.DeepEqual(rep.Absent, tc.wantAbsent) || rep.Failed != nil {
				t.Errorf("Absent %v, Failed %v; want absent %v", rep.Absent, rep.Failed, tc.wantAbsent)
			}
			if called := slices.Contains(fl.called(), "crc32c_intel"); called == (tc.wantAbsent != nil) {
				t.Errorf("crc32c_intel handed to the kernel: %v", called)
			}
			if tc.wantAbsent != nil {
				if err := rep.Errors["crc32c_intel"]; err == nil || err.Error() != "skipped: the CPU lacks the feature it is for" {
					t.Errorf("crc32c_intel error %v", err)
				}
			}
		})
	}
}

// Many callers at once ask for overlapping modules: each is loaded once, after its dependencies.
// Run with -race.
func TestLoaderOnce(t *testing.T) {
	root := planTree(t, map[string]string{
		"sys/devices/pci0000:00/0000:00:04.0/modalias": virtioPCI + "\n",
		"sys/devices/system/cpu/modalias":              cpuSSSE3 + "\n",
	})
	fl := &fakeLoader{}
	l, ev := testLoader(t, root, fl)
	ctx, cancel := context.WithCancel(t.Context())
	watched := make(chan error, 1)
	go func() { watched <- l.Watch(ctx) }()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(l.LoadForced)
		wg.Go(func() { l.Coldplug(filepath.Join(root, "sys/devices")) })
		wg.Go(func() { ev.send("add", "/devices/virtio1", virtioDisk) })
		wg.Go(func() {
			if err := l.Load("fs-vfat", "virtio_blk", "fs-btrfs", "crc32c_generic"); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { l.WaitForced() })
	}
	wg.Wait()
	cancel()
	<-watched
	rep := l.Wait()
	// This CPU has SSSE3 but not SSE4.2: crc32c_intel is not even tried.
	want := append(slices.DeleteFunc(slices.Clone(forced), func(m string) bool { return m == "crc32c_intel" }),
		"sha256_ssse3", "virtio", "virtio_pci", "virtio_blk", "fat", "vfat")
	if !reflect.DeepEqual(rep.Loaded, want) || rep.Failed != nil || !reflect.DeepEqual(rep.Absent, []string{"crc32c_intel"}) {
		t.Errorf("Loaded = %v, Failed = %v, Absent = %v; want %v loaded, crc32c_intel absent", rep.Loaded, rep.Failed, rep.Absent, want)
	}
	if got := fl.called(); !reflect.DeepEqual(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("loader called for %v, want each of %v once", got, want)
	}
	fl.check(t)
}

// Wait returns only when no load is in flight, and after a cancelled Watch has returned; with a
// Watch still running it does not wait for it.
func TestLoaderWait(t *testing.T) {
	root := planTree(t, map[string]string{"sys/devices/pci0000:00/0000:00:04.0/modalias": virtioPCI + "\n"})
	gate := make(chan struct{})
	fl := &fakeLoader{gate: map[string]chan struct{}{"virtio_pci": gate}}
	l, _ := testLoader(t, root, fl)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go l.Watch(ctx)
	l.Coldplug(filepath.Join(root, "sys/devices"))
	waited := make(chan Report)
	go func() { waited <- l.Wait() }()
	select {
	case rep := <-waited:
		t.Fatalf("Wait returned %+v while virtio_pci was loading", summary(rep))
	case <-time.After(100 * time.Millisecond):
	}
	close(gate)
	rep := <-waited
	if want := []string{"virtio", "virtio_pci"}; !reflect.DeepEqual(rep.Loaded, want) {
		t.Errorf("Loaded = %v, want %v", rep.Loaded, want)
	}
	if rep.Duration < 100*time.Millisecond {
		t.Errorf("Duration = %v, want at least the 100ms virtio_pci took", rep.Duration)
	}
	cancel()
	l.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watchCtx != nil {
		t.Error("Wait returned after Watch was cancelled, but before Watch returned")
	}
}

func TestLoaderPlanProblems(t *testing.T) {
	for _, tc := range []struct {
		name      string
		files     map[string]string
		special   map[string]func(p string) error // path -> what makes it, after files
		wantErr   string
		mismatch  *KernelMismatchError
		wantEmpty bool
	}{
		{
			name:     "other kernel",
			files:    map[string]string{"lib/modules/6.1.0-27-amd64/dockerinit.modules": plan},
			mismatch: &KernelMismatchError{Running: kver, Built: "6.1.0-27-amd64"},
			wantErr:  "modules for kernel 6.1.0-27-amd64 but kernel " + kver + " is running: rebuild the initramfs with mkbootimg",
		},
		{name: "no modules at all", files: map[string]string{"etc/dockerinit.toml": ""}, wantEmpty: true},
		{name: "empty modules dir", files: map[string]string{"lib/modules/.keep": ""}, wantEmpty: true},
		{
			name:    "no plan",
			files:   map[string]string{"lib/modules/" + kver + "/modules.alias": ""},
			wantErr: "open module load plan in ROOT/lib/modules/" + kver + ": stat dockerinit.modules: no such file or directory",
		},
		{
			name:    "broken plan",
			files:   map[string]string{"lib/modules/" + kver + "/dockerinit.modules": "forced btrfs kernel/fs/btrfs/btrfs.ko xor\n"},
			wantErr: "btrfs depends on xor, which is not listed before it",
		},
		{
			name: "broken modules.alias",
			files: map[string]string{
				"lib/modules/" + kver + "/dockerinit.modules": "forced xor kernel/crypto/xor.ko\n",
				"lib/modules/" + kver + "/modules.alias":      "alias x\n",
			},
			wantErr: "module aliases: " + "ROOT/lib/modules/" + kver + "/modules.alias: modules.alias line 1",
		},
		{
			name:    "the plan is a fifo",
			files:   map[string]string{"lib/modules/" + kver + "/modules.alias": ""},
			special: map[string]func(string) error{"lib/modules/" + kver + "/dockerinit.modules": func(p string) error { return unix.Mkfifo(p, 0o644) }},
			wantErr: "open module load plan in ROOT/lib/modules/" + kver + ": dockerinit.modules is a named pipe (fifo), not a regular file (the initramfs",
		},
		{
			name:    "modules.alias links to /dev/zero",
			files:   map[string]string{"lib/modules/" + kver + "/dockerinit.modules": "forced xor kernel/crypto/xor.ko\n"},
			special: map[string]func(string) error{"lib/modules/" + kver + "/modules.alias": func(p string) error { return os.Symlink("/dev/zero", p) }},
			wantErr: "module aliases: ROOT/lib/modules/" + kver + ": modules.alias is a symbolic link to a character device, not a regular file",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.files)
			for p, mk := range tc.special {
				if err := mk(filepath.Join(root, p)); err != nil {
					t.Fatal(err)
				}
			}
			fl := &fakeLoader{}
			l, err := newLoader(root, kver, fl.load)
			if tc.wantEmpty {
				if err != nil {
					t.Fatal(err)
				}
				doNothing(t, root, l)
				return
			}
			if want := strings.ReplaceAll(tc.wantErr, "ROOT", root); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want it to contain %q", err, want)
			}
			if tc.mismatch != nil {
				var me *KernelMismatchError
				if !errors.As(err, &me) || *me != *tc.mismatch {
					t.Errorf("err = %#v, want %#v", err, tc.mismatch)
				}
			}
		})
	}
}

// doNothing checks a loader of an initramfs without modules: everything works and loads nothing.
func doNothing(t *testing.T, root string, l *Loader) {
	t.Helper()
	l.LoadForced()
	if rep := l.WaitForced(); !reflect.DeepEqual(rep, Report{}) {
		t.Errorf("WaitForced = %+v, want an empty report", rep)
	}
	l.Coldplug(filepath.Join(root, "sys/devices"))
	var nb *NotBundledError
	if err := l.Load("fs-vfat"); !errors.As(err, &nb) || !reflect.DeepEqual(nb.Names, []string{"fs-vfat"}) {
		t.Errorf("Load = %v, want a *NotBundledError", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Watch(ctx); err != nil {
		t.Errorf("Watch = %v, want nil once its context is done", err)
	}
	if rep := l.Wait(); !reflect.DeepEqual(rep, Report{}) {
		t.Errorf("Wait = %+v, want an empty report", rep)
	}
}

// TestNewLoaderRunningKernel uses the exported constructor, which reads the running kernel.
func TestNewLoaderRunningKernel(t *testing.T) {
	l, err := NewLoader(tree(t, map[string]string{"etc/dockerinit.toml": ""}))
	if err != nil {
		t.Fatalf("NewLoader without modules: %v", err)
	}
	if rep := l.WaitForced(); !reflect.DeepEqual(rep, Report{}) {
		t.Errorf("a loader without modules loaded %+v; want an empty report", rep)
	}
	_, err = NewLoader(tree(t, map[string]string{"lib/modules/0.0.0-other/dockerinit.modules": plan}))
	var me *KernelMismatchError
	if !errors.As(err, &me) || me.Built != "0.0.0-other" {
		t.Errorf("NewLoader for another kernel = %v, want a *KernelMismatchError", err)
	}
}

// TestWatchRealUevent runs Watch on the kernel's uevent socket: the uevent is one that the test
// makes the kernel send for the first CPU, whose MODALIAS names a bundled (fake) module.
func TestWatchRealUevent(t *testing.T) {
	const trigger = "/sys/devices/system/cpu/cpu0/uevent"
	requireRoot(t, "writing "+trigger+" makes the kernel send a uevent")
	b, err := os.ReadFile(trigger)
	if err != nil || !strings.Contains(string(b), "MODALIAS=cpu:") {
		t.Fatalf("%s: %q, %v; want a MODALIAS=cpu:... line", trigger, b, err)
	}
	root := tree(t, map[string]string{
		"lib/modules/" + kver + "/dockerinit.modules": "optional cpufake kernel/cpufake.ko\n",
		"lib/modules/" + kver + "/modules.alias":      "alias cpu:type:* cpufake\n",
		"lib/modules/" + kver + "/kernel/cpufake.ko":  "ELF",
	})
	loaded := make(chan struct{})
	fl := &fakeLoader{onLoad: map[string]func(){"cpufake": func() { close(loaded) }}}
	l, err := newLoader(root, kver, fl.load)
	if err != nil {
		t.Fatal(err)
	}
	if l.events, l.eventsErr = uevent.Open(); l.eventsErr != nil {
		t.Fatal(l.eventsErr)
	}
	// Sent before Watch starts reading: the socket, opened already, keeps it.
	if err := os.WriteFile(trigger, []byte("add"), 0o200); err != nil {
		t.Fatalf("trigger a uevent: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	watched := make(chan error, 1)
	go func() { watched <- l.Watch(ctx) }()
	select {
	case <-loaded:
	case <-time.After(10 * time.Second):
		t.Fatal("no module loaded for the CPU's uevent within 10s")
	}
	cancel()
	if err := <-watched; err != nil {
		t.Errorf("Watch = %v", err)
	}
	if rep := l.Wait(); !reflect.DeepEqual(rep.Loaded, []string{"cpufake"}) {
		t.Errorf("Loaded = %v, want cpufake", rep.Loaded)
	}
}

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"root=LABEL=x  rw\n", []string{"root=LABEL=x", "rw"}},
		{`a="b c" "d=e f" g`, []string{"a=b c", "d=e f", "g"}},
		{`x="" y`, []string{"x=", "y"}},
		{"", nil},
	} {
		if got := splitCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzModuleParams(f *testing.F) {
	f.Add(`root=LABEL=x btrfs.x=1 virtio-blk.name="a b" modprobe.blacklist=a,b -- init.arg`)
	f.Fuzz(func(t *testing.T, cmdline string) {
		args := splitCmdline(cmdline)
		for m, p := range moduleParams(args) {
			if m == "" || p == "" {
				t.Errorf("empty module %q or parameters %q", m, p)
			}
		}
		blacklist(args)
	})
}

// panickySocket is a uevent socket whose reading panics, as a bug in Watch would.
type panickySocket struct{}

func (panickySocket) Read([]byte) (int, error) { panic("boom") }
func (panickySocket) Close() error             { return nil }

// TestLoaderPanicsAreErrors checks that a panic in each goroutine of the loader (a module's load,
// the coldplug scan, the uevent watch) is reported as an error and that Wait still returns: in
// PID 1 such a panic was a kernel panic.
func TestLoaderPanicsAreErrors(t *testing.T) {
	// panicOn makes loading the named module panic.
	panicOn := func(module string, fl *fakeLoader) loadFunc {
		return func(path, params string) error {
			if strings.TrimSuffix(filepath.Base(path), ".ko") == module {
				panic("boom")
			}
			return fl.load(path, params)
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, l *Loader, root string)
		act     func(ctx context.Context, l *Loader, root string) error
		wantErr string // part of act's error
		// Wait's report: module lists, and a part of each error.
		loaded, failed []string
		errs           map[string]string
		scanErr        string
	}{
		{
			name:  "a module's load",
			setup: func(t *testing.T, l *Loader, root string) { l.load = panicOn("virtio_pci", &fakeLoader{}) },
			act:   func(_ context.Context, l *Loader, _ string) error { return l.Load("virtio_pci", "virtio_blk") },
			wantErr: "module virtio_pci: internal error while loading module virtio_pci " +
				"(a bug in dockerinit: please report it with this message): panic: boom\n",
			loaded: []string{"virtio", "virtio_blk"}, failed: []string{"virtio_pci"},
			errs: map[string]string{"virtio_pci": "internal error while loading module virtio_pci"},
		},
		{
			name:    "a dependency's load: its dependents are skipped, not left waiting",
			setup:   func(t *testing.T, l *Loader, root string) { l.load = panicOn("virtio", &fakeLoader{}) },
			act:     func(_ context.Context, l *Loader, _ string) error { return l.Load("virtio_blk") },
			wantErr: "module virtio_blk: skipped: dependency virtio failed",
			failed:  []string{"virtio", "virtio_blk"},
			errs:    map[string]string{"virtio": "panic: boom", "virtio_blk": "skipped: dependency virtio failed"},
		},
		{
			// An alias of a module the plan lacks, which newLoader never makes: starting it
			// indexes past the plan, as a bug would, while the loader's lock is held.
			name: "the coldplug scan",
			setup: func(t *testing.T, l *Loader, root string) {
				write(t, filepath.Join(root, "sys/devices/platform/ghost/modalias"), "platform:ghost\n")
				l.devices = append(l.devices, modindex.Alias{Pattern: "platform:ghost", Module: "ghost"})
				l.index["ghost"] = len(l.plan)
			},
			act: func(_ context.Context, l *Loader, root string) error {
				l.Coldplug(filepath.Join(root, "sys/devices"))
				return nil
			},
			scanErr: "coldplug: internal error while loading modules for the devices in ",
		},
		{
			name:  "the uevent watch",
			setup: func(t *testing.T, l *Loader, root string) { l.events = panickySocket{} },
			act: func(ctx context.Context, l *Loader, _ string) error {
				return l.Watch(ctx)
			},
			wantErr: "internal error while loading modules for new devices (a bug in dockerinit: please report it with this message): panic: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := planTree(t, nil)
			l, _ := testLoader(t, root, &fakeLoader{})
			tt.setup(t, l, root)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			err := tt.act(ctx, l, root)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
			waited := make(chan Report, 1)
			go func() { waited <- l.Wait() }()
			var rep Report
			select {
			case rep = <-waited:
			case <-time.After(10 * time.Second):
				t.Fatal("Wait did not return after the panic")
			}
			if !slices.Equal(rep.Loaded, tt.loaded) || !slices.Equal(rep.Failed, tt.failed) || len(rep.Errors) != len(tt.errs) {
				t.Errorf("report: loaded %v failed %v errors %v; want loaded %v failed %v errors for %v",
					rep.Loaded, rep.Failed, rep.Errors, tt.loaded, tt.failed, slices.Sorted(maps.Keys(tt.errs)))
			}
			for m, want := range tt.errs {
				if err := rep.Errors[m]; err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error of %s = %v, want one containing %q", m, err, want)
				}
			}
			if tt.scanErr == "" && rep.ScanErrors != nil || tt.scanErr != "" &&
				(len(rep.ScanErrors) != 1 || !strings.Contains(rep.ScanErrors[0].Error(), tt.scanErr)) {
				t.Errorf("ScanErrors = %v, want one containing %q", rep.ScanErrors, tt.scanErr)
			}
		})
	}
}
