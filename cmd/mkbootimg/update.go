package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootstate"
	"github.com/dockerinit/dockerinit/pin"
	"github.com/dockerinit/dockerinit/status"
	"github.com/dockerinit/dockerinit/update"
)

func init() {
	commands["update"] = command{"in a booted system: make an image the next to boot, the running one its fallback", runUpdate}
	commands["rollback"] = command{"in a booted system: make the previous image the default again", runRollback}
}

const updateHelp = `mkbootimg update: make REF the image the machine boots next, keeping the running one as fallback.

Usage (in a system dockerinit booted):
  mkbootimg update --bootloader KIND [--esp DIR | --out DIR] --store DIR [install flags] REF

It reads what booted from /run/dockerinit/boot.json, then does what mkbootimg install does with
--image REF --also RUNNING --tries N (default 3): builds REF's kernel and initramfs and rewrites the image's
entry so that it boots REF, counted, and falls back to the running image (by its ID when its tag
has moved to REF since it booted) when REF does not come up N times. It pins both images against
the store's clean-up (mkbootimg pins), and gives REF a fresh count in the boot counting record.
Every step is idempotent: run it again after an interruption. The flags are install's; --image
and --also come from the plan. With --uki (and --keys), the images' UKIs instead, as mkbootimg
install --uki writes them: under Secure Boot the counted list is sealed in the first, and the
fallback has its own. See the README, "Updating and rolling back".

Flags:
`

const rollbackHelp = `mkbootimg rollback: make the previous image the default again.

Usage (in a system dockerinit booted):
  mkbootimg rollback --bootloader KIND [--esp DIR | --out DIR] --store DIR [install flags]

It reads what booted from /run/dockerinit/boot.json and the boot counting record: when the first
image of the running entry's list is running, the second becomes the first again; when its
fallback is running (the first failed), the fallback becomes the default. Then as update: the
kernel and initramfs of the new default, the entry, the pins, a fresh count.

Flags:
`

// defaultTries is what update and rollback give the new default without --tries.
const defaultTries = 3

func runUpdate(args []string) error {
	return runVerb("update", updateHelp, args, 1)
}

func runRollback(args []string) error {
	return runVerb("rollback", rollbackHelp, args, 0)
}

// runVerb is update (one argument, the reference) or rollback (none).
func runVerb(name, help string, args []string, want int) error {
	fs := newFlags(name, help)
	b := addBuildFlags(fs)
	ef := addEntryFlags(fs, true)
	in := addInstallFlags(fs)
	booted := fs.String("booted", "/", "the root of the booted system, whose "+status.BootJSON+" says what runs")
	noPin := fs.Bool("no-pin", false, "do not pin the list's images (when the store's daemon does not run here; mkbootimg pin can do it later)")
	if err := parse(fs, args, want); err != nil {
		return err
	}
	if b.o.Image != "" || len(ef.also) > 0 {
		return fmt.Errorf("--image, --also: %s makes the list itself from what booted", name)
	}
	if ef.tries == 0 {
		ef.tries = defaultTries
	}
	r, err := status.Read(*booted)
	if err != nil {
		return err
	}
	if b.cfg.Root.RWLayer == "" {
		b.cfg.Root.RWLayer = r.RWLayer // the same rw layer, so the same boot counting record
	}
	o, err := b.options(in.out)
	if err != nil {
		return err
	}
	if o.DockerRoot == "" {
		return errors.New("--store is required: the image store the machine boots from, as mounted here")
	}
	store, err := bootimage.OpenStore(o.DockerRoot, o.Config.Root.Namespace)
	if err != nil {
		return err
	}
	resolve := func(ref string) (string, error) {
		img, err := store.Resolve(ref)
		return img.ID, err
	}
	countFile := ""
	if r.CountFile != "" {
		countFile = filepath.Join(*booted, r.CountFile)
	}
	var plan update.Plan
	if name == "update" {
		plan, err = update.Update(r, fs.Arg(0), resolve)
	} else {
		var rec bootstate.Record
		if countFile != "" {
			rec, _ = bootstate.Load(countFile) // a damaged record only loses the IDs it would give
		}
		plan, err = update.Rollback(r, rec, resolve)
	}
	if err != nil {
		return err
	}
	if len(plan.List) == 1 {
		ef.tries = 0 // nothing to fall back to: a plain entry
	}
	fmt.Printf("%s: %s\n", name, plan.Why)
	var tool pin.Tool
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// What stays pinned: the list, and the running image by its ID, which its tag may no longer name.
	pinned := plan.List
	if !slices.Contains(pinned, r.ImageID) {
		pinned = append(slices.Clone(pinned), r.ImageID)
	}
	if !*noPin {
		// Pins first and unpins last: an interrupted run leaves an image pinned too many, never
		// one the entry names unpinned.
		if tool, err = pin.ForStore(r.Store); err != nil {
			return fmt.Errorf("pinning: %w (or --no-pin here, then mkbootimg pin --tool ... REF)", err)
		}
		if tool.Kind == pin.Containerd && o.Config.Root.Namespace != "" {
			tool.Namespace = o.Config.Root.Namespace
		}
		tool.Log = os.Stdout
		if err := tool.Pin(ctx, pinned...); err != nil {
			return fmt.Errorf("pinning %s: %w; nothing else changed (--no-pin skips pinning)", strings.Join(pinned, ", "), err)
		}
	}
	o.Image, ef.also = plan.List[0], plan.List[1:]
	if err := install(o, ef, in); err != nil {
		return err
	}
	if !*noPin {
		if err := tool.Sync(ctx, pinned); err != nil {
			return fmt.Errorf("the entry is written; unpinning what it no longer names failed: %w", err)
		}
	}
	if countFile != "" {
		changed, err := bootstate.Recount(countFile, plan.List[0])
		if err != nil {
			return fmt.Errorf("the entry is written, but the fresh count of %s failed: %w", plan.List[0], err)
		}
		if changed {
			fmt.Printf("%s is counted afresh: %d tries\n", plan.List[0], ef.tries)
		}
	}
	return nil
}
