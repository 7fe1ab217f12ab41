// Command bench is `make bench`: dockerinit against Debian's initramfs-tools and dracut, in one
// run on one machine, on the Docker image the QEMU tests boot, and against a floor (bench/floor:
// a static C /init that does only what any initramfs must, compiled with gcc). It measures
// initramfs size and build time, the size of the image's UKI (mkbootimg uki) against its kernel
// and initramfs apart, boot time under QEMU, toplayer.Apply against cp -a, snapshot
// cost against image size, and the boot under load (a store of 200 images, an image 100 layers deep, a top layer of
// 100,000 files, a disk that appears 20 s late), then writes bench/results/latest.{md,svg,json}
// and the README's Performance section. It needs root (loop mounts, chroots) and network access
// to the Debian mirror (to install the baselines in copies of the image); it installs nothing on
// the host. -only load measures the load cases alone, in a few minutes, and keeps the other
// figures of the last full run. dockerinit also boots the image from an overlay2 store (the disk
// qemu-tests/stores.sh makes for its docker-overlay2-ext4 cell), interleaved with the other boots,
// and the snapshot figures have the overlayfs mount beside them; -only overlay measures these two
// alone, beside dockerinit's boots from the btrfs fixture.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dockerinit/dockerinit/bench"
)

type options struct {
	repo, fixture, work, results, readme, image string
	rounds, snapRounds, treeFiles, treeMB       int
	only, loadFixture                           string
	reuseFixture                                bool
	loadFiles                                   int
	late                                        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", ".", "the dockerinit checkout, with bin/mkbootimg and bin/dockerinit built (make build)")
	flag.StringVar(&o.fixture, "fixture", "", "fixture.sh's directory with disk.img (default $DOCKERINIT_FIXTURE_DIR or REPO/out/fixture)")
	flag.StringVar(&o.work, "work", "", "scratch directory, emptied first (default REPO/out/bench)")
	flag.StringVar(&o.results, "results", "", "where latest.md, latest.svg and latest.json go (default REPO/bench/results)")
	flag.StringVar(&o.readme, "readme", "", "README whose Performance section is rewritten (default REPO/README.md; \"-\": none)")
	flag.StringVar(&o.image, "image", "sample_image", "the fixture's image to build initramfs images for and boot")
	flag.IntVar(&o.rounds, "rounds", 3, "builds, boots and copies of each kind (at least 3: medians)")
	flag.IntVar(&o.snapRounds, "snapshot-rounds", 5, "snapshots of each image size")
	flag.IntVar(&o.treeFiles, "tree-files", 20000, "files in the top layer tree")
	flag.IntVar(&o.treeMB, "tree-mb", 500, "MB in the top layer tree (also the small image; the big one is 8 times it)")
	flag.StringVar(&o.only, "only", "", "\"load\": only the load cases (no baselines, top layer or snapshot figures), kept beside the other figures of the last run in the results; "+
		"\"floor\": only dockerinit's boots and the floor's, interleaved, written to WORK/results-floor and not the README (to iterate on the boot); "+
		"\"overlay\": only dockerinit's boots from the btrfs fixture and from the overlay2 store cell, interleaved, and the snapshot against overlayfs mount cost, written to WORK/results-overlay and not the README")
	flag.BoolVar(&o.reuseFixture, "reuse-fixture", false, "use the fixture's disk.img as it is, without running fixture.sh on it (a fixture another checkout made, e.g. CI's: only read and copied)")
	flag.StringVar(&o.loadFixture, "load-fixture", "", "fixture.sh load's directory for the load cases' store (default REPO/out/fixture-load)")
	flag.IntVar(&o.loadFiles, "load-files", 100000, "files in the load case's top layer")
	flag.DurationVar(&o.late, "late", 20*time.Second, "how long after QEMU starts the late disk case plugs the disk in")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		logf("error: %v", err)
		os.Exit(1)
	}
}

