package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/filesystem"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

// OVMF as Debian bookworm's ovmf package installs it: 4 MiB flash, no Secure Boot.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// uefiTimeout adds the firmware and the boot manager to a testinit boot.
	uefiTimeout = testinitTimeout + 120*time.Second
	// uefiCmdline is what the test boots add to the command line mkbootimg computes.
	// no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail
	// and panic ("IO-APIC + timer doesn't work!") before anything of ours runs.
	uefiCmdline = "console=ttyS0 panic=-1 no_timer_check " + testinit
)

// uefiBoot is one boot manager's path through the firmware to the image's init.
type uefiBoot struct {
	kind bootloader.Kind
	pkg  string
	// menu is a console line only this boot manager prints on its way to the kernel.
	menu *regexp.Regexp
	// entry reads the first menu entry back from the disk's ESP.
	entry func(t *testing.T, read func(string) string) bootloader.Entry
}

var uefiBoots = []uefiBoot{
	{bootloader.Refind, "refind", regexp.MustCompile(`^Using load options '.*docker_image=sample_image`),
		func(t *testing.T, read func(string) string) bootloader.Entry {
			return firstEntry(t, "refind.conf", func() ([]bootloader.Entry, error) { return bootloader.ParseRefind(read("EFI/BOOT/refind.conf")) })
		}},
	{bootloader.GRUB, "grub-efi-amd64-bin", regexp.MustCompile("Booting `dockerinit sample_image:latest'"),
		func(t *testing.T, read func(string) string) bootloader.Entry {
			return firstEntry(t, "grub.cfg", func() ([]bootloader.Entry, error) { return bootloader.ParseGRUB(read("EFI/BOOT/grub.cfg")) })
		}},
	{bootloader.SystemdBoot, "systemd-boot-efi", regexp.MustCompile(`dockerinit sample_image:latest .*Boot in 1 s`),
		func(t *testing.T, read func(string) string) bootloader.Entry {
			id := "dockerinit-sample_image-latest"
			if !strings.Contains(read("loader/loader.conf"), "default "+id+".conf") {
				t.Fatalf("loader.conf does not make %s the default:\n%s", id, read("loader/loader.conf"))
			}
			e, err := bootloader.ParseBLS(id, read("loader/entries/"+id+".conf"))
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
}

// waitUEFITestinit follows a boot through boot manager b to testinit's end and the power-off,
// and logs its timings.
func waitUEFITestinit(t *testing.T, v *vm, b uefiBoot) {
	t.Helper()
	if _, err := v.waitFor(b.menu, uefiTimeout); err != nil {
		t.Fatalf("%s never started the entry: %v", b.kind, err)
	}
	waitFirmwareTestinit(t, v, uefiTimeout)
}

// waitFirmwareTestinit follows a boot started by firmware to testinit's end and the power-off,
// waiting up to within for testinit to start, and logs its timings.
func waitFirmwareTestinit(t *testing.T, v *vm, within time.Duration) {
	t.Helper()
	started := regexp.MustCompile(`DITEST start `)
	if _, err := v.waitFor(started, within); err != nil {
		t.Fatalf("testinit never started: %v", err)
	}
	if _, err := v.waitFor(regexp.MustCompile(`DITEST finished`), uefiTimeout); err != nil {
		t.Fatalf("testinit did not finish: %v", err)
	}
	if err := v.waitExit(poweroffTimeout); err != nil {
		t.Error(err)
	}
	v.timings(t, started)
}

// TestUEFIBoots boots the fixture's image through each boot manager under OVMF, from a GPT
// disk written by mkbootimg disk: the ESP holds the boot manager from the host's Debian
// package, its configuration with the entries the bootloader package generated, and the
// kernel and initramfs; partition 2 is a copy of the fixture's btrfs. Each boot must reach
// testinit on the rw layer with the top layer applied, having passed the entry's command line.
func TestUEFIBoots(t *testing.T) {
	r := requireRig(t)
	testenv.Need(t, fileExists(ovmfCode) && fileExists(ovmfVars), "OVMF firmware "+ovmfCode+" (apt-get install ovmf)")
	mkbootimg := filepath.Join(rigTemp, "bin", "mkbootimg")
	for _, b := range uefiBoots {
		t.Run(string(b.kind), func(t *testing.T) {
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.img")
			if out, err := mkdisk(r, mkbootimg, disk, "--bootloader", string(b.kind), "--toplayer-path", "boot_docker",
				"--timeout", "1", "--serial", "--append", uefiCmdline); err != nil {
				if strings.Contains(out, "apt-get install "+b.pkg) {
					testenv.Need(t, false, fmt.Sprintf("the %s boot manager (apt-get install %s)", b.kind, b.pkg))
				}
				t.Fatalf("mkbootimg disk: %v\n%s", err, out)
			}
			e := b.entry(t, espReader(t, disk))
			if e.Title != "dockerinit sample_image:latest" || e.Kernel != "/dockerinit/sample_image-latest/vmlinuz" ||
				!strings.Contains(e.Cmdline, "docker_image=sample_image") || !strings.Contains(e.Cmdline, uefiCmdline) {
				t.Fatalf("the disk's first %s entry is %+v: want sample_image's, with the test's command line", b.kind, e)
			}

			v := startUEFI(t, "uefi-"+string(b.kind), r, dir, disk)
			waitUEFITestinit(t, v, b)
			t.Run("kernel got the entry's options", func(t *testing.T) {
				// Read from the finished transcript: a waitFor could match the line half printed.
				kernel := regexp.MustCompile(`^\[ *[0-9.]+\] Command line: `)
				for _, l := range v.transcript() {
					if kernel.MatchString(l.text) {
						if !strings.Contains(l.text, e.Cmdline) {
							t.Errorf("kernel %q\nwant the entry's options %q", l.text, e.Cmdline)
						}
						return
					}
				}
				t.Error(`no "Command line:" from the kernel on the console`)
			})
			f := facts(v.transcript())
			checkImageBooted(t, f, "sample_image")
			t.Run("top layer applied", func(t *testing.T) { expectFact(t, f, "hostname", "dockerinit-top") })
			t.Run("rw layer is fresh", func(t *testing.T) {
				expectFact(t, f, "previous", "absent")
				expectFact(t, f, "written", "ok")
			})
		})
	}
}

// mkdisk runs mkbootimg disk on the fixture through fixture.sh, which mounts it read-only for
// --docker-root; partition 2 gets a copy of the fixture's disk.
func mkdisk(r *rig, mkbootimg, disk string, args ...string) (string, error) {
	return mkdiskOf(r, mkbootimg, disk, "sample_image", r.disk, args...)
}

// mkdiskOf is mkdisk with image as --image and a copy of btrfs, a btrfs image holding the
// fixture's store, as partition 2.
func mkdiskOf(r *rig, mkbootimg, disk, image, btrfs string, args ...string) (string, error) {
	// fixture.sh mkboot runs its program as PROGRAM --docker-root ... --image ... --out DISK ARGS.
	wrapper := filepath.Join(filepath.Dir(disk), "mkbootimg-disk")
	script := fmt.Sprintf("#!/bin/sh\nexec %s disk \"$@\"\n", shellQuote(mkbootimg))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(r.repo, "qemu-tests", "fixture.sh"), "mkboot", r.fixture, image, disk, wrapper,
		"--btrfs-image", btrfs}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKERINIT_FIXTURE_LOCKED=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// espReader reads files from the ESP of a disk image.
func espReader(t *testing.T, disk string) func(string) string {
	t.Helper()
	esp := openESP(t, disk)
	return func(name string) string {
		b, err := esp.ReadFile(name)
		if err != nil {
			t.Fatalf("read %s from the ESP of %s: %v", name, disk, err)
		}
		return string(b)
	}
}

// openESP opens the ESP of a disk image read-only, until the test ends.
func openESP(t *testing.T, disk string) filesystem.FileSystem {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatalf("open %s: %v", disk, err)
	}
	t.Cleanup(func() { d.Close() })
	esp, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatalf("the ESP of %s: %v", disk, err)
	}
	return esp
}

