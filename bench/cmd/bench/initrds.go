package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bench"
	"github.com/dockerinit/dockerinit/uki"
)

// generator builds an initramfs for the image, once per round, and holds its figures.
type generator struct {
	bench.Initrd
	prep   func() error     // untimed, before each build: remove the previous output
	cmd    func() *exec.Cmd // the timed build
	output string           // the initramfs a build writes
	log    string           // where the builds' output goes
	boot   string           // directory with vmlinuz + initramfs.img to boot, once built
	// required stops the bench when it fails; any other generator is dropped with the reason.
	required bool
	// bootable: the initramfs is for the image's machine (the QEMU guest), so it is booted.
	bootable bool
	dropped  error // why it is out of the comparison
	// floorModules are the modules the floor loads, for the notes; set for the floor only.
	floorModules []string
	// disk and cmdline, when set, are what it boots instead of the fixture disk's copy and
	// bootCmdline: its own store's disk.
	disk, cmdline string
}

// ours is mkbootimg with one module set, reading the image from the Docker root.
func ours(o options, dockerRoot, set string) *generator {
	out := filepath.Join(o.work, "boot-"+set)
	args := oursArgs(o, dockerRoot, out, set)
	g := &generator{
		Initrd: bench.Initrd{Name: "dockerinit (" + set + ")", Ours: true,
			Build: "mkbootimg --docker-root DISK/docker --image " + o.image + " --out DIR --modules " + set},
		prep:     func() error { return nil },
		output:   filepath.Join(out, "initramfs.img"),
		log:      filepath.Join(o.work, "logs", "mkbootimg-"+set+".log"),
		boot:     out,
		required: set == "generic",
		// The host set is for the machine mkbootimg runs on, not the guest.
		bootable: set == "generic",
	}
	g.cmd = func() *exec.Cmd { return exec.Command(filepath.Join(o.repo, "bin", "mkbootimg"), args...) }
	return g
}

// oursArgs are mkbootimg's flags for ours with one module set, writing to out.
func oursArgs(o options, dockerRoot, out, set string) []string {
	return []string{"--docker-root", dockerRoot, "--image", o.image, "--out", out, "--modules", set}
}

