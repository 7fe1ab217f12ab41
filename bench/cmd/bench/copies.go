package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bench"
	diboot "github.com/dockerinit/dockerinit/boot" // the package name: this one has a boot of its own
	"github.com/dockerinit/dockerinit/btrfs"
	"github.com/dockerinit/dockerinit/toplayer"
)

// scratch is the pair of loop-mounted file systems the copy and snapshot figures are measured
// on: a btrfs (the destination, as the rw layer is) and an ext4 (a top layer on another device).
type scratch struct{ btrfs, ext4 string }

func newScratch(ctx context.Context, u *undo, work string) (scratch, error) {
	s := scratch{btrfs: filepath.Join(work, "copy-btrfs"), ext4: filepath.Join(work, "copy-ext4")}
	for _, fs := range []struct {
		img, dir, size string
		mkfs           []string
	}{
		{s.btrfs + ".img", s.btrfs, "8G", []string{"mkfs.btrfs", "-q", "-f", "-L", "dibench-copy"}},
		{s.ext4 + ".img", s.ext4, "2G", []string{"mkfs.ext4", "-q", "-F", "-L", "dibench-copy"}},
	} {
		_ = os.Remove(fs.img)
		if _, err := output(ctx, "truncate", "-s", fs.size, fs.img); err != nil {
			return s, err
		}
		u.push(func() error { return os.Remove(fs.img) })
		if _, err := output(ctx, fs.mkfs[0], append(fs.mkfs[1:], fs.img)...); err != nil {
			return s, err
		}
		if _, err := u.mount(ctx, fs.dir, "-o", "loop", fs.img); err != nil {
			return s, err
		}
	}
	return s, nil
}

// subvolume creates a subvolume with btrfs-progs (the btrfs package only snapshots and deletes).
func subvolume(ctx context.Context, path string) error {
	_, err := output(ctx, "btrfs", "subvolume", "create", path)
	return err
}

// dropSubvolume deletes a subvolume and waits for btrfs to free its extents, so that the
// cleaner does not run into the next measurement.
func dropSubvolume(ctx context.Context, mnt, path string) error {
	if err := btrfs.Delete(path); err != nil {
		return err
	}
	// The cleaner starts on the next commit: force it now rather than in up to 30 s.
	if err := syncfs(mnt); err != nil {
		return err
	}
	_, err := output(ctx, "btrfs", "subvolume", "sync", mnt)
	return err
}

