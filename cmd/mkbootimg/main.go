// Command mkbootimg builds what boots a machine into a Docker image: the image's own kernel and an
// initramfs with dockerinit, its configuration and the kernel's modules.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootparam"
)

const usage = `mkbootimg: make kernel + initramfs that boot a machine straight into a Docker image.

Usage:
  mkbootimg --docker-root /var/lib/docker --image NAME[:TAG] --out DIR [flags]
  mkbootimg --rootfs DIR --out DIR [flags]

The kernel and modules come from the image itself (/boot/vmlinuz-*, /usr/lib/modules/*/vmlinuz or
/vmlinuz), read straight from the Docker data root with no daemon. Writes DIR/vmlinuz and
DIR/initramfs.img, then prints the kernel command line and a rEFInd menu entry. Nothing under the
Docker root is ever written. The same inputs give a byte-identical initramfs.

Flags:
`

func main() {
	var (
		o          bootimage.Options
		configPath string
		modules    string
		cfg        bootparam.Config
	)
	flag.StringVar(&o.DockerRoot, "docker-root", "", "Docker data root to read the image from (storage driver btrfs), e.g. /var/lib/docker")
	flag.StringVar(&o.Image, "image", "", "image to boot: name[:tag], registry/name:tag, name@sha256:..., or an image ID; embedded as the default image")
	flag.StringVar(&o.RootFS, "rootfs", "", "an unpacked root file system to take the kernel and modules from, instead of --docker-root")
	flag.StringVar(&o.Out, "out", "", "directory to write vmlinuz and initramfs.img to (created if missing)")
	flag.StringVar(&o.Kernel, "kernel-version", "", "kernel version to use when the image has several")
	flag.StringVar(&o.Init, "init", "", "dockerinit binary to use as /init (default: dockerinit beside mkbootimg)")
	flag.StringVar(&configPath, "config", "", "dockerinit.toml to embed; the flags below override its keys")
	flag.StringVar(&cfg.Root.Device, "root", "", "root device holding the btrfs Docker root: LABEL=, UUID=, /dev/... (TOML root.device)")
	flag.StringVar(&cfg.Root.RWLayer, "rwlayer", "", "rw layer subvolume name, relative to the btrfs top level (TOML root.rwlayer; default docker_rwlayer)")
	flag.StringVar(&cfg.Root.DockerPath, "docker-path", "", "Docker root relative to the btrfs top level (TOML root.docker_path; default: found from --docker-root's mount)")
	flag.StringVar(&cfg.TopLayer.Device, "toplayer", "", "device holding the top layer folder (TOML toplayer.device; default: the root device)")
	flag.StringVar(&cfg.TopLayer.Path, "toplayer-path", "", "top layer folder on that device (TOML toplayer.path)")
	flag.StringVar(&modules, "modules", "generic", "module set: generic (btrfs, file systems, common disk, USB and input drivers) or none")
	flag.Func("add-module", "a further kernel module or alias to include (repeatable)", func(s string) error {
		o.Modules = append(o.Modules, s)
		return nil
	})
	flag.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected argument %q (all options are flags; see --help)", flag.Arg(0)))
	}
	switch modules {
	case "generic":
	case "none":
		o.NoModules = true
	default:
		fail(fmt.Errorf("--modules %s: want generic or none", modules))
	}
	if configPath != "" {
		data, err := os.ReadFile(configPath)
		if err != nil {
			fail(err)
		}
		if o.Config, err = bootparam.DecodeConfig(data); err != nil {
			fail(fmt.Errorf("--config %s: %w", configPath, err))
		}
	}
	override(&o.Config.Root.Device, cfg.Root.Device)
	override(&o.Config.Root.RWLayer, cfg.Root.RWLayer)
	override(&o.Config.Root.DockerPath, cfg.Root.DockerPath)
	override(&o.Config.TopLayer.Device, cfg.TopLayer.Device)
	override(&o.Config.TopLayer.Path, cfg.TopLayer.Path)
	if o.Init == "" {
		o.Init = besideSelf("dockerinit")
	}
	res, err := bootimage.Build(o)
	if err != nil {
		fail(err)
	}
	fmt.Printf("wrote %s (kernel %s)\n", res.VMLinuz, res.Kernel.Version)
	fmt.Printf("wrote %s (%.1f MB, %d modules)\n", res.Initramfs, float64(res.InitramfsSize)/1e6, res.Modules)
	if res.Image != "" {
		fmt.Printf("image %s (%s)\n", res.Image, res.ImageID)
	}
	fmt.Printf("\nkernel command line:\n  %s\n", res.Cmdline)
	title := "dockerinit"
	if res.Image != "" {
		title += " " + res.Image
	}
	fmt.Printf("\nrEFInd entry (refind.conf; loader and initrd relative to the volume that holds them):\n%s",
		bootimage.RefindEntry(title, "linux", filepath.Base(o.Out), res.Cmdline))
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

func fail(err error) {
	msg := err.Error()
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	fmt.Fprint(os.Stderr, "mkbootimg: "+msg)
	os.Exit(1)
}
