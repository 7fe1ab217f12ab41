package main

import (
	"errors"
	"flag"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
)

func init() {
	commands["entry"] = command{"print the boot menu entry of an image for rEFInd, GRUB or systemd-boot", runEntry}
}

const entryHelp = `mkbootimg entry: print boot menu entries for kernel + initramfs that mkbootimg built.

Usage:
  mkbootimg entry --bootloader refind|refind-linux|grub|systemd-boot --image REF --dir DIR [flags]

DIR holds vmlinuz and initramfs.img (the --out of mkbootimg build). The volume and the path that
the boot manager reads them from are found from the mount table: the file system's label (or
UUID, read from its device; --volume LABEL=... or UUID=... names it instead) and DIR's path from
its root, the btrfs top level for btrfs. Each entry boots one image (docker_image= on its command
line): --also adds more images sharing the same kernel and initramfs, e.g. an older tag to roll
back to. Nothing is written.

Boot counting: with --tries N the --image entry boots the list instead,
docker_image=IMAGE,ALSO1,... dockerinit.tries=N, titled "dockerinit IMAGE (falls back to ALSO1)":
after N boots of IMAGE that were never marked good, the initramfs boots the next image of the list
by itself, under any boot manager. Each --also image keeps its own entry, to pick by hand.
--boot-tries is another thing: the default embedded in dockerinit.toml, for entries whose command
line says nothing; --tries writes the entry's command line, which wins. For systemd-boot,
--systemd-boot-counting also names the counted entry dockerinit-IMAGE+N.conf, so that systemd-boot
counts its tries too and systemd-bless-boot marks it good.

Flags:
`

// entryFlags are the flags of every command that makes menu entries.
type entryFlags struct {
	kind   string
	also   []string
	append string
	volume string
	// tries, when not 0, makes the --image entry boot the whole list with boot counting.
	tries           int
	systemdCounting bool
}

func addEntryFlags(fs *flag.FlagSet, withVolume bool) *entryFlags {
	e := &entryFlags{}
	fs.StringVar(&e.kind, "bootloader", "", "boot manager: refind, refind-linux (a refind_linux.conf line), grub or systemd-boot (required)")
	fs.Func("also", "a further image to boot with the same kernel and initramfs, one entry each: name:tag, an older tag or an image ID (repeatable)", func(s string) error {
		e.also = append(e.also, s)
		return nil
	})
	fs.StringVar(&e.append, "append", "", `more kernel parameters for every entry, e.g. "console=ttyS0 quiet"`)
	fs.Func("tries", "boot counting with fallback: the --image entry boots the list --image,--also... with docker_image=IMAGE,ALSO1,... dockerinit.tries=`N` (1 to "+
		strconv.Itoa(bootparam.MaxTries)+") on its command line, so that after N boots not marked good the next image boots by itself; each --also image keeps its own entry. "+
		"Unlike --boot-tries, which embeds the default in dockerinit.toml, this is the entry's own and wins", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > bootparam.MaxTries {
			return fmt.Errorf("want a number of boots from 1 to %d", bootparam.MaxTries)
		}
		e.tries = n
		return nil
	})
	fs.BoolVar(&e.systemdCounting, "systemd-boot-counting", false, "with --bootloader systemd-boot and --tries N: name the counted entry loader/entries/dockerinit-IMAGE+N.conf, so that systemd-boot counts its tries too and systemd-bless-boot marks it good")
	if withVolume {
		fs.StringVar(&e.volume, "volume", "", "LABEL=... or UUID=...: how the boot manager finds the file system holding the kernel, instead of reading its device")
	}
	return e
}

// menu is what the entry commands share: the boot manager, and the entries of every image.
type menu struct {
	kind    bootloader.Kind
	refs    []string // --image first, then --also
	cmdline string   // without docker_image=, which each entry adds
	tries   int      // boot counting in the first entry; 0: none
	// systemdTries names the counted entry's file for systemd-boot's counting (Entry.SystemdTries).
	systemdTries int
}

// newMenu checks the flags, the images (in the Docker root when there is one) and the command
// line the entries will boot with.
func (e *entryFlags) newMenu(o bootimage.Options) (*menu, error) {
	if e.kind == "" {
		return nil, errors.New("--bootloader is required: refind, refind-linux, grub or systemd-boot")
	}
	kind, err := bootloader.ParseKind(e.kind)
	if err != nil {
		return nil, fmt.Errorf("--bootloader: %w", err)
	}
	if o.Image == "" {
		return nil, errors.New("--image is required: the image the entry boots (its name and tag are the entry's title)")
	}
	m := &menu{kind: kind, refs: append([]string{o.Image}, e.also...), tries: e.tries}
	switch {
	case e.tries > 0 && len(e.also) == 0:
		return nil, fmt.Errorf("--tries %d: give the images to fall back to with --also, e.g. --also desktop:good", e.tries)
	case e.tries > 0 && len(m.refs) > bootparam.MaxImages:
		return nil, fmt.Errorf("--tries with %d images: a boot entry lists at most %d; drop some --also", len(m.refs), bootparam.MaxImages)
	case e.systemdCounting && (kind != bootloader.SystemdBoot || e.tries == 0):
		return nil, errors.New("--systemd-boot-counting names systemd-boot's entry files: it needs --bootloader systemd-boot and --tries N")
	case e.systemdCounting:
		m.systemdTries = e.tries
	}
	if o.DockerRoot != "" {
		store, err := bootimage.OpenStore(o.DockerRoot, o.Config.Root.Namespace)
		if err != nil {
			return nil, err
		}
		for _, ref := range m.refs {
			if _, err := store.Resolve(ref); err != nil {
				return nil, err
			}
		}
	}
	m.cmdline = strings.TrimSpace(bootimage.Cmdline(o.Config, o.DockerRoot) + " " + e.append)
	cfg := o.Config
	cfg.Image = o.Image // as Build embeds it
	// Each entry's command line as the boot will read it, over the dockerinit.toml it embeds.
	entries, err := m.entries(bootloader.Volume{}, "/")
	if err != nil {
		return nil, err
	}
	for _, en := range entries {
		if _, err := bootparam.Resolve(cfg, "", en.Cmdline); err != nil {
			return nil, fmt.Errorf("the entry %q would not boot: %w", en.Title, err)
		}
	}
	return m, nil
}

