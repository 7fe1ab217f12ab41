package bootparam

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/blockdev"
)

const tutorial = "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker"

func TestResolve(t *testing.T) {
	// base is what the original tutorial's line gives with the image from the legacy file.
	base := Params{
		Image:              "desktop:latest",
		Root:               Mount{Device: "LABEL=linux"},
		RWLayer:            "docker_rwlayer",
		RWLayerInRootflags: true,
		DockerPath:         "docker",
		TopLayer:           TopLayer{Mount: Mount{Device: "LABEL=linux"}, Path: "boot_docker"},
		Init:               "/sbin/init",
		Timeout:            30 * time.Second,
		Warnings:           []string{`image "desktop:latest" taken from the legacy /etc/docker-btrfs.json; set image in /etc/dockerinit.toml instead (mkbootimg --image)`},
	}
	with := func(f func(p *Params)) Params {
		p := base
		p.Warnings = slices.Clone(base.Warnings)
		f(&p)
		return p
	}
	tests := []struct {
		name    string
		cfg     Config
		legacy  string
		cmdline string
		want    Params
	}{
		{name: "original tutorial with legacy json", legacy: "desktop:latest", cmdline: tutorial, want: base},
		{name: "images to try in order, counted", legacy: "desktop:latest", cmdline: tutorial + " docker_image=desktop:new,desktop:good dockerinit.tries=3",
			want: with(func(p *Params) {
				p.Image, p.Images, p.Tries, p.Warnings = "desktop:new", []string{"desktop:new", "desktop:good"}, 3, nil
			})},
		{name: "tries from the config", cfg: Config{Image: "a,b", Boot: BootConfig{Tries: 2}}, cmdline: tutorial,
			want: with(func(p *Params) { p.Image, p.Images, p.Tries, p.Warnings = "a", []string{"a", "b"}, 2, nil })},
		{
			name:    "tutorial plus the usual kernel noise",
			legacy:  "desktop:latest",
			cmdline: "BOOT_IMAGE=/vmlinuz console=ttyS0,115200 quiet " + tutorial + " splash\n",
			want:    base,
		},
		{
			name: "config only",
			cfg:  designConfig,
			want: Params{
				Image:      "desktop:latest",
				Root:       Mount{Device: "LABEL=linux", Flags: "compress=zstd"},
				RWLayer:    "docker_rwlayer",
				DockerPath: "docker",
				TopLayer:   TopLayer{Mount: Mount{Device: "LABEL=linux"}, Path: "boot_docker"},
				Init:       "/sbin/init",
				Timeout:    30 * time.Second,
			},
		},
		{
			name:    "command line beats config beats legacy",
			cfg:     designConfig,
			legacy:  "old:1",
			cmdline: "docker_image=server:2 root=UUID=abc rootfstype=btrfs rootflags=noatime,subvol=/rw2,compress=zstd:3 docker_path=/var/lib/docker/ init=/lib/systemd/systemd dockerinit.timeout=45 toplayer_path=etc-overlay",
			want: Params{
				Image:              "server:2",
				Root:               Mount{Device: "UUID=abc", FSType: "btrfs", Flags: "noatime,compress=zstd:3"},
				RWLayer:            "rw2",
				RWLayerInRootflags: true,
				DockerPath:         "var/lib/docker",
				TopLayer:           TopLayer{Mount: Mount{Device: "LABEL=linux"}, Path: "etc-overlay"},
				Init:               "/lib/systemd/systemd",
				Timeout:            45 * time.Second,
			},
		},
		{
			name:    "rootflags without subvol keeps the configured rw layer",
			cfg:     designConfig,
			cmdline: "rootflags=ssd",
			want: Params{
				Image:      "desktop:latest",
				Root:       Mount{Device: "LABEL=linux", Flags: "ssd"},
				RWLayer:    "docker_rwlayer",
				DockerPath: "docker",
				TopLayer:   TopLayer{Mount: Mount{Device: "LABEL=linux"}, Path: "boot_docker"},
				Init:       "/sbin/init",
				Timeout:    30 * time.Second,
			},
		},
		{
			name:    "empty values reset to defaults and turn the top layer off",
			cfg:     designConfig,
			cmdline: "toplayer_path= docker_path= init= rootflags= toplayer= root=/dev/vda2",
			want: Params{
				Image:      "desktop:latest",
				Root:       Mount{Device: "/dev/vda2"},
				RWLayer:    "docker_rwlayer",
				DockerPath: "var/lib/docker",
				Init:       "/sbin/init",
				Timeout:    30 * time.Second,
			},
		},
		{
			name:    "defaults",
			cmdline: "root=/dev/sda2 rootflags=subvol=rw docker_image=sha256:0123456789abcdef",
			want: Params{
				Image:              "sha256:0123456789abcdef",
				Root:               Mount{Device: "/dev/sda2"},
				RWLayer:            "rw",
				RWLayerInRootflags: true,
				DockerPath:         "var/lib/docker",
				Init:               "/sbin/init",
				Timeout:            30 * time.Second,
			},
		},
		{name: "ro", legacy: "desktop:latest", cmdline: tutorial + " ro", want: with(func(p *Params) { p.ReadOnly = true })},
		{name: "ro then rw", legacy: "desktop:latest", cmdline: "ro " + tutorial, want: base},
		{name: "last occurrence wins", legacy: "desktop:latest", cmdline: "docker_path=x " + tutorial + " init=/a init=/b", want: with(func(p *Params) { p.Init = "/b" })},
		{
			name:    "init args after dashes, params after them ignored",
			legacy:  "desktop:latest",
			cmdline: tutorial + " -- single docker_path=other",
			want:    with(func(p *Params) { p.InitArgs = []string{"single", "docker_path=other"} }),
		},
		{
			name:    "quoted values",
			legacy:  "desktop:latest",
			cmdline: tutorial + ` init="/sbin/my init" "toplayer_path=/my layer/"`,
			want:    with(func(p *Params) { p.Init = "/sbin/my init"; p.TopLayer.Path = "my layer" }),
		},
		{
			name:    "debug and rescue flags",
			legacy:  "desktop:latest",
			cmdline: tutorial + " dockerinit.debug dockerinit.rescue=1",
			want:    with(func(p *Params) { p.Debug = true; p.Rescue = true }),
		},
		{
			name:    "debug turned off on the command line",
			cfg:     Config{Boot: BootConfig{Debug: true}},
			legacy:  "desktop:latest",
			cmdline: tutorial + " dockerinit.debug=off",
			want:    base,
		},
		{
			name:    "timeout as duration",
			legacy:  "desktop:latest",
			cmdline: tutorial + " dockerinit.timeout=1m30s",
			want:    with(func(p *Params) { p.Timeout = 90 * time.Second }),
		},
		{
			name:    "top layer on the root device by default, whole device with /",
			cmdline: "root=LABEL=r rootfstype=btrfs rootflags=subvol=rw docker_image=x toplayer_path=/ toplayerflags=ro",
			want: Params{
				Image:              "x",
				Root:               Mount{Device: "LABEL=r", FSType: "btrfs"},
				RWLayer:            "rw",
				RWLayerInRootflags: true,
				DockerPath:         "var/lib/docker",
				TopLayer:           TopLayer{Mount: Mount{Device: "LABEL=r", FSType: "btrfs", Flags: "ro"}, Path: "."},
				Init:               "/sbin/init",
				Timeout:            30 * time.Second,
			},
		},
		{
			name:    "top layer on its own device, required by config",
			cfg:     Config{TopLayer: TopLayerConfig{Device: "LABEL=usb", FSType: "vfat", Path: "machine", Required: true}},
			cmdline: "root=LABEL=r rootflags=subvol=rw docker_image=x",
			want: Params{
				Image:              "x",
				Root:               Mount{Device: "LABEL=r"},
				RWLayer:            "rw",
				RWLayerInRootflags: true,
				DockerPath:         "var/lib/docker",
				TopLayer:           TopLayer{Mount: Mount{Device: "LABEL=usb", FSType: "vfat"}, Path: "machine", Required: true},
				Init:               "/sbin/init",
				Timeout:            30 * time.Second,
			},
		},
		{
			name:    "warnings: subvolid dropped, unknown dockerinit keys, toplayer without path",
			cmdline: "root=LABEL=r rootflags=subvolid=258,subvol=rw docker_image=x toplayer=LABEL=t dockerinit.timout=5 dockerinit.timout=6",
			want: Params{
				Image:              "x",
				Root:               Mount{Device: "LABEL=r"},
				RWLayer:            "rw",
				RWLayerInRootflags: true,
				DockerPath:         "var/lib/docker",
				TopLayer:           TopLayer{Mount: Mount{Device: "LABEL=t"}},
				Init:               "/sbin/init",
				Timeout:            30 * time.Second,
				Warnings: []string{
					"rootflags subvolid=258 ignored: the rw layer is recreated at every boot, so only subvol= can name it",
					"toplayer=LABEL=t is given without a toplayer_path: no top layer is applied (toplayer_path=/ takes the whole device)",
					"unknown kernel parameter dockerinit.timout ignored; dockerinit knows dockerinit.timeout, dockerinit.rescue, dockerinit.debug, dockerinit.namespace, dockerinit.tries",
				},
			},
		},
		{
			name:    "rw layer beside a Docker root sharing its prefix",
			cmdline: "root=LABEL=r rootflags=subvol=docker_rwlayer docker_path=docker docker_image=x",
			want: Params{
				Image:              "x",
				Root:               Mount{Device: "LABEL=r"},
				RWLayer:            "docker_rwlayer",
				RWLayerInRootflags: true,
				DockerPath:         "docker",
				Init:               "/sbin/init",
				Timeout:            30 * time.Second,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.cfg, tt.legacy, tt.cmdline)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if tt.want.Namespace == "" {
				tt.want.Namespace = DefaultNamespace
			}
			if tt.want.Images == nil {
				tt.want.Images = []string{tt.want.Image}
			}
			tt.want.Root.Spec = mustSpec(t, tt.want.Root.Device)
			tt.want.TopLayer.Spec = mustSpec(t, tt.want.TopLayer.Device)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%q)\n got %+v\nwant %+v", tt.cmdline, got, tt.want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	const ok = "root=LABEL=r rootflags=subvol=rw docker_image=x"
	type want struct{ key, msg string }
	tests := []struct {
		name    string
		cfg     Config
		legacy  string
		cmdline string
		want    []want // one *ParamError each, in order
	}{
		{
			name:    "no root device",
			cmdline: "rootflags=subvol=rw docker_image=x",
			want:    []want{{"root", "boot parameter root: no root device is given; fix: add root=LABEL="}},
		},
		{
			name:    "empty root device",
			cmdline: ok + " root=",
			want:    []want{{"root", `boot parameter root="" (from kernel command line): no root device is given`}},
		},
		{
			name:    "malformed devices, with the other problems",
			cmdline: ok + " root=FOO toplayer=WWN=1 toplayer_path=t rootfstype=zfs dockerinit.namespace=-x",
			want: []want{
				{"rootfstype", `must be one of btrfs, ext4, xfs`},
				{"root", `boot parameter root="FOO" (from kernel command line): device "FOO": not a device spec`},
				{"dockerinit.namespace", `a containerd namespace is letters and digits`},
				{"toplayer", `device "WWN=1": unknown kind "WWN"`},
			},
		},
		{
			name:    "image lists and tries",
			cmdline: "root=LABEL=r rootflags=subvol=rw docker_image=a,,b dockerinit.tries=x",
			want: []want{
				{"docker_image", "an image of the list is empty"},
				{"dockerinit.tries", "tries must be a number from 0 (no boot counting) to 100"},
			},
		},
		{
			name:    "an image listed twice",
			cmdline: "root=LABEL=r rootflags=subvol=rw docker_image=a,b,a",
			want:    []want{{"docker_image", `image "a" is listed twice`}},
		},
		{
			name:    "no subvol",
			cmdline: "root=LABEL=r rootflags=compress=zstd docker_image=x",
			want:    []want{{"rootflags=subvol", "add rootflags=subvol=docker_rwlayer to the kernel command line"}},
		},
		{
			name:    "empty subvol",
			cmdline: "root=LABEL=r rootflags=subvol= docker_image=x",
			want:    []want{{"rootflags=subvol", "no subvol= names the rw layer"}},
		},
		{
			name:    "subvol is the top level",
			cmdline: "root=LABEL=r rootflags=subvol=/ docker_image=x",
			want:    []want{{"rootflags=subvol", `rootflags=subvol="/" (from kernel command line): the rw layer is empty: it cannot be the btrfs top level itself`}},
		},
		{
			name:    "subvol with dot dot",
			cmdline: "root=LABEL=r rootflags=subvol=a/../b docker_image=x",
			want:    []want{{"rootflags=subvol", `the rw layer must not contain ".."`}},
		},
		{
			name:    "rwlayer with dot dot in config",
			cfg:     Config{Root: RootConfig{RWLayer: "../rw"}},
			cmdline: "root=LABEL=r docker_image=x",
			want:    []want{{"root.rwlayer", `root.rwlayer="../rw" (from /etc/dockerinit.toml): the rw layer must not contain ".."`}},
		},
		{
			name:    "rwlayer with a comma injects a mount option",
			cfg:     Config{Root: RootConfig{RWLayer: "rw,subvol=docker/btrfs/subvolumes/abc"}},
			cmdline: "root=LABEL=r docker_image=x",
			want:    []want{{"root.rwlayer", `must not contain a comma`}},
		},
		{
			name:    "rwlayer with a tab",
			cfg:     Config{Root: RootConfig{RWLayer: "rw\tx"}},
			cmdline: "root=LABEL=r docker_image=x",
			want:    []want{{"root.rwlayer", `must not contain a comma, white space or control characters`}},
		},
		{
			name:    "docker_path with dot dot",
			cmdline: ok + " docker_path=../docker",
			want:    []want{{"docker_path", `the Docker root must not contain ".."`}},
		},
		{
			name:    "docker_path empty after cleaning",
			cmdline: ok + " docker_path=/./",
			want:    []want{{"docker_path", "the Docker root is empty"}},
		},
		{
			name:    "rw layer is the Docker root",
			cmdline: "root=LABEL=r rootflags=subvol=/var/lib/docker docker_image=x",
			want:    []want{{"rootflags=subvol", `the rw layer is the Docker root "var/lib/docker" or inside it: recreating it at every boot would destroy the images`}},
		},
		{
			name:    "rw layer inside the Docker root",
			cmdline: "root=LABEL=r rootflags=subvol=docker/rw docker_path=docker docker_image=x",
			want:    []want{{"rootflags=subvol", "would destroy the images"}},
		},
		{
			name:    "Docker root inside the rw layer",
			cmdline: "root=LABEL=r rootflags=subvol=@ docker_path=@/var/lib/docker docker_image=x",
			want:    []want{{"rootflags=subvol", `the Docker root "@/var/lib/docker" is inside the rw layer, which is deleted at every boot`}},
		},
		{
			name:    "no image anywhere",
			cmdline: "root=LABEL=r rootflags=subvol=rw",
			want:    []want{{"docker_image", "pass docker_image=NAME[:TAG] on the kernel command line, or rebuild the initramfs with mkbootimg --image"}},
		},
		{
			name:    "image cleared on the command line",
			cfg:     Config{Image: "desktop"},
			legacy:  "old",
			cmdline: "root=LABEL=r rootflags=subvol=rw docker_image=",
			want:    []want{{"docker_image", "no image to boot is given"}},
		},
		{
			name:    "image with white space",
			cmdline: `root=LABEL=r rootflags=subvol=rw docker_image="a b"`,
			want:    []want{{"docker_image", "contains white space"}},
		},
		{
			name:    "bad timeout on the command line",
			cmdline: ok + " dockerinit.timeout=soon",
			want:    []want{{"dockerinit.timeout", `dockerinit.timeout="soon" (from kernel command line): not a duration`}},
		},
		{
			name:    "negative timeout",
			cmdline: ok + " dockerinit.timeout=-5s",
			want:    []want{{"dockerinit.timeout", "not a positive duration"}},
		},
		{
			name:    "bad timeout in config",
			cfg:     Config{Boot: BootConfig{Timeout: "1 minute"}},
			cmdline: ok,
			want:    []want{{"boot.timeout", "not a duration"}},
		},
		{
			name:    "relative init",
			cmdline: ok + " init=sbin/init",
			want:    []want{{"init", "init must be an absolute path inside the image"}},
		},
		{
			name:    "bad boolean",
			cmdline: ok + " dockerinit.debug=maybe",
			want:    []want{{"dockerinit.debug", "not a boolean"}},
		},
		{
			name:    "top layer path with dot dot",
			cmdline: ok + " toplayer_path=../etc",
			want:    []want{{"toplayer_path", `the top layer folder must not contain ".."`}},
		},
		{
			name:    "required top layer without path",
			cfg:     Config{TopLayer: TopLayerConfig{Required: true, Device: "LABEL=t"}},
			cmdline: ok,
			want:    []want{{"toplayer_path", "the top layer is required but no folder is given"}},
		},
		{
			name:    "every problem at once",
			cmdline: "rootflags=ssd dockerinit.timeout=x",
			want: []want{
				{"docker_image", "no image"},
				{"root", "no root device"},
				{"rootflags=subvol", "no subvol="},
				{"dockerinit.timeout", "not a duration"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(tt.cfg, tt.legacy, tt.cmdline)
			if err == nil {
				t.Fatal("Resolve succeeded, want an error")
			}
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				var pe *ParamError
				if !errors.As(errs[i], &pe) {
					t.Fatalf("error %d %v is not a *ParamError", i, errs[i])
				}
				if pe.Key != w.key {
					t.Errorf("error %d: Key = %q, want %q", i, pe.Key, w.key)
				}
				if !strings.Contains(pe.Error(), w.msg) {
					t.Errorf("error %d: %q does not contain %q", i, pe.Error(), w.msg)
				}
				if pe.Fix == "" || pe.Reason == "" {
					t.Errorf("error %d has no reason or fix: %+v", i, pe)
				}
			}
		})
	}
}

// What a failed boot still needs must survive a failed Resolve.
func TestResolveErrorKeepsFlags(t *testing.T) {
	p, err := Resolve(Config{}, "", "dockerinit.debug dockerinit.rescue dockerinit.timeout=never")
	if err == nil {
		t.Fatal("Resolve succeeded without a root device")
	}
	if !p.Debug || !p.Rescue {
		t.Errorf("Debug, Rescue = %v, %v; want true, true", p.Debug, p.Rescue)
	}
	if p.Timeout != DefaultTimeout {
		t.Errorf("Timeout = %v after a bad dockerinit.timeout, want the default %v", p.Timeout, DefaultTimeout)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add(designExample, "", "")
	f.Add("", "desktop:latest", tutorial)
	f.Add("[toplayer]\nrequired = true\n", "x", "root=a rootflags=subvol=/b,subvolid=5 docker_path=b/c toplayer_path=/ -- x")
	f.Add("", "", `root="a b" rootflags=",,subvol=a/../a" ro rw dockerinit.timeout=9999999999999 dockerinit.x`)
	f.Fuzz(func(t *testing.T, toml, legacy, cmdline string) {
		cfg, err := DecodeConfig([]byte(toml))
		if err != nil {
			cfg = Config{Image: toml}
		}
		p, err := Resolve(cfg, legacy, cmdline)
		if err != nil {
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, e := range errs {
				var pe *ParamError
				if !errors.As(e, &pe) {
					t.Fatalf("error %v is not a *ParamError", e)
				}
			}
			return
		}
		switch {
		case p.Image == "" || p.Root.Device == "" || p.Init == "" || p.Init[0] != '/':
			t.Fatalf("incomplete Params %+v", p)
		case p.Timeout <= 0:
			t.Fatalf("timeout %v", p.Timeout)
		case within(p.RWLayer, p.DockerPath) || within(p.DockerPath, p.RWLayer):
			t.Fatalf("rw layer %q and Docker root %q overlap", p.RWLayer, p.DockerPath)
		}
		if strings.ContainsFunc(p.RWLayer, badSubvolRune) {
			t.Fatalf("rw layer %q would inject mount options", p.RWLayer)
		}
		for _, rel := range []string{p.RWLayer, p.DockerPath} {
			if rel == "" || rel == "." || rel[0] == '/' || slices.Contains(strings.Split(rel, "/"), "..") {
				t.Fatalf("bad relative path %q in %+v", rel, p)
			}
		}
		if strings.Contains(p.Root.Flags, "subvol") && slices.ContainsFunc(strings.Split(p.Root.Flags, ","), func(o string) bool {
			return strings.HasPrefix(o, "subvol=") || strings.HasPrefix(o, "subvolid=")
		}) {
			t.Fatalf("rootflags %q still hold subvol", p.Root.Flags)
		}
	})
}

// mustSpec is the parsed form of a device the test gives, zero for none.
func mustSpec(t *testing.T, dev string) blockdev.Spec {
	t.Helper()
	if dev == "" {
		return blockdev.Spec{}
	}
	sp, err := blockdev.ParseSpec(dev)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}
