// Package bootloader owns the boot menu entries that start dockerinit: rEFInd stanzas and
// refind_linux.conf lines, GRUB menu entries and systemd-boot (Boot Loader Specification Type #1)
// entries, rendered and parsed back, and their installation into a user's boot manager
// configuration without touching anything else in it. Disk images are in bootloader/diskimage.
package bootloader

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/imagestore"
)

// Kind is a boot manager.
type Kind string

// The boot managers entries are made for.
const (
	Refind      Kind = "refind"       // a menuentry stanza for refind.conf
	RefindLinux Kind = "refind-linux" // a line of refind_linux.conf, beside the kernel
	GRUB        Kind = "grub"         // a menuentry for grub.cfg or custom.cfg
	SystemdBoot Kind = "systemd-boot" // a Boot Loader Specification Type #1 entry file
)

// Kinds lists every Kind, for help texts.
var Kinds = []Kind{Refind, RefindLinux, GRUB, SystemdBoot}

// ParseKind reads a boot manager name as users write it.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "refind":
		return Refind, nil
	case "refind-linux", "refind_linux", "refind_linux.conf":
		return RefindLinux, nil
	case "grub", "grub2":
		return GRUB, nil
	case "systemd-boot", "sd-boot", "bls":
		return SystemdBoot, nil
	}
	return "", fmt.Errorf("unknown boot manager %q: want one of %s", s, kindList())
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Volume names the file system that holds a kernel and its initramfs. The zero Volume is the
// one the boot manager itself was loaded from (the ESP).
type Volume struct {
	FSType string // as blkid names it: btrfs, vfat, ext4, xfs; picks the GRUB module to load
	Label  string // rEFInd's "volume", GRUB's search --label
	UUID   string // GRUB's search --fs-uuid, preferred to the label: labels repeat across disks
}

// IsZero reports whether v is the boot manager's own volume.
func (v Volume) IsZero() bool { return v.Label == "" && v.UUID == "" }

// Spec is v as a device on the kernel command line: LABEL=... or UUID=...; "" for the zero Volume.
func (v Volume) Spec() string {
	switch {
	case v.Label != "":
		return "LABEL=" + v.Label
	case v.UUID != "":
		return "UUID=" + v.UUID
	}
	return ""
}

// Entry is one boot menu entry: a kernel and an initramfs on a volume, and the command line.
type Entry struct {
	ID      string // stable name: the marker of an installed block, the BLS file name, GRUB's --id
	Title   string // what the menu shows
	Volume  Volume // where Kernel and Initrd are; zero: the boot manager's own volume
	Kernel  string // absolute slash path on Volume
	Initrd  string
	Cmdline string
	// SystemdTries, when not 0, names a systemd-boot entry's file ID+N.conf, so that
	// systemd-boot counts its tries too (see BLSName); the other boot managers ignore it.
	SystemdTries int
	// UKI says Kernel is a Unified Kernel Image, with its initramfs and command line sealed in
	// it: the boot manager starts it as an EFI program (GRUB: chainloader), with no Initrd and
	// no Cmdline. systemd-boot lists UKIs in /EFI/Linux by itself and needs no entry for them.
	UKI bool
}

// ImageEntry is the entry that boots image ref with the kernel and initramfs.img in dir, an
// absolute slash path on vol. The command line gets docker_image=ref, so that one initramfs can
// boot any image of the store from its own entry, and the title names the image and its tag.
func ImageEntry(ref string, vol Volume, dir, cmdline string) (Entry, error) {
	name, slug, err := imageName(ref)
	if err != nil {
		return Entry{}, err
	}
	if !strings.HasPrefix(dir, "/") {
		return Entry{}, fmt.Errorf("kernel directory %q: want an absolute path on its volume, such as /boot/dockerinit", dir)
	}
	return Entry{
		ID:      "dockerinit-" + slug,
		Title:   "dockerinit " + name,
		Volume:  vol,
		Kernel:  path.Join(dir, "vmlinuz"),
		Initrd:  path.Join(dir, "initramfs.img"),
		Cmdline: withImage(cmdline, ref),
	}, nil
}

