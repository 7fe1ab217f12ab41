package qemutests

import (
	"cmp"
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
	// second is the image of the second boot (docker_image=), other_image's content: default
	// other_image itself. foreign names an image the store holds for another platform only.
	second, foreign string
}{
	{cell: "docker-overlay2-ext4", fstype: "ext4", dockerPath: "var/lib/docker", rootKind: "overlayfs",
		damage: "var/lib/docker/image/overlay2/repositories.json"},
	{cell: "docker-overlay2-xfs", fstype: "xfs", dockerPath: "var/lib/docker", rootKind: "overlayfs"},
	{cell: "docker-containerd-btrfs", fstype: "btrfs", dockerPath: "var/lib/docker", rootKind: "btrfs snapshot"},
	{cell: "docker-containerd-overlayfs", fstype: "ext4", dockerPath: "var/lib/docker", rootKind: "overlayfs"},
	// podman's manifest lists, as the containerd cell's indexes.
	{cell: "podman-overlay", fstype: "ext4", dockerPath: "var/lib/containers/storage", rootKind: "overlayfs",
		damage: "var/lib/containers/storage/overlay-images/images.json", second: "multi_image", foreign: "arm_list"},
	{cell: "podman-btrfs", fstype: "btrfs", dockerPath: "var/lib/containers/storage", rootKind: "btrfs snapshot",
		second: "multi_image", foreign: "arm_list"},
	{cell: "containerd-overlayfs", fstype: "ext4", dockerPath: "var/lib/containerd", rootKind: "overlayfs",
		damage: "var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db",
		// podman's multi-platform index of other_image (linux/amd64) and an arm64 image.
		second: "multi_image", foreign: "arm_list"},
}

