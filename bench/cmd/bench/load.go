package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dockerinit/dockerinit/bench"
	"github.com/dockerinit/dockerinit/btrfs"
	"github.com/dockerinit/dockerinit/imagestore"
	"github.com/dockerinit/dockerinit/toplayer"
)

// What the load cases boot. The store and deep image come from fixture.sh load (LOAD_IMAGES,
// LOAD_LAYERS there); the big top layer folder is written here on the copy of the fixture disk.
const (
	storeImage    = "load_image_200" // the last of the LABEL-only images FROM sample_image
	deepImage     = "deep_image"
	fixtureTop    = "boot_docker"   // the fixture's top layer folder, as in bootCmdline
	loadTopLayer  = "load_toplayer" // the fixture's top layer plus the generated files
	loadTreeDir   = "srv/load"      // where the generated files go inside it
	loadFileBytes = 512             // mean size of a generated file: small, as config files are
	lateTimeout   = "90s"           // dockerinit.timeout of the late disk case
)

// loadCase is one load case and how it boots.
type loadCase struct {
	bench.LoadCase
	disk    string
	cmdline string
	late    time.Duration
}

// withArgs returns cmdline with each key=value of args in place of that key's argument, or
// appended when cmdline has none.
func withArgs(cmdline string, args ...string) string {
	fields := strings.Fields(cmdline)
	for _, a := range args {
		key, _, _ := strings.Cut(a, "=")
		found := false
		for i, f := range fields {
			if k, _, _ := strings.Cut(f, "="); k == key {
				fields[i], found = a, true
				break
			}
		}
		if !found {
			fields = append(fields, a)
		}
	}
	return strings.Join(fields, " ")
}

// newLoadCase is a case booting disk with the normal command line changed by args.
func newLoadCase(name, load, disk string, args ...string) *loadCase {
	return &loadCase{
		LoadCase: bench.LoadCase{Name: name, Load: load, Args: strings.Join(args, " ")},
		disk:     disk, cmdline: withArgs(bootCmdline, args...),
	}
}