func (o *options) resolve() error {
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	o.repo = repo
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.fixture, os.Getenv("DOCKERINIT_FIXTURE_DIR"))
	def(&o.fixture, filepath.Join(repo, "out", "fixture"))
	def(&o.work, filepath.Join(repo, "out", "bench"))
	def(&o.results, filepath.Join(repo, "bench", "results"))
	def(&o.readme, filepath.Join(repo, "README.md"))
	def(&o.loadFixture, filepath.Join(repo, "out", "fixture-load"))
	for _, p := range []*string{&o.fixture, &o.work, &o.results, &o.loadFixture} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if o.rounds < 3 || o.snapRounds < 3 {
		return fmt.Errorf("-rounds %d, -snapshot-rounds %d: medians need at least 3 runs each", o.rounds, o.snapRounds)
	}
	if o.only != "" && o.only != "load" && o.only != "floor" && o.only != "overlay" {
		return fmt.Errorf("-only %q: the parts that run alone are \"load\", \"floor\" and \"overlay\"", o.only)
	}
	if o.only == "floor" || o.only == "overlay" {
		// A partial run must not replace the last full run's results or the README.
		o.results, o.readme = filepath.Join(o.work, "results-"+o.only), "-"
	}
	if o.loadFiles <= 0 || o.late <= 0 {
		return fmt.Errorf("-load-files %d, -late %v: want positive values", o.loadFiles, o.late)
	}
	if o.loadFixture == o.fixture {
		return fmt.Errorf("-load-fixture %s is the fixture itself: the load store needs a directory of its own", o.loadFixture)
	}
	return nil
}

// preflight names everything missing at once.
func preflight(o options) error {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "it must run as root (loop mounts, chroots, btrfs ioctls): sudo make bench")
	}
	if pkgs := missingPackages(exec.LookPath); len(pkgs) > 0 {
		problems = append(problems, fmt.Sprintf("missing Debian packages %s: apt-get install %[1]s", strings.Join(pkgs, " ")))
	}
	for _, b := range []string{"mkbootimg", "dockerinit"} {
		if _, err := os.Stat(filepath.Join(o.repo, "bin", b)); err != nil {
			problems = append(problems, fmt.Sprintf("bin/%s is missing: run make build first", b))
		}
	}
	if len(problems) > 0 {
		return errors.New("cannot run: " + strings.Join(problems, "; "))
	}
	return nil
}

