package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/blockdev"
)

// TestHardware boots the fixture's image from each common kind of disk and with each way of
// naming the root device: virtio-SCSI, AHCI (SATA), NVMe and USB storage behind xHCI, a GPT disk
// found by PARTUUID= and PARTLABEL=, a whole disk by UUID= and by a /dev/disk/by-label path, a
// two-disk btrfs RAID1 (and its clear failure with a disk missing), and a top layer on a vfat
// partition. Disks are attached with snapshot=on: the boots leave them as they were.
func TestHardware(t *testing.T) {
	r := requireRig(t)
	d := requireHWDisks(t, r)
	fixtureUUID := diskUUID(t, r.disk)

	for _, tc := range []struct {
		name    string
		devices []string // QEMU arguments attaching the disks
		extra   string   // kernel command line after the tutorial's (the last value of a key wins)
		rootDev string   // what the initramfs must have found; a regexp where the kernel's naming order varies
		check   func(t *testing.T, f map[string][]string, v *vm)
	}{
		{
			name:    "virtio-scsi GPT PARTUUID vfat-toplayer",
			devices: append([]string{"-device", "virtio-scsi-pci,id=scsi0"}, attach(d.gpt, "scsi-hd,bus=scsi0.0")...),
			extra:   "root=PARTUUID=" + gptRootPartUUID + " toplayer=LABEL=" + hwTopLabel + " toplayer_path=" + hwTopPath + " init=" + hwInit,
			rootDev: "/dev/sda2",
			check: func(t *testing.T, f map[string][]string, v *vm) {
				// hwinit ran, so the vfat top layer was applied; it printed the links.
				links := map[string]bool{}
				for _, l := range f["link"] {
					links[l] = true
				}
				for _, want := range []string{
					"by-partuuid/" + gptRootPartUUID + " ../../sda2",
					"by-partlabel/" + gptRootPartLabel + " ../../sda2",
					`by-partlabel/EFI\x20System ../../sda1`,
					"by-label/linux ../../sda2",
					"by-label/ESP ../../sda1",
					"by-label/" + hwTopLabel + " ../../sda3",
					"by-uuid/" + fixtureUUID + " ../../sda2",
				} {
					if !links[want] {
						t.Errorf("no /dev/disk link %s in the booted system; it has %q", want, f["link"])
					}
				}
			},
		},
		{
			name:    "AHCI GPT PARTLABEL",
			devices: attach(d.gpt, "ide-hd,bus=ide.0"),
			extra:   "root=PARTLABEL=" + gptRootPartLabel,
			rootDev: "/dev/sda2",
			check:   checkHostname,
		},
		{
			name:    "NVMe by-label path",
			devices: attach(r.disk, "nvme,serial=dockerinit"),
			extra:   "root=/dev/disk/by-label/linux",
			rootDev: "/dev/nvme0n1",
			check:   checkHostname,
		},
		{
			name:    "USB storage UUID",
			devices: append([]string{"-device", "qemu-xhci,id=xhci"}, attach(r.disk, "usb-storage,bus=xhci.0")...),
			extra:   "root=UUID=" + fixtureUUID,
			rootDev: "/dev/sda",
			check:   checkHostname,
		},
		{
			name:    "btrfs RAID1 over two virtio disks",
			devices: append(attach(d.raidA, "virtio-blk-pci"), attach(d.raidB, "virtio-blk-pci")...),
			extra:   "root=UUID=" + raidUUID,
			// The two virtio disks probe in parallel (async_probe), so either may be vda.
			rootDev: "/dev/vd[ab]",
			check: func(t *testing.T, f map[string][]string, v *vm) {
				checkHostname(t, f, v)
				for _, devid := range []string{"1", "2"} {
					if !seen(v, `BTRFS: device .*devid `+devid+` .*/dev/vd[ab] scanned by init`) {
						t.Errorf("the kernel never said RAID1 member devid %s was registered by the initramfs; its btrfs lines:\n%s",
							devid, strings.Join(matching(v, `BTRFS`), "\n"))
					}
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "hw-" + strings.NewReplacer(" ", "-", "/", "-").Replace(tc.name)
			v := startWithDisks(t, name, r, baseCmdline+" "+testinit+" "+tc.extra, tc.devices)
			f := runTestinit(t, v)
			checkImageBooted(t, f, "sample_image")
			bootJSON := strings.Join(f["bootjson"], "\n")
			m := regexp.MustCompile(`"root_device": "(` + tc.rootDev + `)"`).FindStringSubmatch(bootJSON)
			if m == nil {
				t.Fatalf("boot.json does not say root_device %s:\n%s", tc.rootDev, bootJSON)
			}
			tc.check(t, f, v)
			reportFindLatency(t, v, m[1])
		})
	}

	t.Run("btrfs RAID1 with a disk missing", func(t *testing.T) {
		v := startWithDisks(t, "hw-raid1-degraded", r, baseCmdline+" "+testinit+" root=UUID="+raidUUID+" dockerinit.timeout=15s",
			attach(d.raidA, "virtio-blk-pci"))
		explanation := waitForFailure(t, v)
		for _, want := range []string{
			`UUID=` + raidUUID + ` \(LABEL=linux\) has 2 devices and only 1 appeared \(/dev/vda\): 1 missing`,
			`/dev/vda .*TYPE=btrfs`,
			`degraded`,
		} {
			if !regexp.MustCompile(want).MatchString(explanation) {
				t.Errorf("the failure message lacks %q; it says:\n%s", want, explanation)
			}
		}
	})
}

// checkHostname checks that the fixture's own top layer was applied.
func checkHostname(t *testing.T, f map[string][]string, _ *vm) {
	t.Helper()
	expectFact(t, f, "hostname", "dockerinit-top")
}

var diskIDs atomic.Int64

// attach returns the QEMU arguments that attach img as a raw disk through device (a -device
// driver with its options), with writes kept in a temporary overlay.
func attach(img, device string) []string {
	id := fmt.Sprintf("disk%d", diskIDs.Add(1))
	return []string{
		"-drive", "file=" + img + ",if=none,id=" + id + ",format=raw,snapshot=on",
		"-device", device + ",drive=" + id,
	}
}

// runTestinit waits for testinit to print its facts and power off.
func runTestinit(t *testing.T, v *vm) map[string][]string {
	t.Helper()
	started := regexp.MustCompile(`DITEST start `)
	if _, err := v.waitFor(started, testinitTimeout); err != nil {
		t.Fatalf("boot %s: testinit never started: %v", v.name, err)
	}
	if _, err := v.waitFor(regexp.MustCompile(`DITEST finished`), testinitTimeout); err != nil {
		t.Fatalf("boot %s: testinit did not finish: %v", v.name, err)
	}
	if err := v.waitExit(poweroffTimeout); err != nil {
		t.Errorf("boot %s: %v", v.name, err)
	}
	v.timings(t, started)
	return facts(v.transcript())
}

// reportFindLatency logs, on the guest clock, how long after the kernel first named the root
// device (or, for an NVMe namespace, which the kernel does not name, last named its controller)
// the initramfs had found it, or after the find step began if that was later; and fails when that
// is far above the 1 s target.
func reportFindLatency(t *testing.T, v *vm, dev string) {
	t.Helper()
	name := strings.TrimPrefix(dev, "/dev/")
	word := func(w string) *regexp.Regexp {
		return regexp.MustCompile(`(^|[^a-z0-9])` + regexp.QuoteMeta(w) + `([^a-z0-9]|$)`)
	}
	devRe, ctrlRe := word(name), word(regexp.MustCompile(`n[0-9]+$`).ReplaceAllString(name, ""))
	foundRe := regexp.MustCompile(`dockerinit: root device ` + regexp.QuoteMeta(dev) + ` \(.*\) found after ([0-9.]+)(ms|s|µs)`)
	var appeared, ctrl, found, stepTook time.Duration
	for _, l := range v.transcript() {
		at, ok := kernelTime(l.text)
		if !ok || strings.Contains(l.text, "dockerinit: booting") {
			continue
		}
		if m := foundRe.FindStringSubmatch(l.text); m != nil {
			found = at
			stepTook, _ = time.ParseDuration(m[1] + m[2])
			break
		}
		if appeared == 0 && devRe.MatchString(l.text) {
			appeared = at
		}
		if strings.HasPrefix(name, "nvme") && ctrlRe.MatchString(l.text) {
			ctrl = at
		}
	}
	if found == 0 {
		t.Errorf("no \"root device %s ... found after\" line on the console", dev)
		return
	}
	if appeared == 0 {
		appeared = ctrl
	}
	began := found - stepTook
	latency := found - max(appeared, began)
	t.Logf("root device %s: appeared at %.3fs, the find step began at %.3fs, found at %.3fs (guest clock): %v after it could be (target: 1s)",
		dev, appeared.Seconds(), began.Seconds(), found.Seconds(), latency.Round(time.Millisecond))
	if latency > 5*time.Second {
		t.Errorf("root device %s found %v after it appeared; the target is 1 s", dev, latency)
	}
}

// diskUUID is the file system UUID of a disk image, as root=UUID= names it.
func diskUUID(t *testing.T, img string) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _, uuid, err := blockdev.Probe(f)
	if err != nil || uuid == "" {
		t.Fatalf("no file system UUID on %s (%v)", img, err)
	}
	return uuid
}

