package main

import (
	"io"
	"os"
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
