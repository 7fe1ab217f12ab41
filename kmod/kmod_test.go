package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const kver = "6.1.0-28-amd64"

// tree writes files (path relative to root -> content) into a fresh temp dir.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fakeLoader records the modules it is asked to load, in order, and fails those in fail. Each
// load takes a moment, and a module asked for while one of its dependencies is still loading is
// recorded as a violation: a loader that does not wait for dependencies fails the tests.
type fakeLoader struct {
	mu         sync.Mutex
	order      []string
	done       map[string]bool
	violations []string
	params     map[string]string
	fail       map[string]error
}

func (f *fakeLoader) load(path, params string) error {
	name := strings.TrimSuffix(filepath.Base(path), ".ko")
	f.mu.Lock()
	f.order = append(f.order, name)
	for _, d := range planDeps()[name] {
		if slices.Contains(f.order, d) && !f.done[d] {
			f.violations = append(f.violations, name+" started while "+d+" was loading")
		}
	}
	if f.params == nil {
		f.params, f.done = map[string]string{}, map[string]bool{}
	}
	f.params[name] = params
	f.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done[name] = true
	if _, err := os.Stat(path); err != nil {
		return err
	}
	return f.fail[name]
}

// The plan of a small btrfs closure; module files exist so the loader can check its paths.
const plan = `# dockerinit load plan
xor kernel/crypto/xor.ko
raid6_pq kernel/lib/raid6/raid6_pq.ko
crc32c_generic kernel/crypto/crc32c_generic.ko
crc32c_intel kernel/arch/x86/crypto/crc32c_intel.ko
libcrc32c kernel/lib/libcrc32c.ko soft:crc32c_generic soft:crc32c_intel
btrfs kernel/fs/btrfs/btrfs.ko xor raid6_pq libcrc32c
ext4 builtin
virtio kernel/drivers/virtio/virtio.ko
virtio_blk kernel/drivers/block/virtio_blk.ko virtio
`

func planTree(t *testing.T, extra map[string]string) string {
	files := map[string]string{"lib/modules/" + kver + "/dockerinit.modules": plan}
	for _, line := range strings.Split(plan, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasSuffix(f[1], ".ko") {
			files["lib/modules/"+kver+"/"+f[1]] = "ELF"
		}
	}
	for p, d := range extra {
		files[p] = d
	}
	return tree(t, files)
}

func TestLoadAll(t *testing.T) {
	all := []string{"xor", "raid6_pq", "crc32c_generic", "crc32c_intel", "libcrc32c", "btrfs", "virtio", "virtio_blk"}
	for _, tc := range []struct {
		name        string
		extra       map[string]string
		fail        map[string]error
		wantLoaded  []string
		wantFailed  map[string]string // module -> part of its error
		wantCalled  []string          // modules the loader must have been asked for (any order)
		wantParams  map[string]string
		wantBuiltin []string
	}{
		{
			name:        "all load",
			wantLoaded:  all,
			wantBuiltin: []string{"ext4"},
			wantCalled:  all,
		},
		{
			name:        "already loaded is fine",
			fail:        map[string]error{"xor": unix.EEXIST, "virtio": unix.EEXIST},
			wantLoaded:  all,
			wantBuiltin: []string{"ext4"},
			wantCalled:  all,
		},
		{
			name:        "loaded before is not loaded again",
			extra:       map[string]string{"sys/module/virtio/initstate": "live\n", "sys/module/ext4/parameters/x": ""},
			wantLoaded:  all,
			wantBuiltin: []string{"ext4"},
			wantCalled:  []string{"xor", "raid6_pq", "crc32c_generic", "crc32c_intel", "libcrc32c", "btrfs", "virtio_blk"},
		},
		{
			name:        "a failed soft dependency does not matter",
			fail:        map[string]error{"crc32c_intel": unix.ENODEV},
			wantLoaded:  []string{"xor", "raid6_pq", "crc32c_generic", "libcrc32c", "btrfs", "virtio", "virtio_blk"},
			wantFailed:  map[string]string{"crc32c_intel": "load kernel/arch/x86/crypto/crc32c_intel.ko: no such device"},
			wantBuiltin: []string{"ext4"},
			wantCalled:  all,
		},
		{
			name:       "a failure skips dependents only",
			fail:       map[string]error{"raid6_pq": unix.ENOEXEC},
			wantLoaded: []string{"xor", "crc32c_generic", "crc32c_intel", "libcrc32c", "virtio", "virtio_blk"},
			wantFailed: map[string]string{
				"raid6_pq": "load kernel/lib/raid6/raid6_pq.ko: exec format error",
				"btrfs":    "skipped: dependency raid6_pq failed",
			},
			wantBuiltin: []string{"ext4"},
			wantCalled:  []string{"xor", "raid6_pq", "crc32c_generic", "crc32c_intel", "libcrc32c", "virtio", "virtio_blk"},
		},
		{
			name:        "parameters from the command line",
			extra:       map[string]string{"proc/cmdline": `BOOT_IMAGE=/vmlinuz root=LABEL=linux btrfs.x=1 virtio-blk.queue_depth=64 virtio_blk.name="a b" xor.flag -- btrfs.y=2` + "\n"},
			wantLoaded:  all,
			wantBuiltin: []string{"ext4"},
			wantCalled:  all,
			wantParams:  map[string]string{"btrfs": "x=1", "virtio_blk": `queue_depth=64 name="a b"`, "xor": "flag", "raid6_pq": ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := planTree(t, tc.extra)
			fl := &fakeLoader{fail: tc.fail}
			rep, err := loadAll(root, kver, fl.load)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rep.Loaded, tc.wantLoaded) {
				t.Errorf("Loaded = %v, want %v", rep.Loaded, tc.wantLoaded)
			}
			if !reflect.DeepEqual(rep.Builtin, tc.wantBuiltin) {
				t.Errorf("Builtin = %v, want %v", rep.Builtin, tc.wantBuiltin)
			}
			if len(rep.Failed) != len(tc.wantFailed) {
				t.Errorf("Failed = %v, want %v", rep.Failed, tc.wantFailed)
			}
			for m, want := range tc.wantFailed {
				if err := rep.Errors[m]; err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error of %s = %v, want it to contain %q", m, err, want)
				}
			}
			called := slices.Sorted(slices.Values(fl.order))
			want := slices.Sorted(slices.Values(tc.wantCalled))
			if !reflect.DeepEqual(called, want) {
				t.Errorf("loader called for %v, want %v", called, want)
			}
			assertDepsFirst(t, fl)
			for m, want := range tc.wantParams {
				if got := fl.params[m]; got != want {
					t.Errorf("params of %s = %q, want %q", m, got, want)
				}
			}
		})
	}
}