// entries are the menu's entries for the kernel and initramfs in dir on vol: with --tries the
// first boots the whole list with counting, and every other image has its own entry.
func (m *menu) entries(vol bootloader.Volume, dir string) ([]bootloader.Entry, error) {
	var out []bootloader.Entry
	for i, ref := range m.refs {
		var (
			e   bootloader.Entry
			err error
		)
		if i == 0 && m.tries > 0 {
			e, err = bootloader.CountedEntry(m.refs, m.tries, vol, dir, m.cmdline)
			e.SystemdTries = m.systemdTries
		} else {
			e, err = bootloader.ImageEntry(ref, vol, dir, m.cmdline)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// parseVolume reads --volume.
func parseVolume(s string) (bootloader.Volume, error) {
	if v, ok := strings.CutPrefix(s, "LABEL="); ok && v != "" {
		return bootloader.Volume{Label: v}, nil
	}
	if v, ok := strings.CutPrefix(s, "UUID="); ok && v != "" {
		return bootloader.Volume{UUID: v}, nil
	}
	return bootloader.Volume{}, fmt.Errorf("--volume %q: want LABEL=NAME or UUID=UUID", s)
}

// locateBootDir says where a boot manager finds the files in dir: the file system holding it
// (or volume, LABEL=... or UUID=..., when given) and dir's path from that file system's root;
// for systemd-boot, the path on the ESP it runs from.
func locateBootDir(kind bootloader.Kind, dir, volume string) (bootloader.Volume, string, error) {
	if volume != "" && kind == bootloader.SystemdBoot {
		return bootloader.Volume{}, "", errors.New("--volume: systemd-boot reads only its own ESP; give a directory on the ESP")
	}
	loc, err := bootloader.Locate(dir)
	if loc.Path == "" {
		return bootloader.Volume{}, "", err
	}
	switch {
	case kind == bootloader.SystemdBoot && loc.Volume.FSType != "vfat":
		return bootloader.Volume{}, "", fmt.Errorf("%s is on %s (%s), not an ESP: systemd-boot reads kernels only from its ESP (mkbootimg install --bootloader systemd-boot copies them there)", dir, loc.Source, loc.Volume.FSType)
	case kind == bootloader.SystemdBoot:
		return bootloader.Volume{}, loc.Path, nil
	case volume != "":
		vol, err := parseVolume(volume)
		vol.FSType = loc.Volume.FSType
		return vol, loc.Path, err
	case err != nil:
		return bootloader.Volume{}, "", fmt.Errorf("%w; name the file system with --volume LABEL=... or UUID=...", err)
	case loc.Volume.IsZero():
		return bootloader.Volume{}, "", fmt.Errorf("%s is on %s, which has neither label nor UUID: name it with --volume", dir, loc.Source)
	}
	return loc.Volume, loc.Path, nil
}

func runEntry(args []string) error {
	fs := newFlags("entry", entryHelp)
	b := addBuildFlags(fs)
	ef := addEntryFlags(fs, true)
	dir := fs.String("dir", "", "directory holding vmlinuz and initramfs.img (the --out of mkbootimg build; required)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required: the directory holding vmlinuz and initramfs.img")
	}
	o, err := b.options(*dir)
	if err != nil {
		return err
	}
	m, err := ef.newMenu(o)
	if err != nil {
		return err
	}
	vol, kdir, err := locateBootDir(m.kind, *dir, ef.volume)
	if err != nil {
		return err
	}
	entries, err := m.entries(vol, kdir)
	if err != nil {
		return err
	}
	for i, e := range entries {
		text, err := bootloader.Render(m.kind, e)
		if err != nil {
			return err
		}
		if i > 0 && m.kind != bootloader.RefindLinux {
			fmt.Println()
		}
		if m.kind == bootloader.SystemdBoot {
			file, err := bootloader.BLSFile(e)
			if err != nil {
				return err
			}
			fmt.Printf("# ESP/loader/entries/%s\n", file)
		}
		fmt.Print(text)
	}
	return nil
}

// refindForBuild is the rEFInd stanza mkbootimg build prints for what it wrote to out: the
// volume and path found from the mount table, else the tutorial's volume "linux".
func refindForBuild(res *bootimage.Result, out string) string {
	vol, dir := bootloader.Volume{Label: "linux"}, "/"+filepath.Base(out)
	if loc, err := bootloader.Locate(out); err == nil && loc.Volume.Label != "" {
		vol, dir = loc.Volume, loc.Path
	}
	e := bootloader.Entry{ID: "dockerinit", Title: "dockerinit", Volume: vol,
		Kernel: path.Join(dir, "vmlinuz"), Initrd: path.Join(dir, "initramfs.img"), Cmdline: res.Cmdline}
	if res.Image != "" {
		if ie, err := bootloader.ImageEntry(res.Image, vol, dir, res.Cmdline); err == nil {
			e = ie
		}
	}
	text, err := bootloader.RefindStanza(e)
	if err != nil {
		return "  (none: " + err.Error() + ")\n"
	}
	return text
}
