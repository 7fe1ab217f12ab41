package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/dockerinit/dockerinit/bench"
	"github.com/dockerinit/dockerinit/initramfs"
)

// floorRoot is what the floor mounts and runs: what bootCmdline asks of the other initramfs
// images, with the device node as the bench's QEMU names it (a whole-disk btrfs on the one
// virtio disk), since finding a device by label is not the floor's job.
var floorRoot = bench.FloorRoot{Device: "/dev/vda", FSType: "btrfs", Options: "subvol=docker_rwlayer", Init: "/usr/local/sbin/testinit"}

// buildFloor makes the floor initramfs beside ours (bench/floor/floor.c): it boots dockerinit's
// initramfs in ours once with the image's shell as init to read /proc/modules, takes those modules
// from that initramfs in its load plan's order, compiles the floor with them and packs both into a
// cpio archive with the repo's initramfs writer. It returns the floor as a generator to boot.
func buildFloor(ctx context.Context, o options, ours *generator, disk, logDir string) (*generator, error) {
	dir := filepath.Join(o.work, "floor")
	g := &generator{
		Initrd: bench.Initrd{Name: bench.FloorName, Floor: true,
			Build: "gcc -static -Os -pthread bench/floor/floor.c, with the modules dockerinit loaded, from its initramfs"},
		boot:     filepath.Join(o.work, "boot-floor"),
		log:      filepath.Join(o.work, "logs", "floor.log"),
		bootable: true,
	}
	for _, d := range []string{dir, g.boot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(filepath.Join(ours.boot, "initramfs.img"))
	if err != nil {
		return nil, err
	}
	entries, err := initramfs.Read(data)
	if err != nil {
		return nil, fmt.Errorf("read %s's initramfs: %w", ours.Name, err)
	}
	kver, planText, err := loadPlan(entries)
	if err != nil {
		return nil, err
	}
	plan, err := bench.ParsePlan(planText)
	if err != nil {
		return nil, err
	}

	logf("floor: a boot of %s with the image's shell as init, for the modules it loads", ours.Name)
	cmdline := strings.Replace(bootCmdline, "init=/usr/local/sbin/testinit", bench.FloorModulesInit(), 1)
	logPath := filepath.Join(logDir, "floor-modules.log")
	if _, err := boot(ctx, machineBoot{dir: ours.boot, disk: disk, cmdline: cmdline}, logPath); err != nil {
		return nil, fmt.Errorf("the boot that reads the modules dockerinit loads: %w", err)
	}
	console, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	loaded, err := bench.ParseLoadedModules(console)
	if err != nil {
		return nil, fmt.Errorf("%w (console in %s)", err, logPath)
	}
	mods, err := bench.FloorModules(plan, loaded, kver)
	if err != nil {
		return nil, err
	}
	header, err := bench.FloorHeader(mods, floorRoot)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "plan.h"), []byte(header), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "init")
	cc := exec.Command("gcc", "-static", "-Os", "-pthread", "-Wall", "-Werror", "-I", dir, "-o", bin,
		filepath.Join(o.repo, "bench", "floor", "floor.c"))
	if err := runLogged(ctx, g.log, cc); err != nil {
		return nil, fmt.Errorf("compile the floor (gcc and libc6-dev, for its static libc): %w", err)
	}
	// strip is cosmetic here (-s would do): the kernel maps only what it runs, but the size row
	// should show the program, not its symbols.
	if err := runLogged(ctx, g.log, exec.Command("strip", bin)); err != nil {
		return nil, err
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}

	out := append(initramfs.Base(), initramfs.File("init", 0o755, init))
	byPath := map[string]initramfs.Entry{}
	for _, e := range entries {
		byPath[path.Clean(strings.TrimPrefix(e.Path, "/"))] = e
	}
	var names []string
	for _, m := range mods {
		e, ok := byPath[m.Path]
		if !ok || !e.Mode.IsRegular() {
			return nil, fmt.Errorf("%s's initramfs has no file %s for module %s", ours.Name, m.Path, m.Name)
		}
		out = append(out, initramfs.File(m.Path, 0o644, e.Data))
		names = append(names, m.Name)
	}
	f, err := os.Create(filepath.Join(g.boot, "initramfs.img"))
	if err != nil {
		return nil, err
	}
	if err := initramfs.Write(f, out); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	img, err := os.ReadFile(filepath.Join(g.boot, "initramfs.img"))
	if err != nil {
		return nil, err
	}
	g.SizeBytes = int64(len(img))
	if g.Parts, err = bench.Composition(img); err != nil {
		return nil, err
	}
	kernel, err := os.ReadFile(filepath.Join(ours.boot, "vmlinuz"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(g.boot, "vmlinuz"), kernel, 0o644); err != nil {
		return nil, err
	}
	g.floorModules = names
	logf("floor: %d modules (%s), /init %d bytes, initramfs %.2f MB", len(names), strings.Join(names, " "), len(init), float64(g.SizeBytes)/1e6)
	return g, nil
}

// loadPlan returns the kernel version and the text of the load plan in an initramfs of ours.
func loadPlan(entries []initramfs.Entry) (kver, plan string, err error) {
	const planFile = "dockerinit.modules" // kmod/internal/modindex.PlanFile
	for _, e := range entries {
		p := path.Clean(strings.TrimPrefix(e.Path, "/"))
		dir, name := path.Split(p)
		if name == planFile && strings.HasPrefix(dir, "lib/modules/") && e.Mode.IsRegular() {
			if kver != "" {
				return "", "", errors.New("the initramfs holds load plans for more than one kernel")
			}
			kver, plan = path.Base(dir), string(e.Data)
		}
	}
	if kver == "" {
		return "", "", fmt.Errorf("the initramfs has no lib/modules/*/%s: %w", planFile, fs.ErrNotExist)
	}
	return kver, plan, nil
}
