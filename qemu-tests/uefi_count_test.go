package qemutests

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

// TestUEFIFallback shows boot counting through rEFInd and GRUB under OVMF, from disks written by
// mkbootimg disk --tries: the first menu entry boots other_image with sample_image to fall back
// to, and ditest.fail= makes other_image's init fail. The same disk boots three times: other_image
// takes its two tries and fails, then the initramfs boots sample_image by itself, whose init marks
// the boot good; the record that counts lives on the disk's btrfs, so the boot manager plays no
// part in it. Under systemd-boot one boot shows its own counting (--systemd-boot-counting)
// running beside ours: it renames the counted entry's file as it starts it.
func TestUEFIFallback(t *testing.T) {
	r := requireRig(t)
	testenv.Need(t, fileExists(ovmfCode) && fileExists(ovmfVars), "OVMF firmware "+ovmfCode+" (apt-get install ovmf)")
	mkbootimg := filepath.Join(rigTemp, "bin", "mkbootimg")
	btrfs := filepath.Join(t.TempDir(), "btrfs.img")
	copyWithCountInit(t, r, btrfs) // each disk gets a copy of it, and so a record of its own
	const (
		title = "dockerinit other_image:latest (falls back to sample_image:latest)"
		list  = "docker_image=other_image,sample_image dockerinit.tries=2"
	)
	cmdline := "console=ttyS0 panic=-1 no_timer_check init=/usr/local/sbin/countinit ditest.fail=other_image"
	for _, b := range []struct {
		kind    bootloader.Kind
		pkg     string
		menu    *regexp.Regexp // the boot manager starting the counted entry
		entries func(read func(string) string) ([]bootloader.Entry, error)
	}{
		{bootloader.Refind, "refind", regexp.MustCompile(`^Using load options '.*` + list),
			func(read func(string) string) ([]bootloader.Entry, error) {
				return bootloader.ParseRefind(read("EFI/BOOT/refind.conf"))
			}},
		{bootloader.GRUB, "grub-efi-amd64-bin", regexp.MustCompile("Booting `" + regexp.QuoteMeta(title) + "'"),
			func(read func(string) string) ([]bootloader.Entry, error) {
				return bootloader.ParseGRUB(read("EFI/BOOT/grub.cfg"))
			}},
	} {
		t.Run(string(b.kind), func(t *testing.T) {
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.img")
			if out, err := mkdiskOf(r, mkbootimg, disk, "other_image", btrfs, "--bootloader", string(b.kind), "--also", "sample_image", "--tries", "2",
				"--toplayer-path", "boot_docker", "--timeout", "1", "--serial", "--append", cmdline); err != nil {
				if strings.Contains(out, "apt-get install "+b.pkg) {
					testenv.Need(t, false, fmt.Sprintf("the %s boot manager (apt-get install %s)", b.kind, b.pkg))
				}
				t.Fatalf("mkbootimg disk: %v\n%s", err, out)
			}
			entries, err := b.entries(espReader(t, disk))
			if err != nil {
				t.Fatalf("the disk's %s menu: %v", b.kind, err)
			}
			if len(entries) != 2 || entries[0].Title != title || !strings.Contains(entries[0].Cmdline, list) ||
				entries[1].Title != "dockerinit sample_image:latest" || !strings.Contains(entries[1].Cmdline, "docker_image=sample_image") ||
				strings.Contains(entries[1].Cmdline, "dockerinit.tries") {
				t.Fatalf("the disk's %s menu is %+v: want the counted entry %q (%s), then sample_image's own", b.kind, entries, title, list)
			}

			for try := 1; try <= 2; try++ {
				v := startUEFI(t, fmt.Sprintf("uefi-fallback-%s-%d", b.kind, try), r, dir, disk)
				if _, err := v.waitFor(b.menu, uefiTimeout); err != nil {
					v.stop()
					t.Fatalf("boot %d: %s never started the counted entry: %v\n%s", try, b.kind, err, v.tail(30))
				}
				if _, err := v.waitFor(regexp.MustCompile(fmt.Sprintf(`dockerinit: booting other_image \(try %d of 2\)`, try)), uefiTimeout); err != nil {
					v.stop()
					t.Fatalf("boot %d did not take try %d of other_image: %v\n%s", try, try, err, v.tail(30))
				}
				if _, err := v.waitFor(regexp.MustCompile(`DITEST failing`), uefiTimeout); err != nil {
					v.stop()
					t.Fatalf("boot %d: other_image's init did not run: %v", try, err)
				}
				if err := v.waitExit(poweroffTimeout); err != nil { // the panic resets the machine
					t.Errorf("boot %d: %v", try, err)
				}
			}
			v := startUEFI(t, fmt.Sprintf("uefi-fallback-%s-3", b.kind), r, dir, disk)
			if _, err := v.waitFor(b.menu, uefiTimeout); err != nil {
				v.stop()
				t.Fatalf("boot 3: %s never started the counted entry: %v\n%s", b.kind, err, v.tail(30))
			}
			if _, err := v.waitFor(regexp.MustCompile(`dockerinit: warning: other_image failed 2 boots: booting sample_image instead`), uefiTimeout); err != nil {
				v.stop()
				t.Fatalf("the third boot did not say it falls back: %v\n%s", err, v.tail(30))
			}
			checkFellBack(t, waitCountInit(t, v))
		})
	}

	t.Run("systemd-boot counts too", func(t *testing.T) {
		dir := t.TempDir()
		disk := filepath.Join(dir, "disk.img")
		if out, err := mkdiskOf(r, mkbootimg, disk, "other_image", btrfs, "--bootloader", "systemd-boot", "--also", "sample_image", "--tries", "2",
			"--systemd-boot-counting", "--toplayer-path", "boot_docker", "--timeout", "1", "--serial", "--append", cmdline); err != nil {
			if strings.Contains(out, "apt-get install systemd-boot-efi") {
				testenv.Need(t, false, "the systemd-boot boot manager (apt-get install systemd-boot-efi)")
			}
			t.Fatalf("mkbootimg disk: %v\n%s", err, out)
		}
		const id = "dockerinit-other_image-latest"
		if names := espDir(t, disk, "loader/entries"); !slices.Contains(names, id+"+2.conf") {
			t.Fatalf("the disk's systemd-boot entries are %q: want %s+2.conf, two tries for systemd-boot", names, id)
		}
		v := startUEFI(t, "uefi-fallback-systemd-boot", r, dir, disk)
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: booting other_image \(try 1 of 2\)`), uefiTimeout); err != nil {
			v.stop()
			t.Fatalf("systemd-boot did not start the counted entry, or it did not take try 1 of other_image: %v\n%s", err, v.tail(30))
		}
		if _, err := v.waitFor(regexp.MustCompile(`DITEST failing`), uefiTimeout); err != nil {
			v.stop()
			t.Fatalf("other_image's init did not run: %v", err)
		}
		if err := v.waitExit(poweroffTimeout); err != nil {
			t.Error(err)
		}
		// systemd-boot took one of its two tries, as dockerinit took one of its own.
		if names := espDir(t, disk, "loader/entries"); !slices.Contains(names, id+"+1-1.conf") || slices.Contains(names, id+"+2.conf") {
			t.Errorf("after a boot, the entries are %q: want systemd-boot's renaming of %s+2.conf to %s+1-1.conf", names, id, id)
		}
	})
}

// espDir lists the names in a folder of a disk image's ESP.
func espDir(t *testing.T, disk, dir string) []string {
	t.Helper()
	infos, err := openESP(t, disk).ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s on the ESP of %s: %v", dir, disk, err)
	}
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	return names
}