func run(ctx context.Context, o options) error {
	if err := o.resolve(); err != nil {
		return err
	}
	if err := preflight(o); err != nil {
		return err
	}
	u := &undo{}
	defer u.run()
	if err := removeTree(o.work); err != nil {
		return err
	}
	for _, d := range []string{"logs", "console"} {
		if err := os.MkdirAll(filepath.Join(o.work, d), 0o755); err != nil {
			return err
		}
	}
	// A go.mod makes `go test ./...` in the checkout skip this directory, whose chroots have
	// /proc and /sys mounted while the bench runs.
	if err := os.WriteFile(filepath.Join(o.work, "go.mod"), []byte("// Scratch of make bench: not Go code.\nmodule scratch\n"), 0o644); err != nil {
		return err
	}
	res := bench.Results{Date: time.Now(), TopLayer: bench.TopLayer{Files: o.treeFiles, Bytes: int64(o.treeMB) * 1e6}}
	note := func(format string, a ...any) { res.Notes = append(res.Notes, fmt.Sprintf(format, a...)) }

	if o.reuseFixture {
		logf("fixture: %s/disk.img as it is (-reuse-fixture)", o.fixture)
	} else {
		logf("fixture: qemu-tests/fixture.sh %s (reused while its inputs are unchanged)", o.fixture)
		if err := fixtureSh(ctx, o, o.fixture, filepath.Join(o.repo, "bin", "dockerinit")); err != nil {
			return fmt.Errorf("make the fixture disk: %w", err)
		}
	}
	disk := filepath.Join(o.work, "disk.img")
	if err := copyDisk(ctx, o.fixture, disk); err != nil {
		return err
	}
	u.push(func() error { return os.Remove(disk) })
	if o.only == "load" {
		return loadOnly(ctx, u, o, disk)
	}

	logf("rw layer: snapshot of %s with the top layer applied, made on the host for the baselines", o.image)
	mnt := filepath.Join(o.work, "disk")
	unmountDisk, err := u.mount(ctx, mnt, "-o", "loop", disk)
	if err != nil {
		return fmt.Errorf("mount the copy of the fixture disk: %w", err)
	}
	layer, kver, err := prepareRWLayer(mnt, o.image)
	if err != nil {
		return err
	}

	gens := []*generator{ours(o, filepath.Join(mnt, "docker"), "generic")}
	if o.only != "overlay" {
		gens = append(gens, ours(o, filepath.Join(mnt, "docker"), "host"))
	}
	// The overlay row: ours on the overlay2 store cell's disk, built and booted with the others.
	unmountStore := func() error { return nil }
	if o.only == "" || o.only == "overlay" {
		logf("overlay2: qemu-tests/stores.sh %s, mkbootimg --store on it", overlayCell)
		g, unmount, err := oursOverlay(ctx, u, o)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && o.only == "overlay":
			return err
		case err != nil:
			logf("%s left out: %v", overlayName, err)
			note("%s is left out: %v", overlayName, err)
		default:
			gens = append(gens, g)
			unmountStore = unmount
		}
	}
	var versions []bench.Version
	var tools []debianTool
	if o.only == "" {
		tools = debianTools(kver)
	}
	for _, t := range tools {
		logf("%s: copy of the image's root, apt-get install %s", t.name, t.name)
		g, version, err := debian(ctx, u, o, t, layer, kver)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			logf("%s left out: %v", t.name, err)
			note("%s is left out: %v", t.name, err)
			continue
		}
		versions = append(versions, bench.Version{Name: t.name, Version: version})
		gens = append(gens, g)
	}
	if err := buildRounds(ctx, o.rounds, gens); err != nil {
		return err
	}
	vmlinuz := filepath.Join(gens[0].boot, "vmlinuz")
	var bootable []*generator
	for _, g := range gens {
		if g.dropped != nil {
			continue
		}
		if err := g.finish(vmlinuz); err != nil {
			return err
		}
		res.Initrds = append(res.Initrds, g.Initrd)
		if g.bootable {
			bootable = append(bootable, g)
		}
	}
	if o.only == "" {
		logf("UKI: mkbootimg uki with the flags of %s", gens[0].Name)
		res.UKI, err = oursUKI(ctx, o, filepath.Join(mnt, "docker"))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			logf("UKI left out: %v", err)
			note("the UKI is left out: %v", err)
		default:
			logf("UKI: %.2f MB, %.3f of its kernel and initramfs apart", float64(res.UKI.SizeBytes)/1e6, res.UKI.Ratio)
		}
	}
	if err := unmountDisk(); err != nil {
		return err
	}
	if err := unmountStore(); err != nil {
		return err
	}

	// The floors boot right after ours in every round; they are built from ours, after ours.
	var floors []*generator
	var goFloorErr error
	if o.only != "overlay" {
		logf("floor: the least any initramfs must do, built from %s", gens[0].Name)
		floors, goFloorErr, err = buildFloors(ctx, o, gens[0], disk, filepath.Join(o.work, "console"))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if goFloorErr != nil {
		logf("the Go floor left out: %v", goFloorErr)
		note("the Go floor is left out: %v", goFloorErr)
	}
	switch {
	case o.only == "overlay":
	case err != nil:
		logf("floor left out: %v", err)
		note("the floor is left out: %v", err)
	default:
		bootable = append(bootable[:1], append(floors, bootable[1:]...)...)
		gens = append(gens, floors...)
		for _, f := range floors {
			res.Initrds = append(res.Initrds, f.Initrd)
		}
	}

	logf("boots: %d rounds of %d initramfs images under QEMU", o.rounds, len(bootable))
	if err := bootRounds(ctx, o.rounds, bootable, disk, filepath.Join(o.work, "console")); err != nil {
		return err
	}
	for i := range res.Initrds {
		for _, g := range bootable {
			if g.Name == res.Initrds[i].Name {
				res.Initrds[i].Boots = g.Boots
			}
		}
	}
	for _, g := range gens {
		if g.dropped != nil {
			note("%s is left out: %v", g.Name, g.dropped)
		}
	}

	if o.only == "floor" {
		res.Machine = describeMachine(ctx, o, kver, versions)
		addNotes(&res, gens)
		return write(o, res)
	}

	if o.only == "" {
		if res.Load, err = runLoad(ctx, u, o, gens[0].boot, disk); err != nil {
			return err
		}
	}

	logf("top layer: writing %d files, %d MB on a scratch btrfs and ext4", o.treeFiles, o.treeMB)
	s, err := newScratch(ctx, u, o.work)
	if err != nil {
		return err
	}
	if err := writeTrees(ctx, s, res.TopLayer); err != nil {
		return err
	}
	if o.only == "" {
		if err := topLayerBench(ctx, s, o.rounds, &res.TopLayer); err != nil {
			return err
		}
	}
	if res.Snapshots, err = snapshotBench(ctx, s, o.snapRounds, res.TopLayer); err != nil {
		return err
	}

	res.Machine = describeMachine(ctx, o, kver, versions)
	addNotes(&res, gens)
	return write(o, res)
}

