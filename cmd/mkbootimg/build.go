package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/internal/atomicfile"
	"github.com/dockerinit/dockerinit/rescue/password"
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

--config embeds a dockerinit.toml; every key of it also has a flag (its TOML key in parentheses
below), which wins over the file.

Flags:
`

// buildFlags holds the flags of every command that builds kernel + initramfs.
type buildFlags struct {
	o          bootimage.Options
	configPath string
	modules    string
	cfg        bootparam.Config // the string keys given as flags; "" is not given
	// The boolean keys given as flags, nil when not given: a plain bool flag cannot tell "not
	// given" from false, and --toplayer-required=false must override a --config saying true.
	toplayerRequired, bootDebug *bool
}

func addBuildFlags(fs *flag.FlagSet) *buildFlags {
	b := &buildFlags{}
	fs.StringVar(&b.o.DockerRoot, "store", "", "image store to read the image from: a Docker data root (btrfs or overlay2 driver, or its containerd image store), a containerd root or a containers-storage root, e.g. /var/lib/docker, /var/lib/containerd, /var/lib/containers/storage")
	fs.StringVar(&b.o.DockerRoot, "docker-root", "", "the same as --store, by its first name")
	fs.StringVar(&b.cfg.Root.Namespace, "namespace", "", "containerd namespace of the image, for containerd stores (TOML root.namespace; default moby, Docker's)")
	fs.StringVar(&b.o.Image, "image", "", "image to boot: name[:tag], registry/name:tag, name@sha256:..., or an image ID; embedded as the default image (TOML image)")
	fs.StringVar(&b.o.RootFS, "rootfs", "", "an unpacked root file system to take the kernel and modules from, instead of --docker-root")
	fs.StringVar(&b.o.Kernel, "kernel-version", "", "kernel version to use when the image has several")
	fs.StringVar(&b.o.Init, "init", "", "dockerinit binary to use as the initramfs' /init (default: dockerinit beside mkbootimg); the image's own init is --boot-init")
	fs.StringVar(&b.configPath, "config", "", "dockerinit.toml to embed; a flag naming a TOML key overrides that key")
	fs.StringVar(&b.cfg.Root.Device, "root", "", "root device: the file system holding the image store, LABEL=, UUID=, /dev/... (TOML root.device)")
	fs.StringVar(&b.cfg.Root.FSType, "root-fstype", "", "file system type of the root device: btrfs, ext4 or xfs (TOML root.fstype; default: detected)")
	fs.StringVar(&b.cfg.Root.Flags, "root-flags", "", "mount options of the root device besides subvol=, e.g. compress=zstd (TOML root.flags)")
	fs.StringVar(&b.cfg.Root.RWLayer, "rwlayer", "", "rw layer name, relative to the root file system's top: a subvolume on btrfs stores, a folder of overlay upper and work folders on overlay stores (TOML root.rwlayer; default docker_rwlayer)")
	fs.StringVar(&b.cfg.Root.DockerPath, "docker-path", "", "image store folder relative to the root file system's top (TOML root.docker_path; default: found from --store's mount)")
	fs.StringVar(&b.cfg.TopLayer.Device, "toplayer", "", "device holding the top layer folder (TOML toplayer.device; default: the root device)")
	fs.StringVar(&b.cfg.TopLayer.FSType, "toplayer-fstype", "", "file system type of the top layer device (TOML toplayer.fstype; default: detected)")
	fs.StringVar(&b.cfg.TopLayer.Flags, "toplayer-flags", "", "mount options of the top layer device, which is mounted read-only (TOML toplayer.flags)")
	fs.StringVar(&b.cfg.TopLayer.Path, "toplayer-path", "", "top layer folder on that device (TOML toplayer.path)")
	boolKey(fs, "toplayer-required", "a missing top layer stops the boot instead of a warning; =false overrides a --config saying true (TOML toplayer.required)", &b.toplayerRequired)
	fs.StringVar(&b.cfg.Boot.Init, "boot-init", "", "the image's init, which dockerinit hands the machine to (TOML boot.init; default /sbin/init); not --init, the dockerinit binary put at the initramfs' /init")
	fs.Func("boot-timeout", "how long the boot waits for devices, a `duration`: 30s, 2m or bare seconds 45 (TOML boot.timeout; default 30s)", func(s string) error {
		if _, err := bootparam.ParseTimeout(s); err != nil {
			return fmt.Errorf("%w; give e.g. 30s, 2m or bare seconds 45", err)
		}
		b.cfg.Boot.Timeout = s
		return nil
	})
	fs.IntVar(&b.cfg.Boot.Tries, "boot-tries", 0, "boot counting: the boots an image of the list --image gives (NEW,GOOD) gets before the next one boots instead, until it is marked good (TOML boot.tries; default 0: no counting)")
	boolKey(fs, "boot-debug", "the boot logs every step with its duration; =false overrides a --config saying true (TOML boot.debug)", &b.bootDebug)
	fs.Func("rescue-password-hash", "SHA-crypt `hash` asked for before the rescue shell opens, from `openssl passwd -6`, in single quotes for the shell's sake (TOML rescue.password_hash)", func(s string) error {
		if err := password.Check(s); err != nil {
			return err
		}
		b.cfg.Rescue.PasswordHash = s
		return nil
	})
	fs.StringVar(&b.cfg.Boot.SealedCmdline, "sealed-cmdline", "", "the kernel command line the initramfs boots from, ignoring what the boot loader passes; mkbootimg uki sets it to the UKI's own (TOML boot.sealed_cmdline)")
	fs.StringVar(&b.modules, "modules", "generic", "module set: generic (btrfs, file systems, common disk, USB and input drivers), "+
		"host (btrfs, file systems, and the disk, USB and input drivers this machine uses: smaller, boots this machine) or none")
	fs.Func("add-module", "a further kernel module or alias to include and always load (repeatable)", func(s string) error {
		b.o.Modules = append(b.o.Modules, s)
		return nil
	})
	return b
}

// scratchOptions is options with a new temporary folder, named for command, as the directory to
// write to: for commands that put what they build elsewhere. remove deletes the folder.
func (b *buildFlags) scratchOptions(command string) (o bootimage.Options, remove func(), err error) {
	tmp, err := os.MkdirTemp("", "mkbootimg-"+command+"-")
	if err != nil {
		return o, nil, err
	}
	remove = func() { os.RemoveAll(tmp) }
	if o, err = b.options(tmp); err != nil {
		remove()
		return o, nil, err
	}
	return o, remove, nil
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
	cfg, err := b.config()
	if err != nil {
		return o, err
	}
	o.Config = cfg
	if o.Init == "" {
		o.Init = besideSelf("dockerinit")
	}
	return o, nil
}

// config is the dockerinit.toml to embed: the --config file, each key given as a flag replacing
// the file's.
func (b *buildFlags) config() (bootparam.Config, error) {
	var c bootparam.Config
	if b.configPath != "" {
		data, err := os.ReadFile(b.configPath)
		if err != nil {
			return c, err
		}
		if c, err = bootparam.DecodeConfig(data); err != nil {
			return c, fmt.Errorf("--config %s: %w", b.configPath, err)
		}
	}
	override(&c.Image, b.o.Image)
	override(&c.Root.Device, b.cfg.Root.Device)
	override(&c.Root.FSType, b.cfg.Root.FSType)
	override(&c.Root.Flags, b.cfg.Root.Flags)
	override(&c.Root.RWLayer, b.cfg.Root.RWLayer)
	override(&c.Root.DockerPath, b.cfg.Root.DockerPath)
	override(&c.Root.Namespace, b.cfg.Root.Namespace)
	override(&c.TopLayer.Device, b.cfg.TopLayer.Device)
	override(&c.TopLayer.FSType, b.cfg.TopLayer.FSType)
	override(&c.TopLayer.Flags, b.cfg.TopLayer.Flags)
	override(&c.TopLayer.Path, b.cfg.TopLayer.Path)
	if b.cfg.Boot.Tries != 0 {
		c.Boot.Tries = b.cfg.Boot.Tries
	}
	if b.toplayerRequired != nil {
		c.TopLayer.Required = *b.toplayerRequired
	}
	override(&c.Boot.Init, b.cfg.Boot.Init)
	override(&c.Boot.Timeout, b.cfg.Boot.Timeout)
	override(&c.Boot.SealedCmdline, b.cfg.Boot.SealedCmdline)
	if b.bootDebug != nil {
		c.Boot.Debug = *b.bootDebug
	}
	override(&c.Rescue.PasswordHash, b.cfg.Rescue.PasswordHash)
	return c, nil
}

func runBuild(args []string) error {
	atomicfile.RemoveOnSignal()
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

// boolKey defines a flag for a boolean TOML key that leaves *dst nil unless given, so that the
// flag overrides --config both ways (see buildFlags).
func boolKey(fs *flag.FlagSet, name, usage string, dst **bool) {
	fs.BoolFunc(name, usage, func(s string) error {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		*dst = &v
		return nil
	})
}

func besideSelf(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return name
	}
	return filepath.Join(filepath.Dir(exe), name)
}
