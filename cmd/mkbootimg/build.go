package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootparam"
)

func init() {
	commands["build"] = command{"write DIR/vmlinuz and DIR/initramfs.img for an image (the default)", runBuild}
}

const buildHelp = `mkbootimg: make kernel + initramfs that boot a machine straight into a Docker image.

Usage:
  mkbootimg [build] --docker-root /var/lib/docker --image NAME[:TAG] --out DIR [flags]
  mkbootimg [build] --rootfs DIR --out DIR [flags]
  mkbootimg help     (the other commands)

The kernel and modules come from the image itself (/boot/vmlinuz-*, /usr/lib/modules/*/vmlinuz or
/vmlinuz), read straight from the Docker data root with no daemon. Writes DIR/vmlinuz and
DIR/initramfs.img, then prints the kernel command line and a rEFInd menu entry. Nothing under the
Docker root is ever written. The same inputs give a byte-identical initramfs.

Flags:
`

// buildFlags holds the flags of every command that builds kernel + initramfs.
type buildFlags struct {
	o          bootimage.Options
	configPath string
	modules    string
	cfg        bootparam.Config
}

func addBuildFlags(fs *flag.FlagSet) *buildFlags {
	b := &buildFlags{}
	fs.StringVar(&b.o.DockerRoot, "docker-root", "", "Docker data root to read the image from (storage driver btrfs), e.g. /var/lib/docker")
	fs.StringVar(&b.o.Image, "image", "", "image to boot: name[:tag], registry/name:tag, name@sha256:..., or an image ID; embedded as the default image")
	fs.StringVar(&b.o.RootFS, "rootfs", "", "an unpacked root file system to take the kernel and modules from, instead of --docker-root")
	fs.StringVar(&b.o.Kernel, "kernel-version", "", "kernel version to use when the image has several")
	fs.StringVar(&b.o.Init, "init", "", "dockerinit binary to use as /init (default: dockerinit beside mkbootimg)")
	fs.StringVar(&b.configPath, "config", "", "dockerinit.toml to embed; the flags below override its keys")
	fs.StringVar(&b.cfg.Root.Device, "root", "", "root device holding the btrfs Docker root: LABEL=, UUID=, /dev/... (TOML root.device)")
	fs.StringVar(&b.cfg.Root.RWLayer, "rwlayer", "", "rw layer subvolume name, relative to the btrfs top level (TOML root.rwlayer; default docker_rwlayer)")
	fs.StringVar(&b.cfg.Root.DockerPath, "docker-path", "", "Docker root relative to the btrfs top level (TOML root.docker_path; default: found from --docker-root's mount)")
	fs.StringVar(&b.cfg.TopLayer.Device, "toplayer", "", "device holding the top layer folder (TOML toplayer.device; default: the root device)")
	fs.StringVar(&b.cfg.TopLayer.Path, "toplayer-path", "", "top layer folder on that device (TOML toplayer.path)")
	fs.StringVar(&b.modules, "modules", "generic", "module set: generic (btrfs, file systems, common disk, USB and input drivers), "+
		"host (btrfs, file systems, and the disk, USB and input drivers this machine uses: smaller, boots this machine) or none")
	fs.Func("add-module", "a further kernel module or alias to include and always load (repeatable)", func(s string) error {
		b.o.Modules = append(b.o.Modules, s)
		return nil
	})
	return b
}

// options turns the parsed flags into build options; out is the directory to write to.
func (b *buildFlags) options(out string) (bootimage.Options, error) {
	o := b.o
	o.Out = out
	switch b.modules {
	case "generic":
	case "host":
		o.HostSys = "/sys"
	case "none":
		o.NoModules = true
	default:
		return o, fmt.Errorf("--modules %s: want generic, host or none", b.modules)
	}
	if b.configPath != "" {
		data, err := os.ReadFile(b.configPath)
		if err != nil {
			return o, err
		}
		if o.Config, err = bootparam.DecodeConfig(data); err != nil {
			return o, fmt.Errorf("--config %s: %w", b.configPath, err)
		}
	}
	override(&o.Config.Root.Device, b.cfg.Root.Device)
	override(&o.Config.Root.RWLayer, b.cfg.Root.RWLayer)
	override(&o.Config.Root.DockerPath, b.cfg.Root.DockerPath)
	override(&o.Config.TopLayer.Device, b.cfg.TopLayer.Device)
	override(&o.Config.TopLayer.Path, b.cfg.TopLayer.Path)
	if o.Init == "" {
		o.Init = besideSelf("dockerinit")
	}
	return o, nil
}

func runBuild(args []string) error {
	fs := newFlags("build", buildHelp)
	b := addBuildFlags(fs)
	out := fs.String("out", "", "directory to write vmlinuz and initramfs.img to (created if missing)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	o, err := b.options(*out)
	if err != nil {
		return err
	}
	res, err := bootimage.Build(o)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (kernel %s)\n", res.VMLinuz, res.Kernel.Version)
	fmt.Printf("wrote %s (%.1f MB, %d modules)\n", res.Initramfs, float64(res.InitramfsSize)/1e6, res.Modules)
	if res.Image != "" {
		fmt.Printf("image %s (%s)\n", res.Image, res.ImageID)
	}
	fmt.Printf("\nkernel command line:\n  %s\n", res.Cmdline)
	fmt.Printf("\nrEFInd entry (refind.conf; loader and initrd relative to the volume that holds them):\n%s", refindForBuild(res, o.Out))
	return nil
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func besideSelf(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return name
	}
	return filepath.Join(filepath.Dir(exe), name)
}
