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

// buildFloors makes the floor initramfs images beside ours: it boots dockerinit's initramfs in
// ours once with the image's shell as init to read /proc/modules, takes those modules from that
// initramfs in its load plan's order, and builds two floors that load them: the C floor
// (bench/floor/floor.c), the least any initramfs must do, and the same work in Go
// (bench/floor/gofloor), which sets Go's own start-up apart. Each is packed with the modules into
// a cpio archive by the repo's initramfs writer and returned as a generator to boot; the Go floor
// is left out when it does not build, goErr saying why.
func buildFloors(ctx context.Context, o options, ours *generator, disk, logDir string) (floors []*generator, goErr, err error) {
	data, err := os.ReadFile(filepath.Join(ours.boot, "initramfs.img"))
	if err != nil {
		return nil, nil, err
	}
	entries, err := initramfs.Read(data)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s's initramfs: %w", ours.Name, err)
	}
	kver, planText, err := loadPlan(entries)
	if err != nil {
		return nil, nil, err
	}
	plan, err := bench.ParsePlan(planText)
	if err != nil {
		return nil, nil, err
	}

	logf("floor: a boot of %s with the image's shell as init, for the modules it loads", ours.Name)
	cmdline := strings.Replace(bootCmdline, "init=/usr/local/sbin/testinit", bench.FloorModulesInit(), 1)
	logPath := filepath.Join(logDir, "floor-modules.log")
	if _, err := boot(ctx, machineBoot{dir: ours.boot, disk: disk, cmdline: cmdline}, logPath); err != nil {
		return nil, nil, fmt.Errorf("the boot that reads the modules dockerinit loads: %w", err)
	}
	console, err := os.ReadFile(logPath)
	if err != nil {
		return nil, nil, err
	}
	loaded, err := bench.ParseLoadedModules(console)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (console in %s)", err, logPath)
	}
	mods, err := bench.FloorModules(plan, loaded, kver)
	if err != nil {
		return nil, nil, err
	}
	// The modules' files, as the floors' initramfs images hold them.
	byPath := map[string]initramfs.Entry{}
	for _, e := range entries {
		byPath[path.Clean(strings.TrimPrefix(e.Path, "/"))] = e
	}
	var files []initramfs.Entry
	var names []string
	for _, m := range mods {
		e, ok := byPath[m.Path]
		if !ok || !e.Mode.IsRegular() {
			return nil, nil, fmt.Errorf("%s's initramfs has no file %s for module %s", ours.Name, m.Path, m.Name)
		}
		files = append(files, initramfs.File(m.Path, 0o644, e.Data))
		names = append(names, m.Name)
	}

	c, err := floorGenerator(o, bench.Initrd{Name: bench.FloorName, Floor: true,
		Build: "gcc -static -Os -pthread bench/floor/floor.c, with the modules dockerinit loaded, from its initramfs"}, "floor")
	if err != nil {
		return nil, nil, err
	}
	header, err := bench.FloorHeader(mods, floorRoot)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "plan.h"), []byte(header), 0o644); err != nil {
		return nil, nil, err
	}
	cc := exec.Command("gcc", "-static", "-Os", "-pthread", "-Wall", "-Werror", "-I", c.dir, "-o", c.bin,
		filepath.Join(o.repo, "bench", "floor", "floor.c"))
	if err := runLogged(ctx, c.log, cc); err != nil {
		return nil, nil, fmt.Errorf("compile the floor (gcc and libc6-dev, for its static libc): %w", err)
	}
	// strip is cosmetic here (-s would do): the kernel maps only what it runs, but the size row
	// should show the program, not its symbols.
	if err := runLogged(ctx, c.log, exec.Command("strip", c.bin)); err != nil {
		return nil, nil, err
	}
	if err := c.pack(ours, files, names); err != nil {
		return nil, nil, err
	}
	floors = []*generator{c.generator}

	g, err := floorGenerator(o, bench.Initrd{Name: bench.GoFloorName, GoFloor: true,
		Build: "go build (CGO_ENABLED=0) bench/floor/gofloor, with the modules dockerinit loaded, from its initramfs"}, "gofloor")
	var ldflags string
	if err == nil {
		ldflags, err = bench.GoFloorLdflags(mods, floorRoot)
	}
	if err == nil {
		gb := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", g.bin, "./bench/floor/gofloor")
		gb.Dir, gb.Env = o.repo, append(os.Environ(), "CGO_ENABLED=0")
		err = runLogged(ctx, g.log, gb)
	}
	if err == nil {
		err = g.pack(ours, files, names)
	}
	if err != nil {
		return floors, err, nil
	}
	return append(floors, g.generator), nil, nil
}

// floorBuild is a floor being built: its generator, its work folder and its /init there.
type floorBuild struct {
	*generator
	dir, bin string
}

func floorGenerator(o options, in bench.Initrd, name string) (floorBuild, error) {
	dir := filepath.Join(o.work, name)
	f := floorBuild{
		generator: &generator{Initrd: in, boot: filepath.Join(o.work, "boot-"+name), log: filepath.Join(o.work, "logs", name+".log"), bootable: true},
		dir:       dir,
		bin:       filepath.Join(dir, "init"),
	}
	for _, d := range []string{f.dir, f.boot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return floorBuild{}, err
		}
	}
	return f, nil
}

// pack writes the floor's initramfs, its /init and the module files, and ours's kernel beside it.
func (f floorBuild) pack(ours *generator, files []initramfs.Entry, names []string) error {
	init, err := os.ReadFile(f.bin)
	if err != nil {
		return err
	}
	out := append(append(initramfs.Base(), initramfs.File("init", 0o755, init)), files...)
	img, err := os.Create(filepath.Join(f.boot, "initramfs.img"))
	if err != nil {
		return err
	}
	if err := initramfs.Write(img, out); err != nil {
		img.Close()
		return err
	}
	if err := img.Close(); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(f.boot, "initramfs.img"))
	if err != nil {
		return err
	}
	f.SizeBytes = int64(len(data))
	if f.Parts, err = bench.Composition(data); err != nil {
		return err
	}
	kernel, err := os.ReadFile(filepath.Join(ours.boot, "vmlinuz"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.boot, "vmlinuz"), kernel, 0o644); err != nil {
		return err
	}
	f.floorModules = names
	logf("%s: %d modules (%s), /init %d bytes, initramfs %.2f MB", f.Name, len(names), strings.Join(names, " "), len(init), float64(f.SizeBytes)/1e6)
	return nil
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
