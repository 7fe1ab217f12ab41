package rescue

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/core"
	"github.com/u-root/u-root/pkg/core/base64"
	"github.com/u-root/u-root/pkg/core/cat"
	"github.com/u-root/u-root/pkg/core/chmod"
	"github.com/u-root/u-root/pkg/core/cp"
	"github.com/u-root/u-root/pkg/core/find"
	"github.com/u-root/u-root/pkg/core/ls"
	"github.com/u-root/u-root/pkg/core/mkdir"
	"github.com/u-root/u-root/pkg/core/mktemp"
	"github.com/u-root/u-root/pkg/core/mv"
	"github.com/u-root/u-root/pkg/core/rm"
	"github.com/u-root/u-root/pkg/core/shasum"
	"github.com/u-root/u-root/pkg/core/touch"
	"mvdan.cc/sh/v3/interp"
)

// commands are the shell's built-in commands by name. Of u-root's core commands, xargs is left
// out because it runs commands from $PATH, where the built-in ones are not, tar because its
// arguments differ from tar(1)'s, and gzip because it would bring in two compression libraries.
func commands() map[string]command {
	return map[string]command{
		"base64":           {"encode or decode base64 (-d)", uroot(base64.New)},
		"cat":              {"print files", uroot(cat.New)},
		"chmod":            {"change file modes", uroot(chmod.New)},
		"cp":               {"copy files (-r, -f, ...)", uroot(cp.New)},
		"find":             {"find files (-name, -type, ...)", uroot(find.New)},
		"ln":               {"ln [-s] [-f] TARGET LINK: make a hard or (-s) symbolic link", lnCmd},
		"ls":               {"list files (-l, -a, -R, ...)", uroot(ls.New)},
		"mkdir":            {"make directories (-p)", uroot(mkdir.New)},
		"mktemp":           {"make a temporary file or directory (-d)", uroot(mktemp.New)},
		"mv":               {"move or rename files", uroot(mv.New)},
		"rm":               {"remove files (-r, -f)", uroot(rm.New)},
		"shasum":           {"print SHA checksums (-a 256)", uroot(shasum.New)},
		"touch":            {"create files or set their times", uroot(touch.New)},
		"mount":            {"mount [-t TYPE] [-o OPTIONS] [-r] DEVICE|LABEL=|UUID= DIR; alone: list mounts", mountCmd},
		"umount":           {"umount [-l] [-f] DIR...", umountCmd},
		"blkid":            {"list block devices with file system type, label and UUIDs", blkidCmd},
		"btrfs-subvolumes": {"btrfs-subvolumes DIR: list the btrfs subvolumes below DIR", subvolumesCmd},
		"btrfs":            {"btrfs subvolume list DIR: the same as btrfs-subvolumes", btrfsCmd},
		"dmesg":            {"print the kernel log", dmesgCmd},
		"lsmod":            {"list loaded kernel modules", lsmodCmd},
		"modprobe":         {"modprobe NAME...: load modules (or aliases) from the initramfs", modprobeCmd},
		"reboot":           {"sync and reboot", rebootCmd},
		"poweroff":         {"sync and power off", poweroffCmd},
		"help":             {"this list", help},
	}
}

// lnCmd makes a link; u-root's core commands have no ln. LINK naming a directory puts the link
// in it, under TARGET's base name.
func lnCmd(c *call) error {
	fs := c.flags("[-s] [-f] TARGET LINK")
	symbolic := fs.Bool("s", false, "make a symbolic link; TARGET is stored as typed")
	force := fs.Bool("f", false, "replace LINK if it exists")
	if err := fs.parse(2, 2); err != nil {
		return err
	}
	target, link := fs.Arg(0), c.path(fs.Arg(1))
	if fi, err := os.Stat(link); err == nil && fi.IsDir() {
		link = filepath.Join(link, filepath.Base(target))
	}
	if *force {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if *symbolic {
		return os.Symlink(target, link)
	}
	return os.Link(c.path(target), link)
}

// uroot runs one of u-root's core commands in the shell's directory and environment.
func uroot(newCmd func() core.Command) func(c *call) error {
	return func(c *call) error {
		cmd := newCmd()
		cmd.SetIO(c.stdin, c.stdout, c.stderr)
		cmd.SetWorkingDir(c.dir)
		cmd.SetLookupEnv(func(k string) (string, bool) {
			v := c.env.Get(k)
			return v.String(), v.IsSet()
		})
		return cmd.RunContext(c.ctx, c.args...)
	}
}

// flagSet parses the flags of one of our commands; wrong use comes back as a *usageError.
type flagSet struct {
	*flag.FlagSet
	usage string
	c     *call
}

func (c *call) flags(usage string) *flagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the usageError says it once
	return &flagSet{FlagSet: fs, usage: c.name + " " + usage, c: c}
}

// splitShortFlags spells "-sf" as "-s -f" when each letter is a boolean flag of fs, as users of
// ln and umount type them; Go's flag package takes "-sf" for one flag.
func splitShortFlags(fs *flag.FlagSet, args []string) []string {
	var out []string
	for i, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			return append(out, args[i:]...) // flags end here
		}
		letters := a[1:]
		split := len(letters) > 1
		for _, r := range letters {
			f := fs.Lookup(string(r))
			if f == nil {
				split = false
				break
			}
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				split = false
				break
			}
		}
		if !split {
			out = append(out, a)
			continue
		}
		for _, r := range letters {
			out = append(out, "-"+string(r))
		}
	}
	return out
}

// errHelped ends a command that printed its usage because of -h: exit status 0.
var errHelped = interp.NewExitStatus(0)

// parse parses the call's arguments, which must number from min to max (max < 0: no limit).
func (fs *flagSet) parse(min, max int) error {
	err := fs.Parse(splitShortFlags(fs.FlagSet, fs.c.args))
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(fs.c.stdout, "usage: %s\n", fs.usage)
		fs.SetOutput(fs.c.stdout)
		fs.PrintDefaults()
		return errHelped
	case err != nil:
		return &usageError{usage: fmt.Sprintf("%s (%v)", fs.usage, err)}
	case fs.NArg() < min || (max >= 0 && fs.NArg() > max):
		return &usageError{usage: fs.usage}
	}
	return nil
}