// TestModuleSetSizes builds the generic and the host initramfs with a dockerinit built as
// `make build` builds it, checks them against the size targets, and boots the host one when
// this machine has a virtio disk, as the QEMU guest does (a host initramfs boots its own kind of
// machine only).
func TestModuleSetSizes(t *testing.T) {
	r := requireRig(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin+"/", "./cmd/dockerinit", "./cmd/mkbootimg")
	build.Dir, build.Env = r.repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		set   string
		limit int64
	}{{"generic", 8e6}, {"host", 5e6}} {
		t.Run(tc.set, func(t *testing.T) {
			out := t.TempDir()
			cmd := exec.Command("bash", filepath.Join(r.repo, "qemu-tests", "fixture.sh"), "mkboot", r.fixture, "sample_image", out,
				filepath.Join(bin, "mkbootimg"), "--modules", tc.set, "--init", filepath.Join(bin, "dockerinit"))
			cmd.Env = append(os.Environ(), "DOCKERINIT_FIXTURE_LOCKED=1")
			msg, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("mkbootimg --modules %s: %v\n%s", tc.set, err, msg)
			}
			fi, err := os.Stat(filepath.Join(out, "initramfs.img"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("--modules %s: initramfs %.2f MB (target %.0f MB): %s", tc.set, float64(fi.Size())/1e6, float64(tc.limit)/1e6,
				regexp.MustCompile(`\d+ modules`).FindString(string(msg)))
			if fi.Size() > tc.limit {
				t.Errorf("--modules %s: initramfs is %d bytes, the target is at most %d", tc.set, fi.Size(), tc.limit)
			}
			if tc.set != "host" {
				return
			}
			if !hostHasVirtioDisk() {
				t.Logf("not booting the host initramfs: this machine has no virtio disk, the QEMU guest has")
				return
			}
			c := *r
			c.boot = out // mkbootimg wrote the image's vmlinuz there too
			v := startWithDisks(t, "hw-modules-host", &c, baseCmdline+" "+testinit, attach(r.disk, "virtio-blk-pci"))
			checkImageBooted(t, runTestinit(t, v), "sample_image")
		})
	}
}

// hostHasVirtioDisk reports whether a device of this machine is a virtio disk.
func hostHasVirtioDisk() bool {
	m, _ := filepath.Glob("/sys/bus/virtio/devices/*/modalias")
	for _, p := range m {
		if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), "virtio:d00000002v") {
			return true
		}
	}
	return false
}
