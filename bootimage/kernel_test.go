package bootimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootparam"
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
	for _, tc := range []struct {
		name    string
		entries []string
		version string
		want    string // version, or "error: substring"
		modules bool
	}{
		{"debian merged usr", []string{"lib -> usr/lib", "usr/lib/modules/6.1.0-28-amd64/", "boot/vmlinuz-6.1.0-28-amd64", "vmlinuz -> boot/vmlinuz-6.1.0-28-amd64"}, "", "6.1.0-28-amd64", true},
		{"arch", []string{"usr/lib/modules/6.12.1-arch1-1/vmlinuz", "usr/lib/modules/6.12.1-arch1-1/modules.dep"}, "", "6.12.1-arch1-1", true},
		{"absolute vmlinuz link stays inside", []string{"vmlinuz -> /boot/vmlinuz-6.1.0-9-amd64", "boot/vmlinuz-6.1.0-9-amd64", "lib/modules/6.1.0-9-amd64/"}, "", "6.1.0-9-amd64", true},
		{"no modules", []string{"boot/vmlinuz-6.1.0-1-amd64"}, "", "6.1.0-1-amd64", false},
		{"two kernels", []string{"boot/vmlinuz-6.1.0-1-amd64", "boot/vmlinuz-6.1.0-2-amd64"}, "", "error: choose one with --kernel-version", false},
		{"two kernels, one chosen", []string{"boot/vmlinuz-6.1.0-1-amd64", "boot/vmlinuz-6.1.0-2-amd64"}, "6.1.0-2-amd64", "6.1.0-2-amd64", false},
		{"chosen kernel absent", []string{"boot/vmlinuz-6.1.0-1-amd64"}, "5.10", "error: not in the image, which has 6.1.0-1-amd64", false},
		{"no kernel", []string{"etc/hostname"}, "", "error: no kernel in the image", false},
		{"link to host kernel ignored", []string{"vmlinuz -> ../../../../../boot/vmlinuz-host"}, "", "error: no kernel in the image", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.entries...)
			k, err := PickKernel(root, tc.version)
			if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, %v; want error containing %q", k, err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Version != tc.want {
				t.Errorf("version %q, want %q", k.Version, tc.want)
			}
			if !strings.HasPrefix(k.Image, root) {
				t.Errorf("kernel image %s is outside the image root %s", k.Image, root)
			}
			if (k.Modules != "") != tc.modules {
				t.Errorf("modules dir %q, want present=%v", k.Modules, tc.modules)
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Cmdline(tc.cfg, ""); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
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
		{"nothing", Options{Out: t.TempDir()}, "--docker-root"},
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
