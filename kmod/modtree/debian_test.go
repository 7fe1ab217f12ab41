package modtree

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// requireOrSkip stops a test that lacks something from outside: in CI (CI=true, root, network)
// that is a failure, elsewhere a loud skip.
func requireOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run in CI: "+format, args...)
	}
	t.Skipf("SKIPPED, NOT TESTED: "+format, args...)
}

// debianKernel returns the root and kernel version of Debian's current amd64 kernel package,
// unpacked into a temp dir (its modules in lib/modules). The .deb is downloaded once with
// apt-get into $XDG_CACHE_HOME/dockerinit-tests (or /var/cache/dockerinit-tests) and reused.
func debianKernel(t *testing.T) (root, kver string) {
	t.Helper()
	cache := "/var/cache/dockerinit-tests"
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		cache = filepath.Join(x, "dockerinit-tests")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		requireOrSkip(t, "no cache directory for the kernel package: %v", err)
	}
	for _, tool := range []string{"apt-get", "dpkg-deb", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireOrSkip(t, "%s not found: the test needs Debian's apt and dpkg to fetch a real kernel", tool)
		}
	}
	// linux-image-amd64 is the metapackage; the modules are in the versioned package it depends on.
	meta := findDeb(t, cache, "linux-image-amd64_*.deb")
	if meta == "" {
		apt(t, cache, "linux-image-amd64")
		if meta = findDeb(t, cache, "linux-image-amd64_*.deb"); meta == "" {
			requireOrSkip(t, "apt-get download linux-image-amd64 left no .deb in %s", cache)
		}
	}
	out, err := exec.Command("dpkg-deb", "-f", meta, "Depends").Output()
	if err != nil {
		t.Fatalf("dpkg-deb -f %s Depends: %v", meta, err)
	}
	pkg := strings.Fields(strings.Split(string(out), ",")[0])[0] // "linux-image-6.1.0-28-amd64 (= ...)"
	deb := findDeb(t, cache, pkg+"_*.deb")
	if deb == "" {
		apt(t, cache, pkg)
		if deb = findDeb(t, cache, pkg+"_*.deb"); deb == "" {
			requireOrSkip(t, "apt-get download %s left no .deb in %s", pkg, cache)
		}
	}
	root = t.TempDir()
	if out, err := exec.Command("dpkg", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -x %s: %v\n%s", deb, err, out)
	}
	modulesDir := filepath.Join(root, "lib/modules")
	ents, err := os.ReadDir(modulesDir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s holds %v (%v), want one kernel", modulesDir, ents, err)
	}
	return root, ents[0].Name()
}

func findDeb(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

func apt(t *testing.T, dir, pkg string) {
	t.Helper()
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		requireOrSkip(t, "apt-get download %s (run apt-get update first?): %v\n%s", pkg, err, out)
	}
}

func TestBundleDebianKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED, NOT TESTED: -short: the Debian kernel test downloads and unpacks a 70 MB package")
	}
	root, kver := debianKernel(t)
	files, err := Bundle(openImage(t, root), "lib/modules", kver, []string{"btrfs"}, Generic...)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "lib/modules/" + kver + "/"
	byPath := map[string][]byte{}
	for _, f := range files {
		byPath[f.Path] = f.Data
	}
	// btrfs and what the Debian 6.x kernel builds it on; crc32c comes through the softdeps.
	for _, m := range []string{
		"kernel/fs/btrfs/btrfs.ko", "kernel/crypto/xor.ko", "kernel/lib/raid6/raid6_pq.ko",
		"kernel/lib/libcrc32c.ko", "kernel/crypto/crc32c_generic.ko", "kernel/lib/zstd/zstd_compress.ko",
		"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio_pci.ko", "kernel/fs/fat/vfat.ko",
		"kernel/drivers/nvme/host/nvme.ko", "kernel/drivers/ata/ahci.ko", "kernel/drivers/scsi/sd_mod.ko",
	} {
		data, ok := byPath[prefix+m]
		if !ok {
			t.Errorf("bundle lacks %s", m)
			continue
		}
		info, err := readModinfo(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: %v", m, err)
			continue
		}
		if i := slices.Index(info, modinfoField{"name", moduleName(m)}); i < 0 {
			t.Errorf("%s: .modinfo has no name=%s", m, moduleName(m))
		}
	}
	plan, err := modindex.ParsePlan(bytes.NewReader(byPath[prefix+modindex.PlanFile]))
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	var total int
	var planned, forced []string
	kind := map[string]bool{} // module -> forced
	for _, e := range plan {
		kind[e.Name] = e.Forced
		if e.Forced {
			forced = append(forced, e.Name)
		}
		if e.Path == modindex.Builtin {
			continue
		}
		planned = append(planned, e.Name)
		if _, ok := byPath[prefix+e.Path]; !ok {
			t.Errorf("plan names %s, which is not in the bundle", e.Path)
		}
	}
	// btrfs and what it needs load at every boot; the Generic drivers only for their hardware.
	for m, want := range map[string]bool{
		"btrfs": true, "libcrc32c": true, "crc32c_generic": true, "xor": true, "zstd_compress": true,
		"virtio_blk": false, "virtio_pci": false, "vfat": false, "nvme": false, "ahci": false, "sd_mod": false, "usb_storage": false,
	} {
		if got, ok := kind[m]; !ok || got != want {
			t.Errorf("plan: %s forced = %v (listed %v), want forced = %v", m, got, ok, want)
		}
	}
	if i, j := slices.Index(planned, "libcrc32c"), slices.Index(planned, "btrfs"); i < 0 || j < i {
		t.Errorf("btrfs (at %d) must come after libcrc32c (at %d) in the plan", j, i)
	}
	var all bytes.Buffer
	for _, f := range files {
		total += len(f.Data)
		all.Write(f.Data)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	compressed := len(enc.EncodeAll(all.Bytes(), nil))
	aliases, err := modindex.ParseAliases(bytes.NewReader(byPath[prefix+"modules.alias"]))
	if err != nil {
		t.Fatalf("modules.alias: %v", err)
	}
	// What coldplug and uevents will match at boot: devices of a QEMU VM and a PC.
	for modalias, want := range map[string]string{
		"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00": "virtio_pci",
		"virtio:d00000002v00001AF4":                             "virtio_blk",
		"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01": "ahci",
		"scsi:t-0x00": "sd_mod",
		"pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02": "nvme",
		"fs-vfat": "vfat",
	} {
		var got []string
		for _, a := range aliases {
			if modindex.Match(a.Pattern, modindex.Name(modalias)) {
				got = append(got, a.Module)
			}
		}
		if !slices.Contains(got, want) {
			t.Errorf("modules.alias: %s matches %v, want %s among them", modalias, got, want)
		}
	}
	t.Logf("kernel %s, Generic + btrfs: %d files, %d modules, %d aliases, %.1f MiB uncompressed, %.1f MiB zstd; forced: %v",
		kver, len(files), len(planned), len(aliases), float64(total)/(1<<20), float64(compressed)/(1<<20), forced)
}