// CountedEntry is the entry that boots the images refs in order with boot counting: its command
// line carries docker_image=REF1,REF2,... and dockerinit.tries=tries (replacing any given), so
// that the initramfs gives refs[0] tries boots to be marked good before it boots the next by
// itself. The ID is refs[0]'s, as ImageEntry makes it, so that installing the image again, with
// counting or without, replaces this entry; the title says what it falls back to.
func CountedEntry(refs []string, tries int, vol Volume, dir, cmdline string) (Entry, error) {
	if len(refs) < 2 {
		return Entry{}, fmt.Errorf("boot counting needs images to fall back to after %v: give at least two", refs)
	}
	if tries < 1 || tries > bootparam.MaxTries {
		return Entry{}, fmt.Errorf("tries %d: want 1 to %d", tries, bootparam.MaxTries)
	}
	e, err := ImageEntry(refs[0], vol, dir, cmdline)
	if err != nil {
		return Entry{}, err
	}
	var names []string
	for _, ref := range refs[1:] {
		name, _, err := imageName(ref)
		if err != nil {
			return Entry{}, err
		}
		names = append(names, name)
	}
	e.Title += fallbackMark + names[0]
	if len(names) > 1 {
		e.Title += fmt.Sprintf(" and %d more", len(names)-1) // a menu line has little room
	}
	e.Title += ")"
	c := bootparam.ParseCmdline(withImage(cmdline, strings.Join(refs, ",")))
	c.Params = slices.DeleteFunc(c.Params, func(p bootparam.Param) bool { return p.Key == "dockerinit.tries" })
	c.Params = append(c.Params, bootparam.Param{Key: "dockerinit.tries", Value: strconv.Itoa(tries), HasValue: true})
	e.Cmdline = c.String()
	return e, nil
}

// fallbackMark starts what CountedEntry adds to an image's title.
const fallbackMark = " (falls back to "

// sameImageTitle reports whether two titles are of one image's entry, counted or not: a
// refind_linux.conf line is known by its title alone.
func sameImageTitle(a, b string) bool {
	a, _, _ = strings.Cut(a, fallbackMark)
	b, _, _ = strings.Cut(b, fallbackMark)
	return a == b
}

// ImageSlug is ref reduced to a file name: what ImageEntry's ID holds after "dockerinit-".
func ImageSlug(ref string) (string, error) {
	_, slug, err := imageName(ref)
	return slug, err
}

// imageName returns how a menu shows ref (name:tag, or "image sha256:" and the image ID or ID
// prefix cut to 12 digits; a bare hex prefix such as 4f1c0e2a counts as an ID prefix) and a
// file-name-safe form of it; see imagestore.Reference.
func imageName(ref string) (name, slug string, err error) {
	r, err := imagestore.ParseReference(ref)
	if err != nil {
		return "", "", err
	}
	return r.Familiar(), r.Slug(), nil
}

// withImage sets docker_image=ref on cmdline, replacing any other, before a "--" that starts
// init's arguments.
func withImage(cmdline, ref string) string {
	c := bootparam.ParseCmdline(cmdline)
	c.Params = slices.DeleteFunc(c.Params, func(p bootparam.Param) bool { return p.Key == "docker_image" })
	c.Params = append(c.Params, bootparam.Param{Key: "docker_image", Value: ref, HasValue: true})
	return c.String()
}

// Render writes e in the syntax of boot manager k.
func Render(k Kind, e Entry) (string, error) {
	switch k {
	case Refind:
		return RefindStanza(e)
	case RefindLinux:
		return RefindLinuxLine(e)
	case GRUB:
		return GRUBEntry(e)
	case SystemdBoot:
		return BLSEntry(e)
	}
	return "", fmt.Errorf("unknown boot manager %q: want one of %s", k, kindList())
}

// checkEntry refuses what no boot manager can express.
func checkEntry(e Entry) error {
	for _, f := range []struct{ name, v string }{{"title", e.Title}, {"kernel", e.Kernel}, {"initrd", e.Initrd}, {"command line", e.Cmdline}} {
		if strings.ContainsAny(f.v, "\n\r") {
			return fmt.Errorf("entry %s: the %s %q holds a line break", e.ID, f.name, f.v)
		}
	}
	if e.Title == "" || e.Kernel == "" {
		return fmt.Errorf("entry %q: a title and a kernel are required", e.ID)
	}
	if !strings.HasPrefix(e.Kernel, "/") || (e.Initrd != "" && !strings.HasPrefix(e.Initrd, "/")) {
		return fmt.Errorf("entry %s: kernel %q and initrd %q must be absolute paths on their volume", e.ID, e.Kernel, e.Initrd)
	}
	if e.UKI && (e.Initrd != "" || e.Cmdline != "") {
		return fmt.Errorf("entry %s: the UKI %s holds its initramfs and command line: an entry gives neither", e.ID, e.Kernel)
	}
	return nil
}
