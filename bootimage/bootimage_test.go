package bootimage

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/imagestore"
	"github.com/dockerinit/dockerinit/initramfs"
)

func TestBuildFromRootFS(t *testing.T) {
	root := tree(t, "lib -> usr/lib", "usr/lib/modules/6.1.0-1-amd64/", "boot/vmlinuz-6.1.0-1-amd64")
	initBin := filepath.Join(t.TempDir(), "dockerinit")
	if err := os.WriteFile(initBin, []byte("\x7fELF fake init"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := func(out string) *Result {
		t.Helper()
		res, err := Build(Options{
			RootFS: root, Init: initBin, Out: out, Image: "desktop:latest", NoModules: true, // modules: see kmod/modtree and the QEMU tests
			Config: bootparam.Config{Root: bootparam.RootConfig{DockerPath: "docker"}, TopLayer: bootparam.TopLayerConfig{Path: "boot_docker"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	out1, out2 := t.TempDir(), filepath.Join(t.TempDir(), "new", "dir")
	res := build(out1)
	build(out2)

	img1, _ := os.ReadFile(filepath.Join(out1, "initramfs.img"))
	img2, _ := os.ReadFile(filepath.Join(out2, "initramfs.img"))
	if len(img1) == 0 || !bytes.Equal(img1, img2) {
		t.Fatalf("two builds from the same inputs differ (%d and %d bytes)", len(img1), len(img2))
	}
	kernel, _ := os.ReadFile(filepath.Join(out1, "vmlinuz"))
	if string(kernel) != "kernel boot/vmlinuz-6.1.0-1-amd64" {
		t.Errorf("vmlinuz holds %q", kernel)
	}
	if want := "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker"; res.Cmdline != want {
		t.Errorf("command line\n got %s\nwant %s", res.Cmdline, want)
	}
	entries, err := initramfs.Read(img1)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]initramfs.Entry{}
	for _, e := range entries {
		files[e.Path] = e
	}
	if e := files["init"]; string(e.Data) != "\x7fELF fake init" || e.Mode.Perm() != 0o755 {
		t.Errorf("/init: %+v", e)
	}
	if _, ok := files["dev/console"]; !ok {
		t.Error("no dev/console")
	}
	cfg, err := bootparam.DecodeConfig(files["etc/dockerinit.toml"].Data)
	if err != nil {
		t.Fatalf("embedded dockerinit.toml: %v", err)
	}
	if cfg.Image != "desktop:latest" || cfg.Root.DockerPath != "docker" || cfg.TopLayer.Path != "boot_docker" {
		t.Errorf("embedded config %+v", cfg)
	}
	// The embedded configuration and the printed command line boot together.
	p, err := bootparam.Resolve(cfg, "", res.Cmdline)
	if err != nil || p.Image != "desktop:latest" || p.RWLayer != "docker_rwlayer" {
		t.Errorf("Resolve: %+v, %v", p, err)
	}
}

func TestBuildErrors(t *testing.T) {
	initBin := filepath.Join(t.TempDir(), "dockerinit")
	os.WriteFile(initBin, []byte("x"), 0o755)
	for _, tc := range []struct {
		name    string
		entries []string
		o       Options
		want    string
	}{
		{"no modules dir", []string{"boot/vmlinuz-6.1.0-1-amd64"}, Options{Init: initBin}, "no lib/modules/6.1.0-1-amd64"},
		{"no modules needed", []string{"boot/vmlinuz-6.1.0-1-amd64"}, Options{Init: initBin, NoModules: true}, ""},
		{"no init binary", []string{"boot/vmlinuz-6.1.0-1-amd64"}, Options{Init: "/nonexistent/dockerinit", NoModules: true}, "make build"},
		{"rw layer in docker root", []string{"boot/vmlinuz-6.1.0-1-amd64"}, Options{Init: initBin, NoModules: true,
			Config: bootparam.Config{Root: bootparam.RootConfig{DockerPath: "docker", RWLayer: "docker/rw"}}}, "would not boot"},
		{"unknown module", []string{"boot/vmlinuz-6.1.0-1-amd64", "lib/modules/6.1.0-1-amd64/"}, Options{Init: initBin, Modules: []string{"nosuchmod"}}, "nosuchmod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.RootFS, tc.o.Out, tc.o.Image = tree(t, tc.entries...), t.TempDir(), "x"
			_, err := Build(tc.o)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(filepath.Join(tc.o.Out, "initramfs.img")); statErr == nil {
				t.Error("a failed build left an initramfs.img behind")
			}
		})
	}
}

func TestForcedModules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   imagestore.RootKind
		fstype string
		want   []string
		err    string
	}{
		{name: "btrfs snapshot", kind: imagestore.Snapshot, fstype: "btrfs", want: []string{"btrfs"}},
		{name: "snapshot, file system unknown", kind: imagestore.Snapshot, want: []string{"btrfs"}},
		{name: "overlay on ext4", kind: imagestore.Overlay, fstype: "ext4", want: []string{"ext4", "overlay"}},
		{name: "overlay on btrfs", kind: imagestore.Overlay, fstype: "btrfs", want: []string{"btrfs", "overlay"}},
		{name: "overlay, file system unknown", kind: imagestore.Overlay, want: []string{"btrfs", "overlay"}},
		{name: "unpacked root", want: []string{"btrfs"}},
		{name: "unpacked root of an xfs store", fstype: "xfs", want: []string{"xfs", "overlay"}},
		{name: "snapshot on xfs", kind: imagestore.Snapshot, fstype: "xfs", err: "a btrfs store boots from btrfs only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := forcedModules(tc.kind, tc.fstype)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("forcedModules = %q, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("forcedModules = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
