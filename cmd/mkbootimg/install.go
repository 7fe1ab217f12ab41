package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/atomicfile"
)

func init() {
	commands["install"] = command{"build an image's kernel + initramfs and add its entry to rEFInd, GRUB or systemd-boot", runInstall}
}

const installHelp = `mkbootimg install: build kernel + initramfs for an image and add its boot menu entry.

Usage:
  mkbootimg install --bootloader systemd-boot --esp /boot/efi --docker-root DIR --image REF [flags]
  mkbootimg install --bootloader refind --esp /boot/efi --out DIR --docker-root DIR --image REF [flags]
  mkbootimg install --bootloader grub [--bootloader-config /boot/grub/custom.cfg] --out DIR --docker-root DIR --image REF [flags]
  mkbootimg install --bootloader refind-linux --out DIR --docker-root DIR --image REF [flags]

Where the files go:
  systemd-boot  kernel + initramfs to ESP/dockerinit/IMAGE/, the entry to ESP/loader/entries/dockerinit-IMAGE.conf (+N with --systemd-boot-counting)
  refind        kernel + initramfs to --out, the entry into refind.conf (found under --esp, or --bootloader-config)
  grub          kernel + initramfs to --out, the entry into custom.cfg, which Debian's grub.cfg reads at boot
  refind-linux  kernel + initramfs to --out, the line into --out/refind_linux.conf

--uki writes one UKI per image (see mkbootimg uki; signed with --keys DIR) as
ESP/EFI/Linux/dockerinit-IMAGE.efi (--esp required): each with its image's kernel and its
entry's command line sealed, the first counted with --tries and --also (not
--systemd-boot-counting). systemd-boot lists them without entry files; GRUB gets a menuentry that
chain-loads each (custom.cfg), rEFInd one that loads each (refind.conf); refind-linux cannot
start a UKI.

Each image has one entry: installing it again replaces its entry in place (a marked block in
refind.conf and custom.cfg), and a file that would not change is not written. Every other entry
and setting stays as it was; files are replaced atomically. --also adds entries for more images
booting the same kernel and initramfs.

--tries N makes the --image entry fall back by itself: it boots docker_image=IMAGE,ALSO1,...
dockerinit.tries=N, and after N boots never marked good the initramfs boots the next image; each
--also image keeps its own entry. It replaces the image's entry with counting or without. With
--bootloader systemd-boot, --systemd-boot-counting also names the entry dockerinit-IMAGE+N.conf
(systemd's boot counting); installing again finds the entry whatever counter systemd-boot left
in its name (+L-D, or none once blessed), and writes it back with +N: each install counts afresh.
loader.conf is not changed: a "default" naming the entry should be the pattern
dockerinit-IMAGE[+.]*conf, which older systemd-boot versions need to match the counted names.

Flags:
`

// installFlags are where install writes: the ESP, the boot manager's configuration, the folder
// for the kernel and initramfs.
type installFlags struct {
	esp, config, out string
	uki              bool // UKIs in ESP/EFI/Linux/ instead of kernel + initramfs
	ukiFlags
}

func addInstallFlags(fs *flag.FlagSet) *installFlags {
	f := &installFlags{}
	fs.StringVar(&f.esp, "esp", "", "the mounted EFI system partition (refind, systemd-boot), e.g. /boot/efi")
	fs.StringVar(&f.config, "bootloader-config", "", "the file to add the entry to: refind.conf (default: found under --esp), custom.cfg (grub; default /boot/grub/custom.cfg)")
	fs.StringVar(&f.out, "out", "", "directory to write vmlinuz and initramfs.img to (refind, grub, refind-linux; systemd-boot uses ESP/dockerinit/IMAGE)")
	fs.BoolVar(&f.uki, "uki", false, "install one UKI (mkbootimg uki) per image as ESP/EFI/Linux/dockerinit-IMAGE.efi instead of kernel + initramfs: systemd-boot lists them by itself, GRUB and rEFInd get entries that start them (--keys signs them)")
	addUKIFlags(&f.ukiFlags, fs)
	return f
}

