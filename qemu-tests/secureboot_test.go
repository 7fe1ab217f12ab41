package qemutests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/testenv"
	"github.com/dockerinit/dockerinit/status"
	"github.com/dockerinit/dockerinit/uki"
)

// Debian's OVMF built with Secure Boot (and SMM, which it needs).
const ovmfSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"

// ukiName is the file of sample_image's UKI in the ESP's EFI/Linux/.
const ukiName = "dockerinit-sample_image-latest.efi"

// TestSecureBoot boots a disk from mkbootimg disk --secure-boot (an image counted, one to fall
// back to) under OVMF's Secure Boot build with an empty variable store (setup mode): systemd-boot
// enrolls the disk's keys and resets, and the firmware, now enforcing, boots the signed
// systemd-boot and the default signed UKI into the image, whose boot.json says Secure Boot was on
// and the command line sealed. Then, with the keys enrolled: the fallback image's own UKI boots,
// picked in the menu; a disk signed with other keys and a UKI changed after signing are refused
// by the firmware; and on firmware without Secure Boot, where systemd-boot passes an edited
// command line on, the initramfs ignores it.
func TestSecureBoot(t *testing.T) {
	r := requireRig(t)
	testenv.Need(t, fileExists(ovmfSecureCode) && fileExists(ovmfVars), "OVMF's Secure Boot firmware "+ovmfSecureCode+" (apt-get install ovmf)")
	testenv.Tools(t, "sbsigntool", "sbsign", "sbverify")
	testenv.Tools(t, "efitools", "cert-to-efi-sig-list", "sign-efi-sig-list")
	testenv.Tools(t, "openssl", "openssl")
	mkbootimg := filepath.Join(rigTemp, "bin", "mkbootimg")
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if out, err := exec.Command(mkbootimg, "keys", "--out", keys).CombinedOutput(); err != nil {
		t.Fatalf("mkbootimg keys: %v\n%s", err, out)
	}
	disk := filepath.Join(dir, "disk.img")
	out, err := mkdisk(r, mkbootimg, disk, "--secure-boot", "--keys", keys, "--also", "other_image", "--tries", "2",
		"--toplayer-path", "boot_docker", "--timeout", "3", "--append", uefiCmdline)
	if err != nil {
		t.Fatalf("mkbootimg disk --secure-boot: %v\n%s", err, out)
	}
	t.Logf("mkbootimg disk --secure-boot:\n%s", out)
	sealed := checkSecureESP(t, espReader(t, disk), filepath.Join(keys, "db.crt"), dir)

	vars := freshVars(t, dir)
	t.Run("enroll, then boot enforcing", func(t *testing.T) {
		v := startOVMF(t, "secureboot-enroll", r, ovmfSecureCode, true, vars, disk)
		if _, err := v.waitFor(regexp.MustCompile(`Enrolling secure boot keys`), uefiTimeout); err != nil {
			t.Fatalf("systemd-boot did not enroll the keys: %v", err)
		}
		waitFirmwareTestinit(t, v, uefiTimeout+time.Minute) // the enrollment resets the machine first
		f := facts(v.transcript())
		checkImageBooted(t, f, "sample_image")
		rep := bootReport(t, f)
		if rep.SecureBoot != "on" || !rep.CmdlineSealed || len(rep.Ignored) > 0 {
			t.Errorf("boot.json: secure_boot %q, cmdline_sealed %v, ignored %q; want on, true, none", rep.SecureBoot, rep.CmdlineSealed, rep.Ignored)
		}
		if !seen(v, `Command line: `+regexp.QuoteMeta(sealed)) {
			t.Errorf("the kernel's command line is not the sealed one %q", sealed)
		}
	})
	if t.Failed() {
		return // the next boots need the keys enrolled
	}

	t.Run("the fallback image's UKI boots enforcing", func(t *testing.T) {
		// systemd-boot lists the two UKIs, the default (sample_image's, counted) first: one key
		// down is other_image's, which boots with its own sealed line.
		v := startOVMF(t, "secureboot-fallback", r, ovmfSecureCode, true, vars, disk)
		if _, err := v.waitFor(regexp.MustCompile(`Boot in`), uefiTimeout); err != nil {
			t.Fatalf("no systemd-boot menu: %v", err)
		}
		for _, keys := range []string{"\x1b[B", "\r"} {
			if err := v.send(keys); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		waitFirmwareTestinit(t, v, uefiTimeout)
		f := facts(v.transcript())
		checkImageBooted(t, f, "other_image")
		rep := bootReport(t, f)
		if rep.SecureBoot != "on" || !rep.CmdlineSealed || len(rep.Ignored) > 0 {
			t.Errorf("boot.json: secure_boot %q, cmdline_sealed %v, ignored %q; want on, true, none", rep.SecureBoot, rep.CmdlineSealed, rep.Ignored)
		}
	})

	t.Run("a disk signed with other keys is refused", func(t *testing.T) {
		other := filepath.Join(dir, "other-keys")
		if out, err := exec.Command(mkbootimg, "keys", "--out", other).CombinedOutput(); err != nil {
			t.Fatalf("mkbootimg keys: %v\n%s", err, out)
		}
		odisk := filepath.Join(dir, "other.img")
		if out, err := mkdisk(r, mkbootimg, odisk, "--secure-boot", "--keys", other, "--timeout", "1", "--append", uefiCmdline); err != nil {
			t.Fatalf("mkbootimg disk: %v\n%s", err, out)
		}
		v := startOVMF(t, "secureboot-other-keys", r, ovmfSecureCode, true, vars, odisk)
		if _, err := v.waitFor(regexp.MustCompile(`Access Denied|Security Violation`), uefiTimeout); err != nil {
			t.Fatalf("the firmware did not refuse systemd-boot signed with other keys: %v", err)
		}
		if seen(v, `Linux version|DITEST`) {
			t.Error("a kernel started from the disk signed with other keys")
		}
	})

	t.Run("a UKI changed after signing is refused", func(t *testing.T) {
		// One byte of the sealed command line changed on the ESP, rw to ro (any change breaks
		// the signature alike): systemd-boot, signed, still starts, and the firmware refuses to
		// load the UKI it picks.
		tampered := filepath.Join(dir, "tampered.img")
		runOrFatal(t, "cp", "--sparse=always", disk, tampered)
		efi := filepath.Join(dir, "tampered.efi")
		if err := os.WriteFile(efi, []byte(espReader(t, tampered)("EFI/Linux/"+ukiName)), 0o644); err != nil {
			t.Fatal(err)
		}
		secs, err := uki.Sections(efi)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(efi)
		i := strings.Index(string(b), string(secs[".cmdline"]))
		if i < 0 {
			t.Fatal("the UKI's command line is not in its bytes")
		}
		rw := strings.Index(sealed, " rw ")
		if rw < 0 {
			t.Fatalf("no rw in the sealed line %q", sealed)
		}
		b[i+rw+2] = 'o' // rw becomes ro
		if err := os.WriteFile(efi, b, 0o644); err != nil {
			t.Fatal(err)
		}
		espWrite(t, tampered, "EFI/Linux/"+ukiName, efi)
		v := startOVMF(t, "secureboot-tampered", r, ovmfSecureCode, true, vars, tampered)
		if _, err := v.waitFor(regexp.MustCompile(`Access Denied|Security Violation`), uefiTimeout); err != nil {
			t.Fatalf("the firmware did not refuse the changed UKI: %v", err)
		}
		if seen(v, `Linux version|DITEST`) {
			t.Error("a kernel started from the changed UKI")
		}
	})

	t.Run("an edited command line is ignored", func(t *testing.T) {
		// Firmware with Secure Boot off (OVMF's build without SMM, its variables empty, and no
		// keys to enroll: a machine whose owner never enrolled them, or turned Secure Boot off):
		// systemd-boot's editor works and the stub passes the edited line on, so only the
		// initramfs stands between the menu and the boot. The disk's loader.conf loses its
		// secure-boot-enroll line, which would otherwise enroll the keys here too.
		conf := strings.ReplaceAll(espReader(t, disk)("loader/loader.conf"), "secure-boot-enroll force\n", "")
		p := filepath.Join(dir, "loader.conf")
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		espWrite(t, disk, "loader/loader.conf", p)
		v := startOVMF(t, "secureboot-edited", r, ovmfCode, false, freshVars(t, t.TempDir()), disk)
		if _, err := v.waitFor(regexp.MustCompile(`Boot in`), uefiTimeout); err != nil {
			t.Fatalf("no systemd-boot menu: %v", err)
		}
		// e edits the entry, Ctrl-E goes to the end of its line, Enter boots it; each after the
		// last had time to land under TCG.
		for _, keys := range []string{"e", "\x05 init=/bin/sh dockerinit.rescue ", "\r"} {
			if err := v.send(keys); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
		}
		ignored := regexp.MustCompile(`sealed in the UKI: ignoring what the boot loader added: .*init=/bin/sh dockerinit.rescue`)
		if _, err := v.waitFor(ignored, uefiTimeout); err != nil {
			t.Fatalf("the initramfs did not say it ignored the edit: %v", err)
		}
		waitFirmwareTestinit(t, v, uefiTimeout)
		rep := bootReport(t, facts(v.transcript()))
		if !rep.CmdlineSealed || !slices.Contains(rep.Ignored, "init=/bin/sh") || rep.SecureBoot == "on" {
			t.Errorf("boot.json: secure_boot %q, cmdline_sealed %v, ignored %q; want not on, true, init=/bin/sh among them", rep.SecureBoot, rep.CmdlineSealed, rep.Ignored)
		}
	})
}

// checkSecureESP checks the disk's ESP before it boots: loader.conf enrolls the keys and boots
// the counted UKI of sample_image, which lists other_image to fall back to; other_image has a UKI
// of its own. db signed both. It returns the counted UKI's sealed command line.
func checkSecureESP(t *testing.T, read func(string) string, dbCert, dir string) string {
	t.Helper()
	conf := read("loader/loader.conf")
	if !strings.Contains(conf, "default "+ukiName+"\n") || !strings.Contains(conf, "secure-boot-enroll force\n") {
		t.Fatalf("loader.conf does not enroll the keys and boot the UKI:\n%s", conf)
	}
	for _, k := range uki.KeyNames {
		read("loader/keys/auto/" + k + ".auth")
	}
	var counted string
	for name, want := range map[string]string{
		ukiName:                             " docker_image=sample_image,other_image dockerinit.tries=2",
		"dockerinit-other_image-latest.efi": " docker_image=other_image",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(read("EFI/Linux/"+name)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := uki.Verify(p, dbCert); err != nil {
			t.Fatal(err)
		}
		secs, err := uki.Sections(p)
		if err != nil {
			t.Fatal(err)
		}
		line := string(secs[".cmdline"])
		if !strings.Contains(line, uefiCmdline) || !strings.HasSuffix(line, want) || !strings.Contains(string(secs[".osrel"]), "ID=") {
			t.Fatalf("%s: the command line %q lacks the test's %q or does not end in %q, or its os-release is empty", name, line, uefiCmdline, want)
		}
		if name == ukiName {
			counted = line
		}
	}
	return counted
}

// bootReport is boot.json as testinit printed it.
func bootReport(t *testing.T, f map[string][]string) status.Report {
	t.Helper()
	var r status.Report
	if err := json.Unmarshal([]byte(strings.Join(f["bootjson"], "\n")), &r); err != nil {
		t.Fatalf("boot.json: %v", err)
	}
	return r
}

// espWrite replaces the file name on the ESP (partition 1) of disk with the host file src, with
// mtools at the partition's offset.
func espWrite(t *testing.T, disk, name, src string) {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatalf("open %s: %v", disk, err)
	}
	table, err := d.GetPartitionTable()
	d.Close()
	if err != nil {
		t.Fatalf("the partition table of %s: %v", disk, err)
	}
	parts := table.GetPartitions()
	if len(parts) == 0 {
		t.Fatalf("%s has no partitions", disk)
	}
	runOrFatal(t, "mcopy", "-o", "-i", fmt.Sprintf("%s@@%d", disk, parts[0].GetStart()), src, "::"+name)
}

// TestUKIBootManagers boots disks from mkbootimg disk --uki under OVMF without Secure Boot,
// through GRUB (an entry that chain-loads the UKI) and rEFInd (one that loads it): each reaches
// the image's init on the command line sealed in the UKI. systemd-boot's way, a UKI with no entry,
// is TestSecureBoot's.
func TestUKIBootManagers(t *testing.T) {
	r := requireRig(t)
	testenv.Need(t, fileExists(ovmfCode) && fileExists(ovmfVars), "OVMF firmware "+ovmfCode+" (apt-get install ovmf)")
	mkbootimg := filepath.Join(rigTemp, "bin", "mkbootimg")
	for _, b := range uefiBoots {
		if b.kind == bootloader.SystemdBoot {
			continue
		}
		t.Run(string(b.kind), func(t *testing.T) {
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.img")
			if out, err := mkdisk(r, mkbootimg, disk, "--uki", "--bootloader", string(b.kind), "--toplayer-path", "boot_docker",
				"--timeout", "1", "--serial", "--append", uefiCmdline); err != nil {
				t.Fatalf("mkbootimg disk --uki: %v\n%s", err, out)
			}
			read := espReader(t, disk)
			e := b.entry(t, read)
			if want := "/EFI/Linux/" + ukiName; e.Kernel != want || e.Initrd != "" || e.Cmdline != "" {
				t.Fatalf("the disk's first %s entry is %+v: want one that starts %s", b.kind, e, want)
			}
			p := filepath.Join(dir, ukiName)
			if err := os.WriteFile(p, []byte(read("EFI/Linux/"+ukiName)), 0o644); err != nil {
				t.Fatal(err)
			}
			secs, err := uki.Sections(p)
			if err != nil {
				t.Fatal(err)
			}
			sealed := string(secs[".cmdline"])

			v := startUEFI(t, "uki-"+string(b.kind), r, dir, disk)
			waitFirmwareTestinit(t, v, uefiTimeout)
			f := facts(v.transcript())
			checkImageBooted(t, f, "sample_image")
			rep := bootReport(t, f)
			if !rep.CmdlineSealed {
				t.Errorf("boot.json: cmdline_sealed false; want the UKI's line %q", sealed)
			}
			// With Secure Boot off the stub passes on what the boot manager gave, if anything;
			// the initramfs booted from the sealed line either way.
			t.Logf("%s: the kernel's command line %s; the initramfs ignored %q", b.kind,
				map[bool]string{true: "was the sealed one", false: "was the boot manager's"}[seen(v, `Command line: `+regexp.QuoteMeta(sealed))], rep.Ignored)
		})
	}
}