// fixtureSh runs qemu-tests/fixture.sh with args, its log on stderr.
func fixtureSh(ctx context.Context, o options, args ...string) error {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(o.repo, "qemu-tests", "fixture.sh")}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// loadOnly is -only load: the dockerinit initramfs built once, the load cases, and the results
// of the last run with their load cases replaced.
func loadOnly(ctx context.Context, u *undo, o options, disk string) error {
	mnt := filepath.Join(o.work, "disk")
	unmountDisk, err := u.mount(ctx, mnt, "-o", "loop", disk)
	if err != nil {
		return fmt.Errorf("mount the copy of the fixture disk: %w", err)
	}
	_, kver, err := prepareRWLayer(mnt, o.image)
	if err != nil {
		return err
	}
	g := ours(o, filepath.Join(mnt, "docker"), "generic")
	logf("load: %s", g.Build)
	if err := runLogged(ctx, g.log, g.cmd()); err != nil {
		return err
	}
	if err := unmountDisk(); err != nil {
		return err
	}
	load, err := runLoad(ctx, u, o, g.boot, disk)
	if err != nil {
		return err
	}
	prev, err := readResults(filepath.Join(o.results, "latest.json"))
	if err != nil {
		return err
	}
	if prev == nil {
		logf("no earlier results in %s: writing the load cases alone", o.results)
		prev = &bench.Results{Date: load.Date, Machine: describeMachine(ctx, o, kver, nil)}
	}
	return write(o, bench.WithLoad(*prev, load))
}

// readResults reads an earlier run's latest.json; nil when there is none.
func readResults(path string) (*bench.Results, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var res bench.Results
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("%s: %w; -only load keeps the other figures of the last run and cannot read them: move it away to write the load cases alone", path, err)
	}
	return &res, nil
}

// gitDescribe names the checkout measured.
func gitDescribe(ctx context.Context, repo string) string {
	out, err := output(ctx, "git", "-C", repo, "describe", "--always", "--dirty")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(out)
}

// copyDisk copies the fixture's disk (sparse) while holding its lock, so no boot writes to it
// meanwhile; the bench then writes only to its copy.
func copyDisk(ctx context.Context, fixture, disk string) error {
	release, err := lockFixture(fixture)
	if err != nil {
		return err
	}
	defer release()
	if _, err := output(ctx, "cp", "--sparse=always", filepath.Join(fixture, "disk.img"), disk); err != nil {
		return fmt.Errorf("copy the fixture disk: %w", err)
	}
	return nil
}

// prepareRWLayer makes on the disk mounted at mnt what the baselines boot and dockerinit makes
// itself: the image's top layer snapshotted to docker_rwlayer with the top layer folder applied.
// It returns the image's layer and its kernel version.
func prepareRWLayer(mnt, image string) (layer, kver string, err error) {
	if layer, _, err = hostRWLayer(mnt, image, "docker_rwlayer", fixtureTop); err != nil {
		return "", "", err
	}
	kernels, err := os.ReadDir(filepath.Join(layer, "lib", "modules"))
	if err != nil {
		return "", "", fmt.Errorf("image %s: its kernel modules: %w", image, err)
	}
	if len(kernels) != 1 {
		return "", "", fmt.Errorf("image %s has %d kernels in /lib/modules, want exactly one to compare the same kernel everywhere", image, len(kernels))
	}
	return layer, kernels[0].Name(), nil
}