func runInstall(args []string) error {
	atomicfile.RemoveOnSignal()
	fs := newFlags("install", installHelp)
	b := addBuildFlags(fs)
	ef := addEntryFlags(fs, true)
	in := addInstallFlags(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	o, err := b.options(in.out)
	if err != nil {
		return err
	}
	return install(o, ef, in)
}

// installUKI writes one UKI per entry of the menu to ESP/EFI/Linux/: systemd-boot lists them
// there by itself; GRUB and rEFInd get an entry each that starts one.
func installUKI(o bootimage.Options, ef *entryFlags, in *installFlags) error {
	switch {
	case in.esp == "":
		return errors.New("--esp is required: the mounted EFI system partition, where the UKIs go (ESP/EFI/Linux/), e.g. /boot/efi")
	case in.out != "":
		return errors.New("--out: UKIs go to ESP/EFI/Linux/; drop --out")
	case ef.kind == string(bootloader.RefindLinux):
		return errors.New("--uki: refind_linux.conf gives options to kernels rEFInd finds, and a UKI takes none: use --bootloader refind (a menuentry in refind.conf)")
	case ef.kind == string(bootloader.SystemdBoot) && (in.config != "" || ef.volume != ""):
		return errors.New("--bootloader-config, --volume: systemd-boot lists ESP/EFI/Linux/ by itself and needs no entry")
	}
	if fi, err := os.Stat(in.esp); err != nil || !fi.IsDir() {
		return fmt.Errorf("--esp %s: no such folder: give the mounted EFI system partition", in.esp)
	}
	keys, err := in.openKeys()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mkbootimg-install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o.Out = tmp // each UKI's build, before it goes to the ESP
	m, err := ef.newMenu(o)
	if err != nil {
		return err
	}
	t := bootloader.Target{Kind: m.kind, ESP: in.esp, Config: in.config}
	if m.kind == bootloader.GRUB && t.Config == "" {
		t.Config = "/boot/grub/custom.cfg"
	}
	dir := filepath.Join(in.esp, "EFI", "Linux")
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var (
		vol   bootloader.Volume
		onVol string
	)
	if m.kind != bootloader.SystemdBoot {
		// Check the target and find the ESP's volume before building, so that a wrong --esp or
		// --volume costs nothing.
		if _, err := t.Path(bootloader.Entry{ID: "dockerinit-check"}); err != nil {
			return err
		}
		if vol, onVol, err = locateBootDir(m.kind, dir, ef.volume); err != nil {
			return err
		}
	}
	made, err := menuUKIs(o, m, in.stub, keys, dir, tmp)
	if err != nil {
		return err
	}
	for _, r := range made {
		r.print()
	}
	if keys == nil {
		fmt.Println("unsigned: Secure Boot refuses them; sign them with --keys DIR (mkbootimg keys --out DIR makes them)")
	}
	if m.kind == bootloader.SystemdBoot {
		return nil
	}
	var entries []bootloader.Entry
	for _, r := range made {
		entries = append(entries, r.entry(vol, onVol))
	}
	installed, err := bootloader.Install(t, entries...)
	if err != nil {
		return err
	}
	printInstalled(installed)
	return nil
}

// install builds the kernel and initramfs of o.Image, or its UKIs (--uki), and writes the
// entries of the menu ef makes.
func install(o bootimage.Options, ef *entryFlags, in *installFlags) error {
	if in.uki {
		return installUKI(o, ef, in)
	}
	if in.keys != "" || in.stub != "" {
		return errors.New("--keys and --stub make UKIs: add --uki")
	}
	m, err := ef.newMenu(o)
	if err != nil {
		return err
	}
	t := bootloader.Target{Kind: m.kind, ESP: in.esp, Config: in.config}
	switch m.kind {
	case bootloader.SystemdBoot:
		if in.out != "" || ef.volume != "" {
			return errors.New("--out, --volume: systemd-boot reads kernels only from its ESP; they go to ESP/dockerinit/IMAGE")
		}
		if in.esp == "" {
			return errors.New("--esp is required: the mounted EFI system partition, e.g. /boot/efi")
		}
		slug, err := bootloader.ImageSlug(o.Image)
		if err != nil {
			return err
		}
		o.Out = filepath.Join(in.esp, "dockerinit", slug)
	case bootloader.GRUB:
		if t.Config == "" {
			t.Config = "/boot/grub/custom.cfg"
		}
	case bootloader.RefindLinux:
		if in.out != "" {
			t.Config = filepath.Join(in.out, "refind_linux.conf")
		}
	}
	if o.Out == "" {
		return errors.New("--out is required: the directory for vmlinuz and initramfs.img, on a file system the boot manager reads (e.g. /boot/dockerinit/IMAGE)")
	}
	// Check the target before building, so that a wrong --esp costs nothing.
	if _, err := t.Path(bootloader.Entry{ID: "dockerinit-check"}); err != nil {
		return err
	}
	res, err := bootimage.Build(o)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (kernel %s)\nwrote %s (%.1f MB, %d modules)\n", res.VMLinuz, res.Kernel.Version, res.Initramfs, float64(res.InitramfsSize)/1e6, res.Modules)
	var (
		vol bootloader.Volume
		dir = "/dockerinit/" + filepath.Base(o.Out) // systemd-boot: on the ESP, its own volume
	)
	if m.kind != bootloader.SystemdBoot {
		if vol, dir, err = locateBootDir(m.kind, o.Out, ef.volume); err != nil {
			return err
		}
	}
	entries, err := m.entries(vol, dir)
	if err != nil {
		return err
	}
	installed, err := bootloader.Install(t, entries...)
	if err != nil {
		return err
	}
	printInstalled(installed)
	return nil
}

// printInstalled says which entries were written and which were already up to date.
func printInstalled(installed []bootloader.Installed) {
	for _, in := range installed {
		if in.Changed {
			fmt.Printf("wrote entry %q to %s\n", in.Entry.Title, in.Path)
		} else {
			fmt.Printf("entry %q in %s is up to date\n", in.Entry.Title, in.Path)
		}
	}
}
