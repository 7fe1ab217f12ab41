package qemutests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/imagestore"
)

// TestDistributionInitramfs boots the fixture's image with initramfs images made by Debian's own
// generators, initramfs-tools and dracut, each with our hook (hooks/, installed by `make
// install-hooks`) calling `dockerinit prepare`, on the original tutorial's kernel command line.
// The generators are installed with apt-get into a throwaway copy of the image's root file system
// and run there in a chroot, as `RUN apt-get install ... && RUN update-initramfs -u` would in the
// image's Dockerfile, without a dockerd that runs containers.
func TestDistributionInitramfs(t *testing.T) {
	r := requireRig(t)
	if _, err := exec.LookPath("make"); err != nil {
		requireHost(t, "make is not installed (apt-get install make): the hooks are installed with make install-hooks")
	}
	dockerinit := filepath.Join(filepath.Dir(r.boot), "bin", "dockerinit")
	generators := []string{"initramfs-tools", "dracut"}
	initrds := buildDistributionInitrds(t, r, dockerinit, generators)

	var previousWrote bool
	for _, gen := range generators {
		t.Run(gen, func(t *testing.T) {
			v := startVM(t, "hooks-"+gen, withInitrd(t, r, r.disk, initrds[gen]), baseCmdline+" "+testinit)
			f := runTestinit(t, v)

			t.Run("dockerinit prepare ran", func(t *testing.T) {
				if !seen(v, `dockerinit: image sample_image is [0-9a-f]{12} from Docker.s btrfs storage driver, top layer`) {
					t.Error("no `dockerinit: image sample_image is ...` on the console: the hook did not run dockerinit prepare")
				}
				if !seen(v, `dockerinit: top layer boot_docker applied`) {
					t.Error("no `dockerinit: top layer boot_docker applied` on the console")
				}
			})
			// boot.json too: prepare writes it to /run, which the generator moves into the root.
			checkBootedFrom(t, f, "sample_image", "sample_image", "btrfs snapshot")
			t.Run("top layer applied", func(t *testing.T) {
				expectFact(t, f, "hostname", "dockerinit-top")
				expectFact(t, f, "dotfile", "dotfile from the top layer")
				expectFact(t, f, "motd", "absent")
			})
			t.Run("rw layer is fresh", func(t *testing.T) {
				// The boot before this one (the previous generator's, or another test's) wrote it.
				expectFact(t, f, "previous", "absent")
				if gen == generators[len(generators)-1] && !previousWrote {
					t.Error("the previous boot did not write its marker file, so this boot proves nothing about freshness")
				}
				expectFact(t, f, "written", "ok")
			})
			previousWrote = len(f["written"]) == 1 && f["written"][0] == "ok"
		})
	}
	t.Run("Docker store unchanged", func(t *testing.T) { checkStoreUnchanged(t, r) })

	// An overlay store through the same initramfs images: root= is ext4, so rootflags= has no
	// subvol= (the generator passes it to ext4) and the rw layer is named in dockerinit.toml, as
	// the README says; prepare mounts the overlay, and the hook lays it over the mounted root=.
	const cell = "docker-overlay2-ext4"
	disk := storeDisk(t, r, cell)
	for _, gen := range generators {
		t.Run(gen+" on "+cell, func(t *testing.T) {
			cmdline := strings.NewReplacer("rootflags=subvol=docker_rwlayer ", "", "docker_path=docker", "docker_path=var/lib/docker").Replace(baseCmdline)
			v := startVM(t, "hooks-"+gen+"-"+cell, withInitrd(t, r, disk, initrds[gen]), cmdline+" "+testinit)
			f := runTestinit(t, v)
			if !seen(v, `dockerinit: the image's overlay is the new root at /`) {
				t.Error("no `dockerinit: the image's overlay is the new root at ...` on the console: the hook did not run dockerinit mount-root")
			}
			// initramfs-tools has fsck.ext4 here: it must not run on the device the overlay holds
			// (e2fsck refuses it, and initramfs-tools waits 5 s over that).
			if m := matching(v, `File system check failed|is in use`); len(m) > 0 {
				t.Errorf("the generator's fsck ran on root= while the overlay held it:\n%s", strings.Join(m, "\n"))
			}
			// One / listed: the generator's own mount of root= stays behind in its initramfs.
			checkBootedFrom(t, f, "sample_image", "sample_image", "overlayfs")
			checkTopLayer(t, f)
			expectFact(t, f, "previous", "absent")
			expectFact(t, f, "written", "ok")
		})
	}
	t.Run(cell+" store unchanged", func(t *testing.T) { checkStoreCellUnchanged(t, r, cell, disk) })
}

// withInitrd is r booting its kernel with initrd, on disk.
func withInitrd(t *testing.T, r *rig, disk, initrd string) *rig {
	t.Helper()
	b := withDisk(t, r, disk)
	b.boot = t.TempDir()
	for src, dst := range map[string]string{filepath.Join(r.boot, "vmlinuz"): "vmlinuz", initrd: "initramfs.img"} {
		if err := os.Symlink(src, filepath.Join(b.boot, dst)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// requireHost skips the test outside CI and fails it in CI, where nothing may be skipped.
func requireHost(t *testing.T, missing string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run in CI: %s", missing)
	}
	t.Skipf("SKIPPING: %s", missing)
}

// buildDistributionInitrds builds one initramfs per generator with hooks-initrd.sh from the
// sample_image top layer of the fixture disk, mounted read-only without log replay for the
// while, and returns their paths by generator.
func buildDistributionInitrds(t *testing.T, r *rig, dockerinit string, generators []string) map[string]string {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro,rescue=nologreplay", r.disk, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount the fixture disk read-only: %v\n%s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("unmount the fixture disk: %v\n%s", err, out)
			}
			mounted = false
		}
	}
	// The boots write to the disk: it must not stay mounted meanwhile.
	defer unmount()
	docker := filepath.Join(mnt, "docker")
	store, err := imagestore.Open(docker, ".", imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := store.Resolve("sample_image")
	if err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(docker, filepath.FromSlash(img.Layer))
	initrds := map[string]string{}
	for _, gen := range generators {
		out := t.TempDir()
		cmd := exec.Command("bash", filepath.Join(r.repo, "qemu-tests", "hooks-initrd.sh"), gen, layer, dockerinit, r.repo, out)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		err := cmd.Run()
		logPath := filepath.Join(r.logDir, "hooks-initrd-"+gen+".log")
		_ = os.WriteFile(logPath, log.Bytes(), 0o644)
		if err != nil {
			t.Fatalf("build the %s initramfs with our hook: %v (whole log: %s)\n%s", gen, err, logPath, tailLines(log.String(), 40))
		}
		t.Logf("%s initramfs built (log: %s)", gen, logPath)
		initrds[gen] = filepath.Join(out, "initrd.img")
	}
	unmount()
	return initrds
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