// addNotes says what a reader must know to read the figures right.
func addNotes(res *bench.Results, gens []*generator) {
	note := func(s string) { res.Notes = append(res.Notes, s) }
	for _, g := range gens {
		if g.Ours && !g.bootable && g.dropped == nil {
			note(g.Name + " holds the modules this bench machine uses, not the QEMU guest's: it is measured for size and build time, not booted.")
		}
		if g.Store != "" && g.dropped == nil {
			note(fmt.Sprintf("%s boots the image from the disk qemu-tests/stores.sh makes for the %s store cell (a whole-disk ext4 whose "+
				"Docker store, at %s, dockerd wrote with its overlay2 driver), with an initramfs mkbootimg --store built from that store "+
				"and the same command line but docker_path=%s: its root is an overlayfs of the image's layers under a fresh upper "+
				"folder (volatile) instead of a btrfs snapshot. Its boots are interleaved with the others', so its ratio to %s is "+
				"from the same run.", g.Name, overlayCell, overlayStorePath, overlayStorePath, gens[0].Name))
		}
		if g.Floor && g.dropped == nil {
			note(fmt.Sprintf("The floor (bench/floor/floor.c, gcc -static -Os, built by the bench) is the least any initramfs must do here: "+
				"its /init, a static C program, loads the %d modules dockerinit loaded on this VM (read from /proc/modules after a boot of "+
				"dockerinit's initramfs with the image's shell as init: %s), in dockerinit's load plan order, each in a thread once those it "+
				"depends on are in, waits for %s, mounts %s with %s (the rw layer made beforehand, as for initramfs-tools and dracut), "+
				"moves /dev, mounts /proc and switches root to %s. No command line, no device search by label, no snapshot, no top layer.",
				len(g.floorModules), strings.Join(g.floorModules, ", "), floorRoot.Device, floorRoot.FSType, floorRoot.Options, floorRoot.Init))
		}
		if g.GoFloor && g.dropped == nil {
			note("The Go floor (bench/floor/gofloor, go build with CGO_ENABLED=0, built by the bench) does the floor's work as a plain " +
				"static Go program (goroutines for the loads, the standard library and x/sys/unix): its start-up, from \"Run /init\" to " +
				"its first line, is what Go's runtime costs on this kernel and VM before any of dockerinit's code runs.")
		}
	}
	note("dockerinit deletes the rw layer, snapshots the image and applies the top layer during its boot, inside the measured time; " +
		"initramfs-tools and dracut cannot, so they boot a rw layer made beforehand on the host.")
	note("dracut runs with --no-hostonly: host-only mode in a chroot would describe the bench machine, not the machine the image boots on. " +
		"initramfs-tools runs with the image's defaults (MODULES=most, zstd).")
	if os.Getenv("DOCKERINIT_KVM") != "1" {
		note("QEMU runs TCG (no KVM), so every boot takes several times what it takes on hardware; the ratios are what compare.")
	}
	note("The big image is the small one's tree copied eight times with reflinks: eight times the files and extent references of " +
		"distinct data (which is what a snapshot's cost could depend on) without writing gigabytes on a shared disk.")
}

// write writes the results files and the README section.
func write(o options, res bench.Results) error {
	if err := os.MkdirAll(o.results, 0o755); err != nil {
		return err
	}
	doc, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"latest.json": append(doc, '\n'),
		"latest.md":   []byte(bench.Markdown(res, "latest.svg")),
		"latest.svg":  bench.Chart(res),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(o.results, name), data, 0o644); err != nil {
			return err
		}
	}
	logf("wrote %s/latest.{md,svg,json}", o.results)
	if o.readme == "-" {
		return nil
	}
	readme, err := os.ReadFile(o.readme)
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.readme, []byte(bench.UpdateReadme(string(readme), bench.ReadmeSection(res))), 0o644); err != nil {
		return err
	}
	logf("updated the Performance section of %s", o.readme)
	return nil
}
