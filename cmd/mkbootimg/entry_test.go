package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootloader"
)

// capture runs f with os.Stdout going to a pipe and returns what it printed.
func capture(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	ferr := f()
	os.Stdout = stdout
	w.Close()
	return <-done, ferr
}

func TestRunEntry(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--image", "desktop", "--also", "desktop:old", "--dir", dir, "--volume", "LABEL=linux",
		"--root", "LABEL=linux", "--docker-path", "docker", "--toplayer-path", "boot_docker", "--append", "quiet"}
	for _, tc := range []struct {
		kind  string
		parse func(string) ([]bootloader.Entry, error)
	}{
		{"refind", bootloader.ParseRefind},
		{"grub", bootloader.ParseGRUB},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			out, err := capture(t, func() error { return runEntry(append([]string{"--bootloader", tc.kind}, base...)) })
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.parse(out)
			if err != nil {
				t.Fatalf("the printed entries do not parse: %v\n%s", err, out)
			}
			if len(got) != 2 || got[0].Title != "dockerinit desktop:latest" || got[1].Title != "dockerinit desktop:old" {
				t.Fatalf("printed entries %+v, want desktop:latest then desktop:old", got)
			}
			want := "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker quiet docker_image=desktop:old"
			if got[1].Cmdline != want || got[1].Volume.Label != "linux" || !strings.HasSuffix(got[1].Kernel, "/vmlinuz") {
				t.Errorf("second entry %+v\nwant options %q on volume linux", got[1], want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no boot manager", base, "--bootloader is required"},
		{"unknown boot manager", append([]string{"--bootloader", "lilo"}, base...), "unknown boot manager"},
		{"no image", []string{"--bootloader", "grub", "--dir", dir}, "--image is required"},
		{"systemd-boot off the ESP", []string{"--bootloader", "systemd-boot", "--image", "x", "--dir", dir, "--root", "LABEL=linux"}, "not an ESP"},
		{"bad volume", []string{"--bootloader", "grub", "--image", "x", "--dir", dir, "--root", "LABEL=linux", "--volume", "linux"}, "want LABEL=NAME or UUID=UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := capture(t, func() error { return runEntry(tc.args) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("runEntry = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRunEntryTries: --tries makes the --image entry boot the list with counting, and leaves an
// entry for each --also image.
func TestRunEntryTries(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--image", "desktop", "--also", "desktop:old", "--dir", dir, "--volume", "LABEL=linux",
		"--root", "LABEL=linux", "--docker-path", "docker", "--append", "quiet dockerinit.tries=7"}
	cmdline := "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker quiet"
	for _, tc := range []struct {
		kind  string
		parse func(string) ([]bootloader.Entry, error)
	}{
		{"refind", bootloader.ParseRefind},
		{"grub", bootloader.ParseGRUB},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			out, err := capture(t, func() error {
				return runEntry(append([]string{"--bootloader", tc.kind, "--tries", "3"}, base...))
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.parse(out)
			if err != nil {
				t.Fatalf("the printed entries do not parse: %v\n%s", err, out)
			}
			want := []struct{ title, cmdline string }{
				{"dockerinit desktop:latest (falls back to desktop:old)", cmdline + " docker_image=desktop,desktop:old dockerinit.tries=3"},
				{"dockerinit desktop:old", cmdline + " dockerinit.tries=7 docker_image=desktop:old"},
			}
			if len(got) != len(want) {
				t.Fatalf("printed %d entries, want %d:\n%s", len(got), len(want), out)
			}
			for i, w := range want {
				if got[i].Title != w.title || got[i].Cmdline != w.cmdline {
					t.Errorf("entry %d: %q with %q\nwant %q with %q", i, got[i].Title, got[i].Cmdline, w.title, w.cmdline)
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no tries", []string{"--bootloader", "grub", "--tries", "0"}, "want a number of boots from 1 to 100"},
		{"too many tries", []string{"--bootloader", "grub", "--tries", "101"}, "want a number of boots from 1 to 100"},
		{"nothing to fall back to", []string{"--bootloader", "grub", "--tries", "2", "--image", "desktop"}, "give the images to fall back to with --also"},
		{"an image twice", []string{"--bootloader", "grub", "--tries", "2", "--image", "desktop", "--also", "desktop"}, `image "desktop" is listed twice`},
		{"too long a list", append([]string{"--bootloader", "grub", "--tries", "2", "--image", "desktop"}, manyAlso(16)...), "a boot entry lists at most 16"},
		{"systemd-boot counting with GRUB", []string{"--bootloader", "grub", "--tries", "2", "--image", "desktop", "--also", "desktop:old", "--systemd-boot-counting"}, "needs --bootloader systemd-boot and --tries N"},
		{"systemd-boot counting without tries", []string{"--bootloader", "systemd-boot", "--image", "desktop", "--also", "desktop:old", "--systemd-boot-counting"}, "needs --bootloader systemd-boot and --tries N"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--dir", dir, "--volume", "LABEL=linux", "--root", "LABEL=linux", "--docker-path", "docker")
			if !slices.Contains(tc.args, "--image") {
				args = append(args, "--image", "desktop", "--also", "desktop:old")
			}
			_, err := capture(t, func() error { return runEntry(args) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("runEntry = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// manyAlso is n --also flags, each a tag of desktop.
func manyAlso(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--also", fmt.Sprintf("desktop:%d", i))
	}
	return args
}