// topLayerBench times toplayer.Apply against cp -a of the same tree into an empty subvolume,
// from the same btrfs and from the ext4, each followed by a syncfs of the btrfs (timed: the
// data must be written, not only queued). Rounds interleave the four kinds of copy.
func topLayerBench(ctx context.Context, s scratch, rounds int, tl *bench.TopLayer) error {
	tree := filepath.Join(s.btrfs, "tree")
	other := filepath.Join(s.ext4, "tree")
	tl.Cases = []bench.CopyCase{
		{Name: "same btrfs (reflinks)", SameFS: true},
		{Name: "ext4 to btrfs"},
	}
	srcs := []string{tree, other}
	dst := filepath.Join(s.btrfs, "dst")
	type run struct {
		c     int
		apply bool
	}
	runs := []run{{0, true}, {0, false}, {1, true}, {1, false}}
	for r := range rounds {
		for i := range runs {
			x := runs[(i+r)%len(runs)]
			if err := subvolume(ctx, dst); err != nil {
				return err
			}
			if err := syncfs(s.btrfs); err != nil {
				return err
			}
			start := time.Now()
			var err error
			if x.apply {
				_, err = toplayer.Apply(srcs[x.c], dst)
			} else {
				_, err = output(ctx, "cp", "-a", srcs[x.c]+"/.", dst+"/")
			}
			if err == nil {
				err = syncfs(dst)
			}
			sec := time.Since(start).Seconds()
			if err != nil {
				return err
			}
			c := &tl.Cases[x.c]
			what := "cp -a"
			if x.apply {
				c.ApplyS = append(c.ApplyS, sec)
				what = "toplayer"
			} else {
				c.CpS = append(c.CpS, sec)
			}
			logf("top layer %d/%d %s, %s: %.2f s", r+1, rounds, c.Name, what, sec)
			if err := dropSubvolume(ctx, s.btrfs, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// snapshotBench times btrfs.Snapshot of the tree (the small image) and of a subvolume holding
// copies of it reflinked eight times over (the big one: eight times the files and extent
// references, as distinct data would have, without writing it all on a shared disk). Each round
// also times, right after each snapshot, what the boot does on an overlay store instead: an
// overlayfs mounted over the same image and unmounted (overlayMount).
func snapshotBench(ctx context.Context, s scratch, rounds int, tl bench.TopLayer) ([]bench.Snapshot, error) {
	const copies = 8
	tree := filepath.Join(s.btrfs, "tree")
	big := filepath.Join(s.btrfs, "big")
	if err := subvolume(ctx, big); err != nil {
		return nil, err
	}
	for k := range copies {
		dir := filepath.Join(big, fmt.Sprintf("copy%d", k))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		if _, err := output(ctx, "cp", "-a", "--reflink=always", tree+"/.", dir+"/"); err != nil {
			return nil, err
		}
	}
	if err := syncfs(s.btrfs); err != nil {
		return nil, err
	}
	snaps := []bench.Snapshot{
		{Name: fmt.Sprintf("%.1f GB image", float64(tl.Bytes)/1e9), Files: tl.Files, Bytes: tl.Bytes},
		{Name: fmt.Sprintf("%.1f GB image", float64(copies*tl.Bytes)/1e9), Files: copies * tl.Files, Bytes: copies * tl.Bytes},
	}
	srcs := []string{tree, big}
	dst := filepath.Join(s.btrfs, "rwlayer")
	for r := range rounds {
		for i := range snaps {
			k := (i + r) % len(snaps)
			if err := syncfs(s.btrfs); err != nil {
				return nil, err
			}
			start := time.Now()
			err := btrfs.Snapshot(srcs[k], dst)
			ms := float64(time.Since(start).Microseconds()) / 1000
			if err != nil {
				return nil, err
			}
			snaps[k].MS = append(snaps[k].MS, ms)
			logf("snapshot %d/%d %s: %.1f ms", r+1, rounds, snaps[k].Name, ms)
			if err := dropSubvolume(ctx, s.btrfs, dst); err != nil {
				return nil, err
			}
			mount, umount, err := overlayMount(s, srcs[k])
			if err != nil {
				return nil, err
			}
			snaps[k].OverlayMountMS = append(snaps[k].OverlayMountMS, mount)
			snaps[k].OverlayUmountMS = append(snaps[k].OverlayUmountMS, umount)
			logf("overlayfs %d/%d %s: mount %.2f ms, unmount %.2f ms", r+1, rounds, snaps[k].Name, mount, umount)
		}
	}
	return snaps, nil
}

// overlayMount times mounting an overlayfs with lower as its one lower folder and a fresh upper
// and work folder on the scratch ext4 (an overlay store's file system in the overlay2 cell), with
// the options the boot mounts an overlay store's root with (boot.OverlayOptions),
// then unmounting it; the folders are made and synced before, and removed after, untimed.
func overlayMount(s scratch, lower string) (mountMS, umountMS float64, err error) {
	rw := filepath.Join(s.ext4, "rwlayer")
	upper, work, mnt := filepath.Join(rw, "upper"), filepath.Join(rw, "work"), filepath.Join(s.ext4, "merged")
	for _, d := range []string{rw, upper, work, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, 0, err
		}
	}
	defer func() {
		if rmErr := os.RemoveAll(rw); err == nil {
			err = rmErr
		}
	}()
	if err := syncfs(s.ext4); err != nil {
		return 0, 0, err
	}
	opts, err := diboot.OverlayOptions([]string{lower}, upper, work)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		return 0, 0, fmt.Errorf("mount an overlayfs over %s (%s): %w", lower, opts, err)
	}
	mountMS = float64(time.Since(start).Nanoseconds()) / 1e6
	start = time.Now()
	if err := unix.Unmount(mnt, 0); err != nil {
		_ = unmountDir(mnt)
		return 0, 0, fmt.Errorf("unmount the overlayfs at %s: %w", mnt, err)
	}
	umountMS = float64(time.Since(start).Nanoseconds()) / 1e6
	return mountMS, umountMS, nil
}

// writeTrees writes the generated tree on the btrfs (as a subvolume: it is also the small
// image) and copies it to the ext4.
func writeTrees(ctx context.Context, s scratch, tl bench.TopLayer) error {
	tree := filepath.Join(s.btrfs, "tree")
	if err := subvolume(ctx, tree); err != nil {
		return err
	}
	if err := bench.WriteTree(tree, tl.Files, tl.Bytes, 1); err != nil {
		return err
	}
	other := filepath.Join(s.ext4, "tree")
	if err := os.Mkdir(other, 0o755); err != nil {
		return err
	}
	if err := exec.CommandContext(ctx, "cp", "-a", tree+"/.", other+"/").Run(); err != nil {
		return fmt.Errorf("copy the tree to the ext4: %w", err)
	}
	for _, dir := range []string{s.btrfs, s.ext4} {
		if err := syncfs(dir); err != nil {
			return err
		}
	}
	return nil
}