// planDeps returns the dependencies of each module of plan.
func planDeps() map[string][]string {
	deps := map[string][]string{}
	for _, line := range strings.Split(plan, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] != "#" {
			for _, d := range f[2:] {
				deps[f[0]] = append(deps[f[0]], strings.TrimPrefix(d, "soft:"))
			}
		}
	}
	return deps
}

// assertDepsFirst checks that each module was loaded after all its dependencies had loaded.
func assertDepsFirst(t *testing.T, fl *fakeLoader) {
	t.Helper()
	for _, v := range fl.violations {
		t.Error(v)
	}
	pos := map[string]int{}
	for i, m := range fl.order {
		pos[m] = i
	}
	for m, deps := range planDeps() {
		i, ok := pos[m]
		if !ok {
			continue
		}
		for _, d := range deps {
			if j, ok := pos[d]; ok && j > i {
				t.Errorf("%s loaded before its dependency %s: %v", m, d, fl.order)
			}
		}
	}
}

func TestLoadAllPlanProblems(t *testing.T) {
	for _, tc := range []struct {
		name      string
		files     map[string]string
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
			wantErr: "open module load plan",
		},
		{
			name:    "broken plan",
			files:   map[string]string{"lib/modules/" + kver + "/dockerinit.modules": "btrfs kernel/fs/btrfs/btrfs.ko xor\n"},
			wantErr: "btrfs depends on xor, which is not listed before it",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.files)
			fl := &fakeLoader{}
			rep, err := loadAll(root, kver, fl.load)
			if tc.wantEmpty {
				if err != nil || !reflect.DeepEqual(rep, Report{}) {
					t.Fatalf("got %+v, %v; want an empty report and no error", rep, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if tc.mismatch != nil {
				var me *KernelMismatchError
				if !errors.As(err, &me) || *me != *tc.mismatch {
					t.Errorf("err = %#v, want %#v", err, tc.mismatch)
				}
			}
			if len(fl.order) != 0 {
				t.Errorf("loader called for %v", fl.order)
			}
		})
	}
}

func TestColdplug(t *testing.T) {
	const aliases = "alias virtio:d00000002v* virtio_blk\nalias fs-btrfs btrfs\nalias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\nalias pci:v*d*sv*sd*bc01sc06i01* ahci\n"
	for _, tc := range []struct {
		name    string
		devices map[string]string // path under sys/devices -> modalias
		cmdline string
		want    []string
	}{
		{
			name: "virtio disk",
			devices: map[string]string{
				"pci0000:00/0000:00:04.0/virtio1/modalias": "virtio:d00000002v00001AF4\n",
				"pci0000:00/0000:00:04.0/modalias":         "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
			},
			want: []string{"virtio", "virtio_blk"},
		},
		{
			name:    "no matching device",
			devices: map[string]string{"platform/serial8250/modalias": "platform:serial8250\n"},
		},
		{
			name:    "blacklisted",
			devices: map[string]string{"pci0000:00/0000:00:04.0/virtio1/modalias": "virtio:d00000002v00001AF4\n"},
			cmdline: "root=LABEL=x modprobe.blacklist=xor,virtio-blk\n",
		},
		{
			name: "alias of a module that is not in the plan",
			devices: map[string]string{
				"pci0000:00/0000:00:1f.2/modalias": "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\n",
				"system/cpu/modalias":              "cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0094,00E6\n",
			},
			want: []string{"crc32c_intel"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]string{"lib/modules/" + kver + "/modules.alias": aliases}
			for p, m := range tc.devices {
				extra["sys/devices/"+p] = m
			}
			if tc.cmdline != "" {
				extra["proc/cmdline"] = tc.cmdline
			}
			root := planTree(t, extra)
			fl := &fakeLoader{}
			rep, err := coldplug(filepath.Join(root, "sys/devices"), root, kver, fl.load)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rep.Loaded, tc.want) {
				t.Errorf("Loaded = %v, want %v", rep.Loaded, tc.want)
			}
			assertDepsFirst(t, fl)
		})
	}
}

func TestColdplugErrors(t *testing.T) {
	root := planTree(t, map[string]string{"lib/modules/" + kver + "/modules.alias": "alias x\n"})
	if _, err := coldplug(filepath.Join(root, "sys/devices"), root, kver, (&fakeLoader{}).load); err == nil || !strings.Contains(err.Error(), "modules.alias line 1") {
		t.Errorf("broken modules.alias: err = %v", err)
	}
	root = planTree(t, map[string]string{"lib/modules/" + kver + "/modules.alias": "alias fs-btrfs btrfs\n"})
	if _, err := coldplug(filepath.Join(root, "sys/devices"), root, kver, (&fakeLoader{}).load); err == nil || !strings.Contains(err.Error(), "walk") {
		t.Errorf("missing sysfs: err = %v", err)
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