// oursUKI builds, once and untimed, the image's UKI with the generic initramfs's flags (mkbootimg
// uki, unsigned: it is not booted) and measures it against the kernel and initramfs it holds,
// read back from its sections: the same two files as they would be apart.
func oursUKI(ctx context.Context, o options, dockerRoot string) (*bench.UKI, error) {
	out := filepath.Join(o.work, "uki.efi")
	cmd := exec.Command(filepath.Join(o.repo, "bin", "mkbootimg"), append([]string{"uki"}, oursArgs(o, dockerRoot, out, "generic")...)...)
	if err := runLogged(ctx, filepath.Join(o.work, "logs", "mkbootimg-uki.log"), cmd); err != nil {
		return nil, err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	secs, err := uki.Sections(out)
	if err != nil {
		return nil, err
	}
	kernel, initrd := int64(len(secs[".linux"])), int64(len(secs[".initrd"]))
	if kernel == 0 || initrd == 0 {
		return nil, fmt.Errorf("%s: no .linux or no .initrd section", out)
	}
	return &bench.UKI{
		Build:     "mkbootimg uki --docker-root DISK/docker --image " + o.image + " --out FILE.efi --modules generic",
		SizeBytes: fi.Size(), KernelBytes: kernel, InitrdBytes: initrd,
		Ratio: float64(fi.Size()) / float64(kernel+initrd),
	}, nil
}

// overlayCell is the stores.sh cell the overlay row boots: Docker's overlay2 driver on ext4.
const (
	overlayCell      = "docker-overlay2-ext4"
	overlayStorePath = "var/lib/docker" // the store's folder on the cell's disk, as docker_path= names it
	overlayName      = "dockerinit (overlay2)"
)

// oursOverlay makes the overlay2 cell's disk in WORK/store-overlay2 with qemu-tests/stores.sh
// (restored from its cache in seconds once made) and mounts it read-only without log replay, as
// the store tests do; it returns mkbootimg --store on that store, which boots the disk with
// docker_path=var/lib/docker, and the unmount.
func oursOverlay(ctx context.Context, u *undo, o options) (*generator, func() error, error) {
	dir := filepath.Join(o.work, "store-overlay2")
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(o.repo, "qemu-tests", "stores.sh"), overlayCell, dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("qemu-tests/stores.sh %s: %w", overlayCell, err)
	}
	disk := filepath.Join(dir, "disk.img")
	u.push(func() error { return removeTree(dir) })
	mnt := filepath.Join(o.work, "store-overlay2-ro")
	unmount, err := u.mount(ctx, mnt, "-o", "loop,ro,noload", disk)
	if err != nil {
		return nil, nil, fmt.Errorf("mount the overlay2 store's disk: %w", err)
	}
	out := filepath.Join(o.work, "boot-overlay2")
	args := []string{"--store", filepath.Join(mnt, overlayStorePath), "--image", o.image, "--out", out, "--modules", "generic"}
	g := &generator{
		Initrd: bench.Initrd{Name: overlayName, Ours: true, Store: "Docker overlay2 on ext4 (stores.sh " + overlayCell + ")",
			Build: "mkbootimg --store DISK/" + overlayStorePath + " --image " + o.image + " --out DIR --modules generic"},
		prep:     func() error { return nil },
		output:   filepath.Join(out, "initramfs.img"),
		log:      filepath.Join(o.work, "logs", "mkbootimg-overlay2.log"),
		boot:     out,
		required: o.only == "overlay",
		bootable: true,
		disk:     disk,
		cmdline:  strings.Replace(bootCmdline, "docker_path=docker", "docker_path="+overlayStorePath, 1),
	}
	g.cmd = func() *exec.Cmd { return exec.Command(filepath.Join(o.repo, "bin", "mkbootimg"), args...) }
	return g, unmount, nil
}

// debianTool is a Debian initramfs generator installed with apt-get into its own copy of the
// image's root file system, and run there in a chroot.
type debianTool struct {
	name  string // package
	build []string
}

func debianTools(kver string) []debianTool {
	out := "/boot/initrd.img-" + kver
	return []debianTool{
		{"initramfs-tools", []string{"update-initramfs", "-c", "-k", kver}},
		// Host-only mode would describe the bench machine, not the machine the image boots on.
		{"dracut", []string{"dracut", "--force", "--no-hostonly", out, kver}},
	}
}

// chroot is a copy of the image's root file system with /proc, /sys, /dev and /run mounted.
type chroot struct{ root string }