func firstEntry(t *testing.T, what string, parse func() ([]bootloader.Entry, error)) bootloader.Entry {
	t.Helper()
	entries, err := parse()
	if err != nil {
		t.Fatalf("parse the disk's %s: %v", what, err)
	}
	if len(entries) == 0 {
		t.Fatalf("the disk's %s has no entries", what)
	}
	return entries[0]
}

// startUEFI boots disk with OVMF, with a fresh copy of its variable store in dir.
func startUEFI(t *testing.T, name string, r *rig, dir, disk string) *vm {
	t.Helper()
	return startOVMF(t, name, r, ovmfCode, false, freshVars(t, dir), disk)
}

// freshVars copies OVMF's empty variable store (no keys: Secure Boot in setup mode) into dir.
func freshVars(t *testing.T, dir string) string {
	t.Helper()
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	b, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return vars
}

// startOVMF boots disk with the firmware code and the variable store vars. secure runs the
// Secure Boot build as it must run: on a machine with SMM that keeps the variables from the
// guest, and with resets allowed, since enrolling keys resets the machine.
func startOVMF(t *testing.T, name string, r *rig, code string, secure bool, vars, disk string) *vm {
	t.Helper()
	accel := []string{"-accel", "tcg"}
	if os.Getenv("DOCKERINIT_KVM") == "1" {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	machine := []string{"-machine", "q35", "-no-reboot"}
	if secure {
		machine = []string{"-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"}
	}
	args := append(append(machine,
		"-m", "1024", "-smp", "2", "-nographic", "-nic", "none",
		"-drive", "if=pflash,format=raw,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+disk+",if=virtio,format=raw,cache=unsafe",
	), accel...)
	t.Logf("boot %s: qemu-system-x86_64 %s", name, quoteArgs(args))
	return startConsole(t, name, exec.Command("qemu-system-x86_64", args...), r.logDir)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
