package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/internal/atomicfile"
	"github.com/dockerinit/dockerinit/uki"
)

func init() {
	commands["uki"] = command{"write one Unified Kernel Image (kernel, initramfs, command line, os-release) for an image, signed with --keys for Secure Boot", runUKI}
	commands["keys"] = command{"make Secure Boot keys (PK, KEK, db) and the lists firmware enrolls, keeping keys already there", runKeys}
}

const ukiHelp = `mkbootimg uki: write a Unified Kernel Image for an image, signed for Secure Boot.

Usage:
  mkbootimg uki --store DIR --image REF --out FILE.efi [--keys DIR] [--append "console=ttyS0"] [flags]

One EFI binary: systemd's EFI stub (Debian's systemd-boot-efi) with the image's kernel, the
initramfs mkbootimg build makes, the kernel command line it computes (plus --append) and the
image's os-release as the stub's sections (objcopy). The command line is sealed: it is also
embedded as boot.sealed_cmdline, so the initramfs boots from it alone and ignores whatever the
boot loader adds (the stub itself drops it when Secure Boot is on). The same inputs give the same
bytes before signing. With --keys (a folder from mkbootimg keys), the UKI is signed with its db
key by sbsign and checked with sbverify.

systemd-boot boots a UKI in ESP/EFI/Linux/ without an entry file; mkbootimg disk --secure-boot
writes a whole disk with it. See the README, "Secure Boot".

Flags:
`

// ukiFlags are the flags of every command that makes a UKI.
type ukiFlags struct {
	keys, stub string
}

// openKeys opens --keys' folder; nil when --keys was not given.
func (f ukiFlags) openKeys() (*uki.Keys, error) {
	if f.keys == "" {
		return nil, nil
	}
	k, err := uki.OpenKeys(f.keys)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

func addUKIFlags(f *ukiFlags, fs *flag.FlagSet) {
	fs.StringVar(&f.keys, "keys", "", "folder with the Secure Boot keys (mkbootimg keys --out DIR): the UKI is signed with its db.key and db.crt")
	fs.StringVar(&f.stub, "stub", "", "systemd's EFI stub to build the UKI on (default "+uki.DefaultStub+", from Debian's systemd-boot-efi)")
}

func runUKI(args []string) error {
	atomicfile.RemoveOnSignal()
	fs := newFlags("uki", ukiHelp)
	b := addBuildFlags(fs)
	var uf ukiFlags
	addUKIFlags(&uf, fs)
	out := fs.String("out", "", "the UKI file to write, e.g. /boot/efi/EFI/Linux/desktop.efi (required)")
	appendArgs := fs.String("append", "", `more kernel parameters, sealed with the rest, e.g. "console=ttyS0 quiet"`)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required: the UKI file to write, e.g. ESP/EFI/Linux/IMAGE.efi")
	}
	o, remove, err := b.scratchOptions("uki")
	if err != nil {
		return err
	}
	defer remove()
	keys, err := uf.openKeys()
	if err != nil {
		return err
	}
	r, err := buildUKI(o, ukiLine(o, *appendArgs), "", uf.stub, keys, *out)
	if err != nil {
		return err
	}
	r.print()
	if keys == nil {
		fmt.Println("unsigned: Secure Boot refuses it; sign it with --keys DIR (mkbootimg keys --out DIR makes them)")
	}
	return nil
}

// ukiResult says what buildUKI wrote.
type ukiResult struct {
	path, cmdline string
	id, title     string // the menu entry it stands for (its title the os-release's PRETTY_NAME); "": none
	res           *bootimage.Result
	signed        bool
}

// entry is the boot menu entry that starts the UKI, which lies in dir on vol.
func (r ukiResult) entry(vol bootloader.Volume, dir string) bootloader.Entry {
	return bootloader.Entry{ID: r.id, Title: r.title, Volume: vol, Kernel: path.Join(dir, filepath.Base(r.path)), UKI: true}
}

func (r ukiResult) print() {
	fi, _ := os.Stat(r.path)
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	if r.title != "" {
		fmt.Printf("%s:\n", r.title)
	}
	fmt.Printf("wrote %s (%.1f MB: kernel %s, initramfs %.1f MB, %d modules)\n", r.path, float64(size)/1e6, r.res.Kernel.Version, float64(r.res.InitramfsSize)/1e6, r.res.Modules)
	if r.res.Image != "" {
		fmt.Printf("image %s (%s)\n", r.res.Image, r.res.ImageID)
	}
	if r.signed {
		fmt.Println("signed with db.key; sbverify checked it")
	}
	fmt.Printf("\nsealed kernel command line:\n  %s\n", r.cmdline)
}

// ukiLine is the command line mkbootimg uki seals: the one the build computes, plus --append.
func ukiLine(o bootimage.Options, appendArgs string) string {
	return bootparam.ParseCmdline(bootimage.Cmdline(o.Config, o.DockerRoot) + " " + appendArgs).String()
}

