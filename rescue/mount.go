package rescue

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/blockdev"
)

// mountFlags are the options mount(8) turns into mount(2) flags: set, or cleared when clear is
// true. Every other option goes to the file system as data.
var mountFlags = map[string]struct {
	flag  uintptr
	clear bool
}{
	"ro": {unix.MS_RDONLY, false}, "rw": {unix.MS_RDONLY, true},
	"nosuid": {unix.MS_NOSUID, false}, "suid": {unix.MS_NOSUID, true},
	"nodev": {unix.MS_NODEV, false}, "dev": {unix.MS_NODEV, true},
	"noexec": {unix.MS_NOEXEC, false}, "exec": {unix.MS_NOEXEC, true},
	"sync": {unix.MS_SYNCHRONOUS, false}, "async": {unix.MS_SYNCHRONOUS, true},
	"dirsync": {unix.MS_DIRSYNC, false},
	"noatime": {unix.MS_NOATIME, false}, "atime": {unix.MS_NOATIME, true},
	"nodiratime": {unix.MS_NODIRATIME, false}, "diratime": {unix.MS_NODIRATIME, true},
	"relatime": {unix.MS_RELATIME, false}, "norelatime": {unix.MS_RELATIME, true},
	"strictatime": {unix.MS_STRICTATIME, false}, "lazytime": {unix.MS_LAZYTIME, false},
	"remount": {unix.MS_REMOUNT, false}, "bind": {unix.MS_BIND, false},
	"rbind": {unix.MS_BIND | unix.MS_REC, false}, "move": {unix.MS_MOVE, false},
	"defaults": {0, false},
}

// parseMountOptions splits -o's comma-separated options into mount(2) flags and the file
// system's data, which keeps the order it was given in.
func parseMountOptions(opts string) (flags uintptr, data string) {
	var rest []string
	for o := range strings.SplitSeq(opts, ",") {
		f, ok := mountFlags[o]
		switch {
		case o == "":
		case !ok:
			rest = append(rest, o)
		case f.clear:
			flags &^= f.flag
		default:
			flags |= f.flag
		}
	}
	return flags, strings.Join(rest, ",")
}

const mountUsage = "[-t TYPE] [-o OPTIONS] [-r] DEVICE DIR | -o remount,... DIR | (no arguments: list the mounts)"

// mountCmd mounts like mount(8): DEVICE may be LABEL=, UUID=, PARTUUID= or PARTLABEL=, the type
// is read from the superblock when -t is not given, and a file system whose module is not loaded
// yet gets it loaded.
func mountCmd(c *call) error {
	fs := c.flags(mountUsage)
	fstype := fs.String("t", "", "file system type (default: read from the device)")
	opts := fs.String("o", "", "comma-separated options: ro, rw, remount, bind, noatime, ... and the file system's own")
	ro := fs.Bool("r", false, "mount read-only (-o ro)")
	if err := fs.parse(0, 2); err != nil {
		return err
	}
	flags, data := parseMountOptions(*opts)
	if *ro {
		flags |= unix.MS_RDONLY
	}
	var source, dir string
	switch fs.NArg() {
	case 0:
		if *opts != "" || *fstype != "" {
			return &usageError{usage: fs.usage}
		}
		return catFile(c, c.sys("proc/mounts"))
	case 1:
		if flags&unix.MS_REMOUNT == 0 {
			return &usageError{usage: fs.usage + " (without remount, give both DEVICE and DIR)"}
		}
		dir = c.path(fs.Arg(0))
	case 2:
		source, dir = fs.Arg(0), c.path(fs.Arg(1))
	}
	if source != "" && flags&(unix.MS_BIND|unix.MS_MOVE) == 0 {
		var err error
		if source, *fstype, err = mountSource(c, source, *fstype); err != nil {
			return err
		}
	} else if source != "" {
		source = c.path(source)
	}
	err := c.sh.opts.System.Mount(source, dir, *fstype, flags, data)
	if errors.Is(err, unix.ENODEV) && *fstype != "" {
		// The kernel does not know the type: its module may just not be loaded yet.
		if lerr := c.sh.opts.System.LoadModules("fs-" + *fstype); lerr != nil {
			return fmt.Errorf("mount %s on %s: file system type %s is unknown to the kernel, and loading its module failed: %w", source, dir, *fstype, lerr)
		}
		err = c.sh.opts.System.Mount(source, dir, *fstype, flags, data)
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s (type %q, options %q): %w", source, dir, *fstype, data, err)
	}
	return nil
}

// mountSource resolves a device spec to its /dev path and finds its file system type when
// fstype is empty. A source that is neither a spec nor a file (proc, tmpfs) is passed as is.
func mountSource(c *call, source, fstype string) (string, string, error) {
	if kind, _, ok := strings.Cut(source, "="); ok && !strings.Contains(kind, "/") {
		spec, err := blockdev.ParseSpec(source)
		if err != nil {
			return "", "", err
		}
		devs, err := blockdev.Scan(c.sys("sys/class/block"), c.sys("dev"))
		if err != nil {
			return "", "", err
		}
		for _, d := range devs {
			if spec.Match(d) {
				return d.Path, cmp.Or(fstype, d.FSType), nil
			}
		}
		return "", "", fmt.Errorf("no block device has %s; blkid lists them", spec)
	}
	path := c.path(source)
	f, err := blockdev.OpenDevice(path)
	if errors.Is(err, os.ErrNotExist) && !strings.Contains(source, "/") {
		if fstype == "" {
			fstype = source // mount proc /proc, as mount(8) allows
		}
		return source, fstype, nil
	}
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	if fstype != "" {
		return path, fstype, nil
	}
	fstype, _, _, err = blockdev.Probe(f)
	if err != nil {
		return "", "", fmt.Errorf("read the file system type of %s: %w", path, err)
	}
	if fstype == "" {
		return "", "", fmt.Errorf("%s: no file system this shell recognises (btrfs, ext2/3/4, xfs, vfat, iso9660); give its type with -t", path)
	}
	return path, fstype, nil
}

// umountCmd unmounts each DIR, lazily with -l, forced with -f.
func umountCmd(c *call) error {
	fs := c.flags("[-l] [-f] DIR...")
	lazy := fs.Bool("l", false, "detach now, clean up when no longer busy")
	force := fs.Bool("f", false, "force (network file systems)")
	if err := fs.parse(1, -1); err != nil {
		return err
	}
	var flags int
	if *lazy {
		flags |= unix.MNT_DETACH
	}
	if *force {
		flags |= unix.MNT_FORCE
	}
	var errs []error
	for _, d := range fs.Args() {
		if err := c.sh.opts.System.Unmount(c.path(d), flags); err != nil {
			hint := ""
			if errors.Is(err, unix.EBUSY) {
				hint = " (still in use: leave it with cd, or umount -l)"
			}
			errs = append(errs, fmt.Errorf("umount %s: %w%s", c.path(d), err, hint))
		}
	}
	return errors.Join(errs...)
}

// catFile copies a file to the command's stdout.
func catFile(c *call, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(data)
	return err
}