// runLoad boots the load cases with the dockerinit initramfs in bootDir, the normal boot on
// disk (the bench's copy of the fixture disk, with the image's rw layer made) and the store
// cases on a copy of the load fixture, rounds times each, interleaved.
func runLoad(ctx context.Context, u *undo, o options, bootDir, disk string) (*bench.Load, error) {
	res := &bench.Load{Date: time.Now(), Dockerinit: gitDescribe(ctx, o.repo)}
	note := func(format string, a ...any) { res.Notes = append(res.Notes, fmt.Sprintf(format, a...)) }

	logf("load: fixture.sh load %s %s (reused while the fixture and the load images are unchanged)", o.loadFixture, o.fixture)
	start := time.Now()
	if err := fixtureSh(ctx, o, "load", o.loadFixture, o.fixture); err != nil {
		return nil, fmt.Errorf("make the load fixture disk: %w", err)
	}
	logf("load: fixture ready in %.0f s", time.Since(start).Seconds())
	loadDisk := filepath.Join(o.work, "load-disk.img")
	if err := copyDisk(ctx, o.loadFixture, loadDisk); err != nil {
		return nil, err
	}
	u.push(func() error { return os.Remove(loadDisk) })

	// The store cases: what the load disk holds, and their rw layers made as the boot makes them.
	mnt := filepath.Join(o.work, "load-disk")
	unmount, err := u.mount(ctx, mnt, "-o", "loop", loadDisk)
	if err != nil {
		return nil, fmt.Errorf("mount the copy of the load fixture disk: %w", err)
	}
	docker := filepath.Join(mnt, "docker")
	store, err := imagestore.Open(docker, ".", imagestore.Options{})
	if err != nil {
		return nil, err
	}
	images, err := store.Images()
	if err != nil {
		return nil, err
	}
	loadImages, named := 0, 0
	for _, img := range images {
		if len(img.Names) > 0 {
			named++
		}
		if slices.ContainsFunc(img.Names, func(n string) bool { return strings.HasPrefix(n, "load_image_") }) {
			loadImages++
		}
	}
	deep, err := store.Resolve(deepImage)
	if err != nil {
		return nil, fmt.Errorf("the load fixture: %w", err)
	}
	deepLayers, err := layerCount(docker, deep.ID)
	if err != nil {
		return nil, err
	}
	base, err := store.Resolve(o.image)
	if err != nil {
		return nil, err
	}
	baseLayers, err := layerCount(docker, base.ID)
	if err != nil {
		return nil, err
	}
	cases := []*loadCase{
		newLoadCase(fmt.Sprintf("store of %d images", named),
			fmt.Sprintf("%s among the %d named images of a store (%d images in all, with the untagged parents the builds leave): %d built by `docker build` of `FROM %s` + `LABEL dockerinit.load=N` "+
				"(distinct image IDs sharing %s's layers), %s, and the fixture's own, by dockerd on a copy of the fixture disk (`fixture.sh load`).",
				storeImage, named, len(images), loadImages, o.image, o.image, deepImage),
			loadDisk, "docker_image="+storeImage, "rootflags=subvol=load_rw_store"),
		newLoadCase(fmt.Sprintf("image %d layers deep", deepLayers),
			fmt.Sprintf("%s: %s (%d layers) and %d `COPY` steps of a tiny file, %d layers in all, built by dockerd in the same store as the case above.",
				deepImage, o.image, baseLayers, deepLayers-baseLayers, deepLayers),
			loadDisk, "docker_image="+deepImage, "rootflags=subvol=load_rw_deep"),
	}
	for _, c := range cases {
		img := strings.TrimPrefix(strings.Fields(c.Args)[0], "docker_image=")
		if _, _, err := hostRWLayer(mnt, img, rwName(c.cmdline), fixtureTop); err != nil {
			return nil, err
		}
	}
	if err := unmount(); err != nil {
		return nil, err
	}

	// The big top layer and the late disk boot the normal disk.
	mnt = filepath.Join(o.work, "disk")
	if unmount, err = u.mount(ctx, mnt, "-o", "loop", disk); err != nil {
		return nil, fmt.Errorf("mount the copy of the fixture disk: %w", err)
	}
	logf("load: writing a top layer folder of %d files on the disk", o.loadFiles)
	tree := filepath.Join(mnt, loadTopLayer)
	if err := removeTree(tree); err != nil {
		return nil, err
	}
	if _, err := output(ctx, "cp", "-a", filepath.Join(mnt, fixtureTop)+"/.", tree+"/"); err != nil {
		return nil, fmt.Errorf("copy the fixture's top layer: %w", err)
	}
	if err := bench.WriteTree(filepath.Join(tree, filepath.FromSlash(loadTreeDir)), o.loadFiles, int64(o.loadFiles)*loadFileBytes, 2); err != nil {
		return nil, err
	}
	files := newLoadCase(fmt.Sprintf("top layer of %d files", o.loadFiles),
		fmt.Sprintf("the fixture's top layer folder and %d generated files (%.0f MB, 100 a directory, under %s/d*/s*/) as the top layer folder %s on the copy of the fixture disk.",
			o.loadFiles, float64(o.loadFiles*loadFileBytes)/1e6, loadTreeDir, loadTopLayer),
		disk, "toplayer_path="+loadTopLayer, "rootflags=subvol=load_rw_files")
	late := newLoadCase(fmt.Sprintf("disk %.0f s late", o.late.Seconds()),
		fmt.Sprintf("QEMU starts without the disk and plugs it in %v later (QMP `blockdev-add` and `device_add` of a virtio-blk-pci on a PCIe root port: "+
			"the guest kernel sees a new PCI device and then its disk); dockerinit.timeout is raised to %s.", o.late, lateTimeout),
		disk, "dockerinit.timeout="+lateTimeout, "rootflags=subvol=load_rw_late")
	late.late, late.LateS = o.late, o.late.Seconds()
	if _, _, err := hostRWLayer(mnt, o.image, rwName(late.cmdline), fixtureTop); err != nil {
		return nil, err
	}
	if _, files.HostApplyS, err = hostRWLayer(mnt, o.image, rwName(files.cmdline), loadTopLayer); err != nil {
		return nil, err
	}
	logf("load: toplayer.Apply of the %d files on the host: %.2f s", o.loadFiles, files.HostApplyS)
	if err := syncfs(mnt); err != nil {
		return nil, err
	}
	if err := unmount(); err != nil {
		return nil, err
	}

	normal := &loadCase{LoadCase: bench.LoadCase{Name: "normal boot", Normal: true,
		Load: fmt.Sprintf("%s from the copy of the fixture disk (%s), the fixture's top layer folder %s: no load.", o.image, "its images as fixture.sh builds them", fixtureTop)},
		disk: disk, cmdline: bootCmdline}
	all := append([]*loadCase{normal}, cases...)
	all = append(all, files, late)

	logf("load: %d rounds of %d cases under QEMU", o.rounds, len(all))
	for r := range o.rounds {
		for i := range all {
			c := all[(i+r)%len(all)]
			if c.Failed != "" {
				continue
			}
			var plugged time.Duration
			b, err := boot(ctx, machineBoot{dir: bootDir, disk: c.disk, cmdline: c.cmdline, late: c.late, plugged: &plugged},
				filepath.Join(o.work, "console", fmt.Sprintf("load-%s-%d.log", fileName(c.Name), r+1)))
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				if c.Normal {
					return nil, fmt.Errorf("load: the normal boot: %w", err)
				}
				c.Failed = err.Error()
				logf("load %d/%d %s did not boot: %v", r+1, o.rounds, c.Name, err)
				continue
			}
			c.Boots = append(c.Boots, b)
			extra := ""
			if c.late > 0 {
				extra = fmt.Sprintf("; plugged %.1f s after QEMU started, the kernel saw it at %.2f s, dockerinit found it at %.2f s", plugged.Seconds(), b.DiskS, b.RootFoundS)
			}
			logf("load %d/%d %s: Run /init at %.2f s, real init at %.2f s: initramfs %.2f s%s",
				r+1, o.rounds, c.Name, b.RunInitS, b.RealInitS, b.InitramfsS(), extra)
		}
	}
	for _, c := range all {
		res.Cases = append(res.Cases, c.LoadCase)
	}
	note("Each case boots with its own rw layer (rootflags=subvol=), made once on the host before the first round as the boot makes it, " +
		"so that every boot deletes its previous rw layer as a rebooting machine does, that of the case's own load.")
	note("The cases are booted by the same initramfs (mkbootimg --modules generic, for %s); the store cases name their image with docker_image=.", o.image)
	return res, nil
}

