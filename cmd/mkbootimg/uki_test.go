package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/initramfs"
	"github.com/dockerinit/dockerinit/internal/testenv"
	"github.com/dockerinit/dockerinit/uki"
)

// TestRunUKI builds a UKI from an unpacked root twice: the same bytes, the command line printed
// is the one in .cmdline and the one the initramfs embeds as boot.sealed_cmdline, and a
// --sealed-cmdline that says otherwise is refused.
func TestRunUKI(t *testing.T) {
	testenv.Tools(t, "binutils", "objcopy")
	_, err := os.Stat(uki.DefaultStub)
	testenv.Need(t, err == nil, "systemd's EFI stub (apt-get install systemd-boot-efi)")
	dir := t.TempDir()
	rootfs, initBin := filepath.Join(dir, "rootfs"), filepath.Join(dir, "dockerinit")
	for name, data := range map[string]string{
		filepath.Join(rootfs, "boot", "vmlinuz-6.1.0-1-amd64"): "MZ fake kernel",
		filepath.Join(rootfs, "etc", "os-release"):             "PRETTY_NAME=\"Test OS\"\nID=test\n",
		initBin: "\x7fELF fake init",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"--rootfs", rootfs, "--init", initBin, "--modules", "none", "--image", "desktop", "--root", "LABEL=store", "--append", "console=ttyS0  quiet"}
	const want = "root=LABEL=store rootflags=subvol=docker_rwlayer rw docker_path=var/lib/docker console=ttyS0 quiet"
	var builds [][]byte
	for i := range 2 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // objcopy stamps its output with the second it runs
		}
		out := filepath.Join(dir, "uki"+string(rune('a'+i))+".efi")
		printed, err := capture(t, func() error { return runUKI(append([]string{"--out", out}, base...)) })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(printed, "sealed kernel command line:\n  "+want+"\n") || !strings.Contains(printed, "unsigned: Secure Boot refuses it") {
			t.Errorf("mkbootimg uki printed:\n%s", printed)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		builds = append(builds, b)
		secs, err := uki.Sections(out)
		if err != nil {
			t.Fatal(err)
		}
		if string(secs[".cmdline"]) != want || string(secs[".linux"]) != "MZ fake kernel" || !strings.Contains(string(secs[".osrel"]), "ID=test") {
			t.Errorf("sections: .cmdline %q, .linux %q, .osrel %q", secs[".cmdline"], secs[".linux"], secs[".osrel"])
		}
		entries, err := initramfs.Read(secs[".initrd"])
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(entries, func(e initramfs.Entry) bool { return e.Path == "etc/dockerinit.toml" })
		if i < 0 {
			t.Fatal("no etc/dockerinit.toml in the UKI's initramfs")
		}
		cfg, err := bootparam.DecodeConfig(entries[i].Data)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Boot.SealedCmdline != want {
			t.Errorf("the initramfs seals %q, want %q", cfg.Boot.SealedCmdline, want)
		}
	}
	if !bytes.Equal(builds[0], builds[1]) {
		t.Error("two builds of the same image differ")
	}
	_, err = capture(t, func() error {
		return runUKI(append([]string{"--out", filepath.Join(dir, "c.efi"), "--sealed-cmdline", "root=/dev/sda"}, base...))
	})
	if err == nil || !strings.Contains(err.Error(), `--sealed-cmdline (or boot.sealed_cmdline of --config) says "root=/dev/sda"`) {
		t.Errorf("a contrary --sealed-cmdline: %v", err)
	}
	if _, err := capture(t, func() error { return runUKI(base) }); err == nil || !strings.Contains(err.Error(), "--out is required") {
		t.Errorf("no --out: %v", err)
	}

	t.Run("install --uki", func(t *testing.T) {
		esp := t.TempDir()
		if _, err := capture(t, func() error {
			return runInstall(append([]string{"--uki", "--bootloader", "systemd-boot", "--esp", esp}, base...))
		}); err != nil {
			t.Fatal(err)
		}
		sections := func(name string) map[string][]byte {
			t.Helper()
			secs, err := uki.Sections(filepath.Join(esp, "EFI", "Linux", name))
			if err != nil {
				t.Fatal(err)
			}
			return secs
		}
		sealed := func(name string) string { return string(sections(name)[".cmdline"]) }
		if got := sealed("dockerinit-desktop-latest.efi"); got != want+" docker_image=desktop" {
			t.Errorf("the installed UKI's command line: %q", got)
		}
		if entries, _ := os.ReadDir(filepath.Join(esp, "loader")); len(entries) > 0 {
			t.Errorf("install --uki wrote loader files: %v", entries)
		}
		// With images to fall back to, one UKI each; the first counts its tries and lists them.
		if _, err := capture(t, func() error {
			return runInstall(append([]string{"--uki", "--bootloader", "systemd-boot", "--esp", esp, "--also", "desktop:old", "--tries", "2"}, base...))
		}); err != nil {
			t.Fatal(err)
		}
		for name, line := range map[string]string{
			"dockerinit-desktop-latest.efi": want + " docker_image=desktop,desktop:old dockerinit.tries=2",
			"dockerinit-desktop-old.efi":    want + " docker_image=desktop:old",
		} {
			if got := sealed(name); got != line {
				t.Errorf("%s seals %q, want %q", name, got, line)
			}
		}
		if osrel := string(sections("dockerinit-desktop-old.efi")[".osrel"]); !strings.Contains(osrel, "ID=test\n") || !strings.HasSuffix(osrel, "PRETTY_NAME=\"dockerinit desktop:old\"\n") {
			t.Errorf("the fallback's os-release does not title it as its entry:\n%s", osrel)
		}
		// GRUB: the same UKIs, and one menuentry each that chain-loads it from the ESP.
		cfg := filepath.Join(t.TempDir(), "custom.cfg")
		if _, err := capture(t, func() error {
			return runInstall(append([]string{"--uki", "--bootloader", "grub", "--esp", esp, "--bootloader-config", cfg, "--volume", "LABEL=ESP", "--also", "desktop:old", "--tries", "2"}, base...))
		}); err != nil {
			t.Fatal(err)
		}
		text, _ := os.ReadFile(cfg)
		got, err := bootloader.ParseGRUB(string(text))
		if err != nil {
			t.Fatal(err)
		}
		want := []bootloader.Entry{
			{ID: "dockerinit-desktop-latest", Title: "dockerinit desktop:latest (falls back to desktop:old)", Volume: bootloader.Volume{Label: "ESP"}, Kernel: "/EFI/Linux/dockerinit-desktop-latest.efi", UKI: true},
			{ID: "dockerinit-desktop-old", Title: "dockerinit desktop:old", Volume: bootloader.Volume{Label: "ESP"}, Kernel: "/EFI/Linux/dockerinit-desktop-old.efi", UKI: true},
		}
		for i := range got {
			// The entry names the UKI's path on the file system holding --esp (here a folder of
			// the test's, not a mount point) and that file system's type: neither is the ESP's.
			if p := got[i].Kernel; strings.HasSuffix(p, want[min(i, len(want)-1)].Kernel) && strings.HasPrefix(p, esp) {
				got[i].Kernel = strings.TrimPrefix(p, esp)
			}
			got[i].Volume.FSType = ""
		}
		if !slices.Equal(got, want) {
			t.Errorf("custom.cfg:\n%s\nread back %+v, want %+v", text, got, want)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--uki", "--bootloader", "refind-linux", "--esp", esp}, "a UKI takes none: use --bootloader refind"},
			{[]string{"--uki", "--bootloader", "grub", "--esp", esp, "--out", esp}, "--out: UKIs go to ESP/EFI/Linux/"},
			{[]string{"--uki", "--bootloader", "systemd-boot"}, "--esp is required"},
			{[]string{"--uki", "--bootloader", "systemd-boot", "--esp", esp, "--also", "desktop:old", "--tries", "2", "--systemd-boot-counting"}, "a UKI is counted by dockerinit (--tries)"},
			{[]string{"--bootloader", "systemd-boot", "--esp", esp, "--keys", esp}, "--keys and --stub make UKIs: add --uki"},
			{[]string{"--uki", "--bootloader", "systemd-boot", "--esp", esp, "--keys", filepath.Join(esp, "none")}, "mkbootimg keys --out"},
		} {
			if _, err := capture(t, func() error { return runInstall(append(tc.args, base...)) }); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("install %q: %v, want an error containing %q", tc.args, err, tc.want)
			}
		}
	})
}