// buildUKI builds the kernel and initramfs of o (into o.Out, a scratch folder) with line sealed
// into the initramfs, assembles the UKI at out (titled title in systemd-boot's menu, when
// given) and signs it when keys are given. A signed UKI is
// assembled in o.Out and only its signed bytes are written to out: an ESP never holds an
// unsigned one that Secure Boot would refuse, not even after a crash.
func buildUKI(o bootimage.Options, line, title, stub string, keys *uki.Keys, out string) (*ukiResult, error) {
	switch given := o.Config.Boot.SealedCmdline; {
	case given == "":
		o.Config.Boot.SealedCmdline = line
	case given != line:
		return nil, fmt.Errorf("--sealed-cmdline (or boot.sealed_cmdline of --config) says %q, but the UKI's command line is %q: drop it, mkbootimg seals the line it computes", given, line)
	}
	cfg := o.Config
	if o.Image != "" {
		cfg.Image = o.Image // as Build embeds it
	}
	if _, err := bootparam.Resolve(cfg, "", line); err != nil {
		return nil, fmt.Errorf("the sealed command line would not boot: %w", err)
	}
	if !o.NoModules {
		// The initramfs reads SecureBoot for dockerinit status from efivarfs, a module in
		// Debian's kernels.
		o.Modules = append(slices.Clip(o.Modules), "efivarfs")
	}
	res, err := bootimage.Build(o)
	if err != nil {
		return nil, err
	}
	assembled := out
	if keys != nil {
		assembled = filepath.Join(o.Out, "unsigned.efi")
	}
	if err := uki.Assemble(uki.Parts{Stub: stub, Kernel: res.VMLinuz, Initrd: res.Initramfs, Cmdline: line, OSRelease: res.OSRelease, Title: title}, assembled); err != nil {
		return nil, err
	}
	r := &ukiResult{path: out, cmdline: line, title: title, res: res}
	if keys != nil {
		if err := uki.Sign(*keys, assembled, out); err != nil {
			return nil, err
		}
		if err := uki.Verify(out, keys.Path("db", "crt")); err != nil {
			return nil, err
		}
		r.signed = true
	}
	return r, nil
}

// menuUKIs builds one UKI per entry of m into dir, as ENTRY-ID.efi: each with its own image's
// kernel and initramfs and its entry's command line sealed, so that the images to fall back to
// (--also) and boot counting (--tries, whose list is in the first entry's line) work sealed too.
// The first is the menu's default. Each build gets a folder of its own under tmp.
func menuUKIs(o bootimage.Options, m *menu, stub string, keys *uki.Keys, dir, tmp string) ([]*ukiResult, error) {
	if m.systemdTries != 0 {
		return nil, errors.New("--systemd-boot-counting names entry files: a UKI is counted by dockerinit (--tries), not by systemd-boot's file names")
	}
	entries, err := m.entries(bootloader.Volume{}, "/") // a UKI carries its kernel: no folder
	if err != nil {
		return nil, err
	}
	var out []*ukiResult
	for i, e := range entries {
		oi := o
		oi.Image = m.refs[i]
		oi.Out = filepath.Join(tmp, strconv.Itoa(i))
		if err := os.MkdirAll(oi.Out, 0o700); err != nil {
			return nil, err
		}
		r, err := buildUKI(oi, e.Cmdline, e.Title, stub, keys, filepath.Join(dir, e.ID+".efi"))
		if err != nil {
			return nil, fmt.Errorf("the UKI of %s: %w", e.Title, err)
		}
		r.id = e.ID
		out = append(out, r)
	}
	return out, nil
}

const keysHelp = `mkbootimg keys: make the Secure Boot keys a machine enrolls.

Usage:
  mkbootimg keys --out DIR

Writes into DIR (created 0700) PK, KEK and db: NAME.key and NAME.crt (openssl, RSA 2048, ten
years), NAME.esl (the certificate as an EFI signature list) and NAME.auth (that list signed for
enrolling: PK by itself, KEK by PK, db by KEK; efitools), and GUID, the lists' owner. Keys already
in DIR are never overwritten: put your own NAME.key and NAME.crt there first to have them used;
only what is missing is made. Keep DIR private: db.key signs what the machine boots.

Flags:
`

func runKeys(args []string) error {
	fs := newFlags("keys", keysHelp)
	out := fs.String("out", "", "folder for the keys (required)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required: the folder for the keys, e.g. /root/secureboot")
	}
	made, err := uki.MakeKeys(*out)
	if err != nil {
		return err
	}
	for _, name := range []string{"GUID", "PK.key", "PK.crt", "PK.esl", "PK.auth", "KEK.key", "KEK.crt", "KEK.esl", "KEK.auth", "db.key", "db.crt", "db.esl", "db.auth"} {
		what := made[name]
		if what == "" {
			what = "kept"
		}
		fmt.Printf("%-5s %s\n", what, filepath.Join(*out, name))
	}
	return nil
}
