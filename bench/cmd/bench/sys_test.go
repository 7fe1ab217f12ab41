package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

func TestConsoleStuck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string // the sign reported, "" for none
	}{
		{"clean boot", []string{"[ 1.0] Run /init as init process\n", "DITEST start uptime=3\n"}, ""},
		{"panic", []string{"[ 2.0] Kernel panic - not syncing: VFS\n"}, "Kernel panic"},
		{"prompt split over writes", []string{"Gave", " up waiting for root file system device.\r\n(initr", "amfs) "}, "Gave up waiting"},
		{"sign split in the middle", []string{"...\nEntering emer", "gency mode. Exit the shell"}, "emergency mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &console{stuck: make(chan string, 1)}
			for _, w := range tc.writes {
				if _, err := c.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			got := ""
			select {
			case got = <-c.stuck:
			default:
			}
			if got != tc.want {
				t.Errorf("stuck sign %q, want %q", got, tc.want)
			}
			if all := strings.Join(tc.writes, ""); string(c.bytes()) != all {
				t.Errorf("console kept %q, want every byte written: %q", c.bytes(), all)
			}
		})
	}
}

func TestMissingPackages(t *testing.T) {
	only := func(missing ...string) func(string) (string, error) {
		return func(c string) (string, error) {
			for _, m := range missing {
				if c == m {
					return "", exec.ErrNotFound
				}
			}
			return "/usr/bin/" + c, nil
		}
	}
	for _, tc := range []struct {
		name     string
		lookPath func(string) (string, error)
		want     []string
	}{
		{"all there", only(), nil},
		{"a package named once for two commands", only("btrfs", "mkfs.btrfs", "qemu-system-x86_64"), []string{"qemu-system-x86", "btrfs-progs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := missingPackages(tc.lookPath); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("missingPackages = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/plain":         "/mnt/plain",
		`/mnt/with\040space`: "/mnt/with space",
		`/mnt/tab\011x`:      "/mnt/tab\tx",
		`/mnt/back\134slash`: `/mnt/back\slash`,
		`/mnt/short\04`:      `/mnt/short\04`,
		`/mnt/not\9octal`:    `/mnt/not\9octal`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRemoveTreeRefusesMounts(t *testing.T) {
	testenv.Root(t, "mounting a tmpfs below the tree")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree with space")
	mnt := filepath.Join(tree, "dev")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	keep := filepath.Join(mnt, "null")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := removeTree(tree)
	if err == nil || !strings.Contains(err.Error(), "still mounted below it") || !strings.Contains(err.Error(), mnt) {
		t.Fatalf("removeTree = %v, want a refusal naming %s", err, mnt)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("removeTree deleted through the mount: %v", err)
	}
	if err := unmountDir(mnt); err != nil {
		t.Fatal(err)
	}
	if err := removeTree(tree); err != nil {
		t.Fatalf("removeTree once unmounted: %v", err)
	}
	if _, err := os.Stat(tree); !os.IsNotExist(err) {
		t.Errorf("the tree is still there: %v", err)
	}
}