// TestStores boots each store cell's disk twice: sample_image with its top layer, then, with
// docker_image=other_image, another image of the same store on a fresh root; then the store is as
// its tool left it. mkbootimg reads the kernel from the store itself, with no daemon running.
func TestStores(t *testing.T) {
	r := requireRig(t)
	for _, c := range storeCells {
		t.Run(c.cell, func(t *testing.T) {
			disk := storeDisk(t, r, c.cell)
			sr := withDisk(t, r, disk)
			sr.boot = t.TempDir()
			out := mkbootimgFromStore(t, r, disk, c.fstype, c.dockerPath, sr.boot)
			if want := "docker_path=" + c.dockerPath; !strings.Contains(out, want) {
				t.Errorf("mkbootimg's kernel command line lacks %s:\n%s", want, out)
			}
			cmdline := strings.Replace(baseCmdline, "docker_path=docker", "docker_path="+c.dockerPath, 1) + " " + testinit

			f := runTestinit(t, startVM(t, c.cell+"-sample_image", sr, cmdline))
			checkBootedFrom(t, f, "sample_image", "sample_image", c.rootKind)
			checkTopLayer(t, f)
			expectFact(t, f, "previous", "absent")

			second := cmp.Or(c.second, "other_image")
			f = runTestinit(t, startVM(t, c.cell+"-"+second, sr, cmdline+" docker_image="+second))
			checkBootedFrom(t, f, second, "other_image", c.rootKind) // a multi-platform image's linux/amd64 one
			expectFact(t, f, "previous", "absent")                   // the first boot's file is gone: a fresh root
			expectFact(t, f, "hostname", "dockerinit-top")

			checkStoreCellUnchanged(t, r, c.cell, disk)

			if c.foreign != "" {
				t.Run("an image for another platform only is refused", func(t *testing.T) {
					// At build time, then at boot: both name the platforms the image has.
					out, err := mkbootimgFromStoreErr(t, r, disk, c.fstype, c.dockerPath, t.TempDir(), c.foreign)
					if err == nil || !strings.Contains(out, "linux/arm64") || !strings.Contains(out, "linux/amd64") {
						t.Errorf("mkbootimg --image %s: %v, want a refusal naming linux/arm64 and linux/amd64:\n%s", c.foreign, err, out)
					}
					if c.dockerPath == "var/lib/containerd" {
						checkAsDockers(t, r, disk, c.fstype, c.dockerPath, c.second)
					}
					v := startVM(t, c.cell+"-"+c.foreign, sr, cmdline+" docker_image="+c.foreign)
					defer v.stop()
					if explanation := waitForFailure(t, v); !strings.Contains(explanation, "linux/arm64") {
						t.Errorf("the failure message does not name linux/arm64, the platform %s has:\n%s", c.foreign, explanation)
					}
				})
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

// storeDisk makes (or takes from the cache) the disk of a store cell with stores.sh and returns a
// copy of it in a temporary folder, for the test to boot and write.
func storeDisk(t *testing.T, r *rig, cell string) string {
	t.Helper()
	fixture := filepath.Join(r.fixture, "stores", cell)
	runLogged(t, "bash", filepath.Join(r.repo, "qemu-tests", "stores.sh"), cell, fixture)
	disk := filepath.Join(t.TempDir(), "disk.img") // stores.sh lists the store of <dir>/disk.img
	runOrFatal(t, "cp", "--sparse=always", filepath.Join(fixture, "disk.img"), disk)
	return disk
}

// checkStoreCellUnchanged fails the test if the store on disk, a copy of cell's disk, is not as
// its tool left it.
func checkStoreCellUnchanged(t *testing.T, r *rig, cell, disk string) {
	t.Helper()
	before, err := os.ReadFile(filepath.Join(r.fixture, "stores", cell, "store.list"))
	if err != nil {
		t.Fatal(err)
	}
	after := runLogged(t, "bash", filepath.Join(r.repo, "qemu-tests", "stores.sh"), "list", cell, filepath.Dir(disk))
	if diff := listingDiff(string(before), after); diff != "" {
		t.Errorf("the boots or mkbootimg modified the store (- as its tool left it, + now):\n%s", diff)
	}
}

// mkbootimgFromStore runs mkbootimg for sample_image on the store at dockerPath of disk, mounted
// read-only without log replay, writing the boot files to out; it returns what mkbootimg printed.
func mkbootimgFromStore(t *testing.T, r *rig, disk, fstype, dockerPath, out string) string {
	t.Helper()
	printed, err := mkbootimgFromStoreErr(t, r, disk, fstype, dockerPath, out, "sample_image")
	if err != nil {
		t.Fatalf("mkbootimg --image sample_image: %v\n%s", err, printed)
	}
	t.Logf("mkbootimg:\n%s", printed)
	return printed
}

// checkAsDockers checks that image boots from the containerd store at dockerPath of disk seen as
// Docker's containerd image store (Docker finds it at <data root>/containerd/daemon, namespace
// moby, as here): one image pulled for another machine once made the whole store unreadable
// there, so that Docker's data root looked empty.
func checkAsDockers(t *testing.T, r *rig, disk, fstype, dockerPath, image string) {
	t.Helper()
	mnt, root := mountReadOnly(t, disk, fstype), t.TempDir()
	defer runOrFatal(t, "umount", mnt)
	daemon := filepath.Join(root, "containerd", "daemon")
	for _, d := range []string{filepath.Join(root, "image"), daemon} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runOrFatal(t, "mount", "--bind", "-o", "ro", filepath.Join(mnt, dockerPath), daemon)
	defer runOrFatal(t, "umount", daemon)
	mkbootimg := filepath.Join(filepath.Dir(r.boot), "bin", "mkbootimg")
	if out, err := exec.Command(mkbootimg, "--store", root, "--image", image, "--out", t.TempDir()).CombinedOutput(); err != nil {
		t.Errorf("mkbootimg --image %s from the store as Docker's: %v\n%s", image, err, out)
	}
}

// mountReadOnly mounts the file system (fstype) of disk without writing to it, its journal not
// replayed, and returns where; the caller unmounts it before anything boots the disk.
func mountReadOnly(t *testing.T, disk, fstype string) string {
	t.Helper()
	opts := map[string]string{"ext4": "ro,noload", "xfs": "ro,norecovery", "btrfs": "ro,rescue=nologreplay"}[fstype]
	mnt := t.TempDir()
	runOrFatal(t, "mount", "-o", "loop,"+opts, disk, mnt)
	return mnt
}

// mkbootimgFromStoreErr runs mkbootimg for image on the store at dockerPath of disk, mounted
// read-only without log replay, and returns what it printed and how it ended.
func mkbootimgFromStoreErr(t *testing.T, r *rig, disk, fstype, dockerPath, out, image string) (string, error) {
	t.Helper()
	mnt := mountReadOnly(t, disk, fstype)
	defer runOrFatal(t, "umount", mnt)
	mkbootimg := filepath.Join(filepath.Dir(r.boot), "bin", "mkbootimg")
	b, err := exec.Command(mkbootimg, "--store", filepath.Join(mnt, dockerPath), "--image", image, "--out", out).CombinedOutput()
	return string(b), err
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
