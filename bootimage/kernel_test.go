package bootimage

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/imageroot"
)

// tree makes files ("path" or "path -> target" for symlinks) under a temp root.
func tree(t *testing.T, entries ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, e := range entries {
		p, target, link := strings.Cut(e, " -> ")
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case link:
			err = os.Symlink(target, full)
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		default:
			err = os.WriteFile(full, []byte("kernel "+p), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPickKernel(t *testing.T) {
	const v = "6.1.0-9-amd64"
	for _, tc := range []struct {
		name    string
		entries []string // of the image; $HOST is the host folder
		host    []string // of a host folder the image's links may aim at
		version string
		want    string // version, or "error: substring"
		image   string // the file the kernel image reads as (tree writes "kernel PATH" in it)
		modules string
	}{
		{name: "debian merged usr", entries: []string{"lib -> usr/lib", "usr/lib/modules/6.1.0-28-amd64/", "boot/vmlinuz-6.1.0-28-amd64", "vmlinuz -> boot/vmlinuz-6.1.0-28-amd64"},
			want: "6.1.0-28-amd64", image: "boot/vmlinuz-6.1.0-28-amd64", modules: "usr/lib/modules/6.1.0-28-amd64"},
		{name: "arch", entries: []string{"usr/lib/modules/6.12.1-arch1-1/vmlinuz", "usr/lib/modules/6.12.1-arch1-1/modules.dep"},
			want: "6.12.1-arch1-1", image: "usr/lib/modules/6.12.1-arch1-1/vmlinuz", modules: "usr/lib/modules/6.12.1-arch1-1"},
		{name: "absolute vmlinuz link stays inside", entries: []string{"vmlinuz -> /boot/vmlinuz-" + v, "boot/vmlinuz-" + v, "lib/modules/" + v + "/"},
			want: v, image: "boot/vmlinuz-" + v, modules: "lib/modules/" + v},
		{name: "boot/vmlinuz link under an absolute boot link, both inside", entries: []string{"boot -> /usr/boot", "usr/boot/vmlinuz -> /usr/lib/kernel/vmlinuz-" + v, "usr/lib/kernel/vmlinuz-" + v},
			want: v, image: "usr/lib/kernel/vmlinuz-" + v},
		{name: "modules linked absolutely inside", entries: []string{"boot/vmlinuz-" + v, "lib -> /usr/lib", "usr/lib/modules/" + v + "/"},
			want: v, image: "boot/vmlinuz-" + v, modules: "usr/lib/modules/" + v},
		{name: "no modules", entries: []string{"boot/vmlinuz-6.1.0-1-amd64"}, want: "6.1.0-1-amd64", image: "boot/vmlinuz-6.1.0-1-amd64"},
		{name: "two kernels", entries: []string{"boot/vmlinuz-6.1.0-1-amd64", "boot/vmlinuz-6.1.0-2-amd64"}, want: "error: choose one with --kernel-version"},
		{name: "two kernels, one chosen", entries: []string{"boot/vmlinuz-6.1.0-1-amd64", "boot/vmlinuz-6.1.0-2-amd64"}, version: "6.1.0-2-amd64",
			want: "6.1.0-2-amd64", image: "boot/vmlinuz-6.1.0-2-amd64"},
		{name: "chosen kernel absent", entries: []string{"boot/vmlinuz-6.1.0-1-amd64"}, version: "5.10", want: "error: not in the image, which has 6.1.0-1-amd64"},
		{name: "no kernel", entries: []string{"etc/hostname"}, want: "error: no kernel in the image"},
		{name: "link to host kernel ignored", entries: []string{"vmlinuz -> ../../../../../boot/vmlinuz-host"}, want: "error: no kernel in the image"},
		{name: "absolute link to a host kernel ignored", entries: []string{"vmlinuz -> $HOST/vmlinuz-9.9-host"}, host: []string{"vmlinuz-9.9-host"},
			want: "error: no kernel in the image"},
		{name: "boot linked to a host folder: its links are not read", entries: []string{"boot -> $HOST", "$HOST/vmlinuz"},
			host: []string{"vmlinuz -> vmlinuz-9.9-host", "vmlinuz-9.9-host"}, want: "error: no kernel in the image"},
		{name: "modules linked to a host folder are not the kernel's", entries: []string{"boot/vmlinuz-" + v, "lib/modules -> $HOST/lib/modules"},
			host: []string{"lib/modules/" + v + "/"}, want: v, image: "boot/vmlinuz-" + v},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tree(t, tc.host...)
			var entries []string
			for _, e := range tc.entries {
				entries = append(entries, strings.ReplaceAll(e, "$HOST", host))
			}
			img, err := imageroot.Open(tree(t, entries...))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			k, err := PickKernel(img, tc.version)
			if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, %v; want error containing %q", k, err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Version != tc.want || k.Modules != tc.modules {
				t.Errorf("version %q, modules %q; want %q, %q", k.Version, k.Modules, tc.want, tc.modules)
			}
			if data, err := fs.ReadFile(img, k.Image); string(data) != "kernel "+tc.image {
				t.Errorf("kernel image %s reads %q (%v), want the image's %s", k.Image, data, err, tc.image)
			}
		})
	}
}

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  bootparam.Config
		want string
	}{
		{"defaults", bootparam.Config{}, "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=var/lib/docker"},
		{"tutorial", bootparam.Config{
			Root:     bootparam.RootConfig{DockerPath: "docker"},
			TopLayer: bootparam.TopLayerConfig{Path: "boot_docker"},
		}, "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker"},
		{"flags and devices", bootparam.Config{
			Root:     bootparam.RootConfig{Device: "UUID=1234", Flags: "compress=zstd", RWLayer: "rw/desktop", DockerPath: "@/var/lib/docker"},
			TopLayer: bootparam.TopLayerConfig{Device: "LABEL=ESP", Path: "machine"},
		}, "root=UUID=1234 rootflags=subvol=rw/desktop,compress=zstd rw docker_path=@/var/lib/docker toplayer=LABEL=ESP toplayer_path=machine"},
		{"a label with a space, quoted as the kernel reads it", bootparam.Config{
			Image:    "x",
			Root:     bootparam.RootConfig{Device: "LABEL=my disk"},
			TopLayer: bootparam.TopLayerConfig{Path: "boot docker"},
		}, `root="LABEL=my disk" rootflags=subvol=docker_rwlayer rw docker_path=var/lib/docker toplayer="LABEL=my disk" toplayer_path="boot docker"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Cmdline(tc.cfg, "")
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			// The init reads back what the configuration says.
			p, err := bootparam.Resolve(bootparam.Config{Image: "x"}, "", got)
			if err != nil {
				t.Fatalf("the init would refuse %s: %v", got, err)
			}
			if want := first(tc.cfg.Root.Device, defaultRoot); p.Root.Device != want || p.TopLayer.Path != strings.Trim(tc.cfg.TopLayer.Path, "/") {
				t.Errorf("the init reads root %q, top layer path %q; want %q, %q", p.Root.Device, p.TopLayer.Path, want, tc.cfg.TopLayer.Path)
			}
		})
	}
}

func TestRootSpec(t *testing.T) {
	for _, tc := range []struct {
		v    bootloader.Volume
		want string
	}{
		{bootloader.Volume{Label: "linux", UUID: "1234"}, "LABEL=linux"},
		{bootloader.Volume{Label: "my disk", UUID: "1234"}, "UUID=1234"},
		{bootloader.Volume{Label: `say "hi"`, UUID: "1234"}, "UUID=1234"},
		{bootloader.Volume{Label: "my disk"}, "LABEL=my disk"},
		{bootloader.Volume{UUID: "1234"}, "UUID=1234"},
	} {
		if got := rootSpec(tc.v); got != tc.want {
			t.Errorf("rootSpec(%+v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	docker := t.TempDir()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no out", Options{RootFS: "/"}, "--out"},
		{"nothing", Options{Out: t.TempDir()}, "pass --store DIR --image"},
		{"both", Options{Out: t.TempDir(), RootFS: "/", DockerRoot: docker, Image: "x"}, "use one"},
		{"no image", Options{Out: t.TempDir(), DockerRoot: docker}, "--image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
	o := Options{Out: filepath.Join(docker, "boot"), DockerRoot: docker, Image: "x"}
	if err := o.refuseOutputInside(); err == nil || !strings.Contains(err.Error(), "inside the Docker root") {
		t.Fatalf("output inside the Docker root: got %v", err)
	}
}
