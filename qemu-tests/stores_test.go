package qemutests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// storeCells are the image stores dockerinit boots from besides the fixture's (Docker's btrfs
// driver), each written by its real tool: stores.sh makes one disk a cell.
var storeCells = []struct {
	cell       string
	fstype     string // the disk's file system
	dockerPath string // the store's folder on it, as docker_path= names it
	rootKind   string // how the store's images become a root
	// damage, when set, is a file of the store (relative to the disk's top) that a last boot
	// finds cut to half its size: the boot must stop naming it, at the rescue prompt.
	damage string
}{
	{cell: "docker-overlay2-ext4", fstype: "ext4", dockerPath: "var/lib/docker", rootKind: "overlayfs",
		damage: "var/lib/docker/image/overlay2/repositories.json"},
	{cell: "docker-overlay2-xfs", fstype: "xfs", dockerPath: "var/lib/docker", rootKind: "overlayfs"},
	{cell: "docker-containerd-btrfs", fstype: "btrfs", dockerPath: "var/lib/docker", rootKind: "btrfs snapshot"},
	{cell: "docker-containerd-overlayfs", fstype: "ext4", dockerPath: "var/lib/docker", rootKind: "overlayfs"},
	{cell: "podman-overlay", fstype: "ext4", dockerPath: "var/lib/containers/storage", rootKind: "overlayfs",
		damage: "var/lib/containers/storage/overlay-images/images.json"},
	{cell: "podman-btrfs", fstype: "btrfs", dockerPath: "var/lib/containers/storage", rootKind: "btrfs snapshot"},
	{cell: "containerd-overlayfs", fstype: "ext4", dockerPath: "var/lib/containerd", rootKind: "overlayfs",
		damage: "var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"},
}

// TestStores boots each store cell's disk twice: sample_image with its top layer, then, with
// docker_image=other_image, another image of the same store on a fresh root; then the store is as
// its tool left it. mkbootimg reads the kernel from the store itself, with no daemon running.
func TestStores(t *testing.T) {
	r := requireRig(t)
	for _, c := range storeCells {
		t.Run(c.cell, func(t *testing.T) {
			fixture := filepath.Join(r.fixture, "stores", c.cell)
			runLogged(t, "bash", filepath.Join(r.repo, "qemu-tests", "stores.sh"), c.cell, fixture)
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.img") // stores.sh lists the store of dir/disk.img
			runOrFatal(t, "cp", "--sparse=always", filepath.Join(fixture, "disk.img"), disk)

			sr := withDisk(t, r, disk)
			sr.boot = t.TempDir()
			out := mkbootimgFromStore(t, r, disk, c.fstype, c.dockerPath, sr.boot)
			if want := "docker_path=" + c.dockerPath; !strings.Contains(out, want) {
				t.Errorf("mkbootimg's kernel command line lacks %s:\n%s", want, out)
			}
			cmdline := strings.Replace(baseCmdline, "docker_path=docker", "docker_path="+c.dockerPath, 1) + " " + testinit

			f := runTestinit(t, startVM(t, c.cell+"-sample_image", sr, cmdline))
			checkBootedFrom(t, f, "sample_image", c.rootKind)
			checkTopLayer(t, f)
			expectFact(t, f, "previous", "absent")

			f = runTestinit(t, startVM(t, c.cell+"-other_image", sr, cmdline+" docker_image=other_image"))
			checkBootedFrom(t, f, "other_image", c.rootKind)
			expectFact(t, f, "previous", "absent") // the first boot's file is gone: a fresh root
			expectFact(t, f, "hostname", "dockerinit-top")

			before, err := os.ReadFile(filepath.Join(fixture, "store.list"))
			if err != nil {
				t.Fatal(err)
			}
			after := runLogged(t, "bash", filepath.Join(r.repo, "qemu-tests", "stores.sh"), "list", c.cell, dir)
			if diff := listingDiff(string(before), after); diff != "" {
				t.Errorf("the boots or mkbootimg modified the store (- as its tool left it, + now):\n%s", diff)
			}

			if c.damage != "" {
				t.Run("damaged metadata stops the boot", func(t *testing.T) {
					halve(t, disk, c.fstype, c.damage)
					v := startVM(t, c.cell+"-damaged", sr, cmdline)
					defer v.stop()
					explanation := waitForFailure(t, v)
					if !strings.Contains(explanation, filepath.Base(c.damage)) {
						t.Errorf("the failure message does not name %s:\n%s", c.damage, explanation)
					}
				})
			}
		})
	}
}

// mkbootimgFromStore runs mkbootimg on the store at dockerPath of disk, mounted read-only without
// log replay, writing the boot files to out; it returns what mkbootimg printed.
func mkbootimgFromStore(t *testing.T, r *rig, disk, fstype, dockerPath, out string) string {
	t.Helper()
	opts := map[string]string{"ext4": "ro,noload", "xfs": "ro,norecovery", "btrfs": "ro,rescue=nologreplay"}[fstype]
	mnt := t.TempDir()
	runOrFatal(t, "mount", "-o", "loop,"+opts, disk, mnt)
	defer runOrFatal(t, "umount", mnt)
	mkbootimg := filepath.Join(filepath.Dir(r.boot), "bin", "mkbootimg")
	return runLogged(t, mkbootimg, "--store", filepath.Join(mnt, dockerPath), "--image", "sample_image", "--out", out)
}

// halve cuts the file name of disk's file system (fstype) to half its size, as a crash or a
// full disk might leave it.
func halve(t *testing.T, disk, fstype, name string) {
	t.Helper()
	mnt := t.TempDir()
	runOrFatal(t, "mount", "-t", fstype, "-o", "loop", disk, mnt)
	defer runOrFatal(t, "umount", mnt)
	p := filepath.Join(mnt, name)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// runLogged runs a command, fails the test with its output if it fails, and returns its stdout.
func runLogged(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout, stderr.String())
	}
	t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), stderr.String())
	return string(stdout)
}