// rwName is the rw layer subvolume a command line names.
func rwName(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "rootflags="); ok {
			for _, opt := range strings.Split(v, ",") {
				if name, ok := strings.CutPrefix(opt, "subvol="); ok {
					return name
				}
			}
		}
	}
	return ""
}

// hostRWLayer makes on the disk mounted at mnt what the boot makes: image's top layer
// snapshotted to rw (the one there deleted first) with the top layer folder applied. It returns
// the image's layer and how long the apply took, followed by a syncfs.
func hostRWLayer(mnt, image, rw, top string) (layer string, applyS float64, err error) {
	if rw == "" {
		return "", 0, fmt.Errorf("no rw layer name for image %s", image)
	}
	store, err := imagestore.Open(filepath.Join(mnt, "docker"), ".", imagestore.Options{})
	if err != nil {
		return "", 0, err
	}
	img, err := store.Resolve(image)
	if err != nil {
		return "", 0, err
	}
	layer = filepath.Join(mnt, "docker", filepath.FromSlash(img.Layer))
	dst := filepath.Join(mnt, rw)
	if _, err := os.Lstat(dst); err == nil {
		if err := btrfs.Delete(dst); err != nil {
			return "", 0, err
		}
	}
	if err := btrfs.Snapshot(layer, dst); err != nil {
		return "", 0, err
	}
	if err := syncfs(mnt); err != nil {
		return "", 0, err
	}
	start := time.Now()
	if _, err := toplayer.Apply(filepath.Join(mnt, top), dst); err != nil {
		return "", 0, err
	}
	if err := syncfs(mnt); err != nil {
		return "", 0, err
	}
	return layer, time.Since(start).Seconds(), nil
}

// layerCount is the number of layers of image id, from its config in the Docker root.
func layerCount(docker, id string) (int, error) {
	hex, ok := strings.CutPrefix(id, "sha256:")
	if !ok {
		return 0, fmt.Errorf("image ID %q: want sha256:<hex>", id)
	}
	data, err := os.ReadFile(filepath.Join(docker, "image", "btrfs", "imagedb", "content", "sha256", hex))
	if err != nil {
		return 0, err
	}
	var config struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(data, &config); err != nil {
		return 0, fmt.Errorf("image %s's config: %w", id, err)
	}
	return len(config.RootFS.DiffIDs), nil
}
