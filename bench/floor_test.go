package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// floorConsole is the modules boot: dockerinit, then the image's shell printing /proc/modules,
// with a kernel line in the middle as the serial console may interleave it.
const floorConsole = "[    2.3] Run /init as init process\r\n" +
	"[    2.5] dockerinit: booting image sample_image\r\n" +
	"DITEST start uptime=3.71 1.20\r\n" +
	"DIFLOOR modules\r\n" +
	"btrfs 1646592 0 - Live 0x0000000000000000\r\n" +
	"[    3.9] random: crng init done\r\n" +
	"virtio_blk 20480 2 - Live 0x0000000000000000\r\n" +
	"xor 24576 1 btrfs, Live 0x0000000000000000\r\n" +
	"DIFLOOR end\r\n"

func TestParseLoadedModules(t *testing.T) {
	for _, tc := range []struct {
		name, console string
		want          []string
		errText       string
	}{
		{"modules", floorConsole, []string{"btrfs", "virtio_blk", "xor"}, ""},
		{"cut short", strings.TrimSuffix(floorConsole, "DIFLOOR end\r\n"), nil, "did not print /proc/modules"},
		{"none loaded", "DIFLOOR modules\nDIFLOOR end\n", nil, "nothing for the floor to load"},
		{"no block", "[ 1.0] Run /init as init process\n", nil, "did not print /proc/modules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLoadedModules([]byte(tc.console))
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error %v, want one saying %q", err, tc.errText)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseLoadedModules = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// The modules boot's command line must reach ParseBoot too: its shell prints the start marker.
	b, err := ParseBoot([]byte(floorConsole))
	if err != nil || b.RealInitS != 3.71 {
		t.Errorf("ParseBoot of the modules boot = %+v, %v", b, err)
	}
	// The kernel echoes its command line: the markers must not be in it, but the shell must print them.
	cmd := FloorModulesInit()
	for _, m := range []string{startMarker, floorModulesBegin, floorModulesEnd} {
		if strings.Contains(cmd, m) {
			t.Errorf("FloorModulesInit %q holds the marker %q as it is", cmd, m)
		}
	}
	joined := strings.ReplaceAll(cmd, "''", "")
	if !strings.Contains(joined, "echo "+startMarker+"$(cat /proc/uptime); echo "+floorModulesBegin+"; cat /proc/modules; echo "+floorModulesEnd+";") {
		t.Errorf("FloorModulesInit %q does not print the markers ParseBoot and ParseLoadedModules read", cmd)
	}
	withEcho := "[ 0.0] Kernel command line: console=ttyS0 " + cmd + "\n" + floorConsole
	if _, err := ParseBoot([]byte(withEcho)); err != nil {
		t.Errorf("ParseBoot after the kernel's echo of the command line: %v", err)
	}
}

const samplePlan = `# dockerinit load plan for kernel 6.1.0-50-amd64: ...
optional atkbd builtin
forced crc32c_generic kernel/crypto/crc32c_generic.ko
forced crc32c_intel kernel/arch/x86/crypto/crc32c-intel.ko
forced libcrc32c kernel/lib/libcrc32c.ko soft:crc32c_generic soft:crc32c_intel
forced xor kernel/crypto/xor.ko
forced btrfs kernel/fs/btrfs/btrfs.ko libcrc32c xor soft:crc32c_intel
optional virtio kernel/drivers/virtio/virtio.ko
optional virtio_blk kernel/drivers/block/virtio_blk.ko virtio
optional nvme kernel/drivers/nvme/host/nvme.ko
`

func TestFloorModules(t *testing.T) {
	plan, err := ParsePlan(samplePlan)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 9 || !reflect.DeepEqual(plan[3], PlanEntry{"libcrc32c", "kernel/lib/libcrc32c.ko", []string{"crc32c_generic", "crc32c_intel"}}) {
		t.Fatalf("ParsePlan = %+v", plan)
	}
	if _, err := ParsePlan("sometimes x y\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad plan line: %v", err)
	}
	const k = "lib/modules/6.1/"
	for _, tc := range []struct {
		name    string
		loaded  []string
		want    []FloorModule
		errText string
	}{
		// /proc/modules order (newest first) does not matter: the plan's does. crc32c_intel
		// failed (no SSE4.2 under TCG) and is not waited for.
		{"plan order, loaded deps only", []string{"virtio_blk", "btrfs", "virtio", "xor", "libcrc32c", "crc32c_generic"}, []FloorModule{
			{"crc32c_generic", k + "kernel/crypto/crc32c_generic.ko", nil},
			{"libcrc32c", k + "kernel/lib/libcrc32c.ko", []int{0}},
			{"xor", k + "kernel/crypto/xor.ko", nil},
			{"btrfs", k + "kernel/fs/btrfs/btrfs.ko", []int{1, 2}},
			{"virtio", k + "kernel/drivers/virtio/virtio.ko", nil},
			{"virtio_blk", k + "kernel/drivers/block/virtio_blk.ko", []int{4}},
		}, ""},
		{"not in the plan", []string{"btrfs", "e1000", "ahci"}, nil, "loaded modules ahci, e1000 are not in dockerinit's load plan"},
		{"built in", []string{"atkbd"}, nil, "built in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FloorModules(plan, tc.loaded, "6.1")
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error %v, want one saying %q", err, tc.errText)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FloorModules = %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
}

func TestFloorHeader(t *testing.T) {
	root := FloorRoot{Device: "/dev/vda", FSType: "btrfs", Options: `subvol=docker_rwlayer`, Init: `/sbin/"odd"\init`}
	mods := []FloorModule{{"xor", "lib/modules/6.1/xor.ko", nil}, {"btrfs", "lib/modules/6.1/btrfs.ko", []int{0}}}
	h, err := FloorHeader(mods, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`#define ROOT_DEV "/dev/vda"`, `#define ROOT_OPTS "subvol=docker_rwlayer"`, `#define REAL_INIT "/sbin/\"odd\"\\init"`,
		"#define FS_MODULE 1", "#define MAX_DEPS 2", `#define FLOOR_FIRST_LINE "floor: /init started"`,
		`{ "/lib/modules/6.1/xor.ko", { -1 } }, /* 0 xor */ \`,
		`{ "/lib/modules/6.1/btrfs.ko", { 0, -1 } }, /* 1 btrfs */ \`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("the header lacks %q:\n%s", want, h)
		}
	}
	if h, _ := FloorHeader(mods[:1], root); !strings.Contains(h, "#define FS_MODULE -1") {
		t.Errorf("a root file system built in: want FS_MODULE -1:\n%s", h)
	}
	for name, bad := range map[string][]FloorModule{
		"none":           nil,
		"forward wait":   {{"a", "a.ko", []int{1}}, {"b", "b.ko", nil}},
		"waits for self": {{"a", "a.ko", []int{0}}},
	} {
		if _, err := FloorHeader(bad, root); err == nil {
			t.Errorf("%s: FloorHeader took it", name)
		}
	}
}

// TestFloorCompiles builds floor.c with a generated header as the bench does, so that a change to
// either is caught without a bench run.
func TestFloorCompiles(t *testing.T) {
	testenv.Tools(t, "gcc libc6-dev", "gcc")
	dir := t.TempDir()
	h, err := FloorHeader([]FloorModule{{"xor", "lib/modules/6.1/xor.ko", nil}, {"btrfs", "lib/modules/6.1/btrfs.ko", []int{0}}},
		FloorRoot{Device: "/dev/vda", FSType: "btrfs", Options: "subvol=x", Init: "/sbin/init"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plan.h"), []byte(h), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("gcc", "-static", "-Os", "-pthread", "-Wall", "-Werror", "-I", dir, "-o", filepath.Join(dir, "init"),
		filepath.Join("floor", "floor.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
}

// TestGoFloorLdflags: the Go floor gets the C floor's plan through the linker, and builds with it.
func TestGoFloorLdflags(t *testing.T) {
	mods := []FloorModule{{"xor", "lib/modules/6.1/xor.ko", nil}, {"btrfs", "lib/modules/6.1/btrfs.ko", []int{0}}}
	root := FloorRoot{Device: "/dev/vda", FSType: "btrfs", Options: "subvol=docker_rwlayer", Init: "/usr/local/sbin/testinit"}
	flags, err := GoFloorLdflags(mods, root)
	if err != nil {
		t.Fatal(err)
	}
	const list = "main.modules=/lib/modules/6.1/xor.ko:;/lib/modules/6.1/btrfs.ko:0"
	for _, want := range []string{"-s -w ", "-X " + list, "-X main.rootDev=/dev/vda", "-X main.rootOpts=subvol=docker_rwlayer",
		"-X main.fsModule=1", "-X main.realInit=/usr/local/sbin/testinit", "-X 'main.firstLine=floor: /init started'"} {
		if !strings.Contains(flags, want) {
			t.Errorf("the flags lack %q: %s", want, flags)
		}
	}
	if _, err := GoFloorLdflags(mods, FloorRoot{Device: "/dev/vda", FSType: "btrfs", Init: `/sbin/"odd"`}); err == nil {
		t.Error("an init path with a quote: GoFloorLdflags took it")
	}
	// The go command takes the flags, and the binary holds the plan.
	bin := filepath.Join(t.TempDir(), "gofloor")
	if out, err := exec.Command("go", "build", "-ldflags", flags, "-o", bin, "./floor/gofloor").CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", flags, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/lib/modules/6.1/xor.ko:;/lib/modules/6.1/btrfs.ko:0", "floor: /init started"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the built Go floor does not hold %q", want)
		}
	}
	if _, err := GoFloorLdflags([]FloorModule{{"a", "a.ko", []int{0}}}, root); err == nil {
		t.Error("a module waiting for itself: GoFloorLdflags took it")
	}
}
