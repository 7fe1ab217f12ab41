package rescue

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/btrfs"
)

// blkidCmd prints the block devices as blkid does, all or those named.
func blkidCmd(c *call) error {
	fs := c.flags("[DEVICE...]")
	if err := fs.parse(0, -1); err != nil {
		return err
	}
	devs, err := blockdev.Scan(c.sys("sys/class/block"), c.sys("dev"))
	if err != nil {
		return err
	}
	want := fs.Args()
	shown := 0
	for _, d := range devs {
		if len(want) > 0 && !slices.Contains(want, d.Path) && !slices.Contains(want, d.Name) {
			continue
		}
		var tags []string
		for _, t := range [][2]string{{"LABEL", d.Label}, {"UUID", d.UUID}, {"TYPE", d.FSType},
			{"PARTLABEL", d.PartLabel}, {"PARTUUID", d.PartUUID}} {
			if t[1] != "" {
				tags = append(tags, fmt.Sprintf("%s=%q", t[0], t[1]))
			}
		}
		if len(tags) > 0 || len(want) > 0 {
			fmt.Fprintln(c.stdout, strings.TrimSpace(d.Path+": "+strings.Join(tags, " ")))
			shown++
		}
	}
	if shown < len(want) {
		return fmt.Errorf("not every device of %s was found (empty and unreadable devices are left out); blkid alone lists them all", strings.Join(want, ", "))
	}
	return nil
}

func subvolumesCmd(c *call) error {
	fs := c.flags("DIR  (a mounted btrfs, e.g. after mount -t btrfs -o subvolid=5 DEVICE /mnt)")
	if err := fs.parse(1, 1); err != nil {
		return err
	}
	return listSubvolumes(c, c.path(fs.Arg(0)))
}

// btrfsCmd is the one btrfs-progs command people type at a rescue prompt.
func btrfsCmd(c *call) error {
	if len(c.args) != 3 || !strings.HasPrefix("subvolume", c.args[0]) || c.args[0] == "" || !strings.HasPrefix("list", c.args[1]) || c.args[1] == "" {
		return &usageError{usage: "btrfs subvolume list DIR  (the only btrfs command built in; see also btrfs-subvolumes)"}
	}
	return listSubvolumes(c, c.path(c.args[2]))
}

// listSubvolumes prints the path, relative to dir, of every btrfs subvolume below dir, which must
// be the root of a subvolume (the top level mounted with subvolid=5 lists them all).
func listSubvolumes(c *call, dir string) error {
	if err := requireBtrfs(dir); err != nil {
		return err
	}
	subs, err := btrfs.Subvolumes(dir)
	slices.Sort(subs)
	for _, p := range subs {
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintln(c.stdout, rel)
	}
	return err
}

// errNotBtrfs says a directory is not on btrfs.
var errNotBtrfs = errors.New("not on a btrfs file system")

func requireBtrfs(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return &fs.PathError{Op: "statfs", Path: dir, Err: err}
	}
	if st.Type != unix.BTRFS_SUPER_MAGIC {
		return fmt.Errorf("%s: %w (mount one first: mount -t btrfs -o subvolid=5 DEVICE /mnt)", dir, errNotBtrfs)
	}
	return nil
}