// command runs args inside the chroot with a clean environment.
func (c chroot) command(args ...string) *exec.Cmd {
	cmd := exec.Command("chroot", append([]string{c.root}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}
	return cmd
}

// newChroot copies the image layer to root (throwaway, outside the Docker store) and mounts the
// API file systems in it. /dev is a fresh tmpfs with the few nodes the tools use, not a bind of
// the host's, so nothing done in the chroot reaches the host's devices.
func newChroot(ctx context.Context, u *undo, layer, root string) (chroot, error) {
	if err := removeTree(root); err != nil {
		return chroot{}, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return chroot{}, err
	}
	u.push(func() error { return removeTree(root) })
	if _, err := output(ctx, "cp", "-a", layer+"/.", root+"/"); err != nil {
		return chroot{}, fmt.Errorf("copy the image's root file system: %w", err)
	}
	for _, m := range [][]string{
		{"proc", "-t", "proc", "proc"},
		{"sys", "-t", "sysfs", "sysfs"},
		{"dev", "-t", "tmpfs", "-o", "mode=0755,nosuid", "dev"},
		{"run", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "run"},
	} {
		if _, err := u.mount(ctx, filepath.Join(root, m[0]), m[1:]...); err != nil {
			return chroot{}, err
		}
	}
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		p := filepath.Join(root, "dev", n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return chroot{}, fmt.Errorf("make /dev/%s in the chroot: %w", n.name, err)
		}
		// apt's download methods run as _apt: the nodes must be writable by all, whatever the umask.
		if err := os.Chmod(p, 0o666); err != nil {
			return chroot{}, err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(root, "dev", name)); err != nil {
			return chroot{}, err
		}
	}
	// The image has no resolv.conf of its own; apt-get needs the host's to reach the mirror.
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return chroot{}, fmt.Errorf("read the host's /etc/resolv.conf for apt-get in the chroot: %w", err)
	}
	_ = os.Remove(filepath.Join(root, "etc", "resolv.conf"))
	if err := os.WriteFile(filepath.Join(root, "etc", "resolv.conf"), resolv, 0o644); err != nil {
		return chroot{}, err
	}
	// No service may start in a chroot during apt-get install.
	return chroot{root}, os.WriteFile(filepath.Join(root, "usr", "sbin", "policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755)
}

// debian sets up t in its own chroot and returns its generator.
func debian(ctx context.Context, u *undo, o options, t debianTool, layer, kver string) (*generator, string, error) {
	c, err := newChroot(ctx, u, layer, filepath.Join(o.work, "rootfs-"+t.name))
	if err != nil {
		return nil, "", err
	}
	log := filepath.Join(o.work, "logs", t.name+".log")
	for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", t.name}} {
		if err := runLogged(ctx, log, c.command(args...)); err != nil {
			return nil, "", fmt.Errorf("install %s in a copy of the image: %w", t.name, err)
		}
	}
	version, err := output(ctx, "chroot", c.root, "dpkg-query", "-W", "-f", "${Version}", t.name)
	if err != nil {
		return nil, "", err
	}
	out := filepath.Join(c.root, "boot", "initrd.img-"+kver)
	g := &generator{
		Initrd: bench.Initrd{Name: t.name, Build: "chroot ROOT " + strings.Join(t.build, " ")},
		prep: func() error {
			if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
				return err
			}
			return nil
		},
		cmd:      func() *exec.Cmd { return c.command(t.build...) },
		output:   out,
		log:      log,
		boot:     filepath.Join(o.work, "boot-"+t.name),
		bootable: true,
	}
	return g, version, nil
}

// buildRounds builds every generator once per round, rotating who goes first so that the
// machine's noise spreads over all of them. A baseline that fails is dropped with the reason;
// mkbootimg failing stops the bench.
func buildRounds(ctx context.Context, rounds int, gens []*generator) error {
	for r := range rounds {
		for i := range gens {
			g := gens[(i+r)%len(gens)]
			if g.dropped != nil {
				continue
			}
			if err := g.prep(); err != nil {
				return fmt.Errorf("%s: %w", g.Name, err)
			}
			s, err := timed(ctx, g.log, g.cmd())
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				if g.required {
					return fmt.Errorf("%s: %w", g.Name, err)
				}
				g.dropped = fmt.Errorf("its build failed: %s (log: %s)", tail(g.log, 1), g.log)
				logf("build %d/%d %s failed, left out of the comparison: %v", r+1, rounds, g.Name, err)
				continue
			}
			g.BuildS = append(g.BuildS, s)
			logf("build %d/%d %s: %.2f s", r+1, rounds, g.Name, s)
		}
	}
	return nil
}

// finish records the size and content of g's last initramfs and puts it where it boots from,
// beside the image's kernel.
func (g *generator) finish(vmlinuz string) error {
	data, err := os.ReadFile(g.output)
	if err != nil {
		return fmt.Errorf("%s: %w", g.Name, err)
	}
	g.SizeBytes = int64(len(data))
	if g.Parts, err = bench.Composition(data); err != nil {
		return fmt.Errorf("%s: %w", g.Name, err)
	}
	if g.Ours {
		return nil
	}
	if err := os.MkdirAll(g.boot, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(g.boot, "initramfs.img"), data, 0o644); err != nil {
		return err
	}
	kernel, err := os.ReadFile(vmlinuz)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(g.boot, "vmlinuz"), kernel, 0o644)
}
