package qemutests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

// TestStoreDisk makes a bootable disk of a store that is not on btrfs: mkbootimg disk copies the
// docker-overlay2-ext4 cell's ext4 into partition 2 (--data-image) and reads the kernel from the
// same file system mounted read-only (--store), and the disk boots once through GRUB under OVMF
// to the image's init on an overlay root with the top layer applied, leaving the store as
// dockerd left it. mkbootimg entry, from the same mounted store, names the same root.
func TestStoreDisk(t *testing.T) {
	r := requireRig(t)
	testenv.Need(t, fileExists(ovmfCode) && fileExists(ovmfVars), "OVMF firmware "+ovmfCode+" (apt-get install ovmf)")
	const cell = "docker-overlay2-ext4"
	var dockerPath, rootKind string
	for _, c := range storeCells {
		if c.cell == cell {
			dockerPath, rootKind = c.dockerPath, c.rootKind
		}
	}
	fixture := filepath.Join(r.fixture, "stores", cell)
	runLogged(t, "bash", filepath.Join(r.repo, "qemu-tests", "stores.sh"), cell, fixture)
	data := filepath.Join(fixture, "disk.img") // only read: mounted read-only, and copied
	mkbootimg := filepath.Join(filepath.Dir(r.boot), "bin", "mkbootimg")
	// What every entry must boot with: the ext4 by its label, the store at its path on it.
	wantArgs := []string{"root=LABEL=linux", "docker_path=" + dockerPath, "toplayer_path=boot_docker", "docker_image=sample_image"}

	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	var entryOut, diskOut string
	func() {
		mnt := mountReadOnly(t, data, "ext4")
		defer runOrFatal(t, "umount", mnt)
		store := filepath.Join(mnt, dockerPath)
		entryOut = runLogged(t, mkbootimg, "entry", "--bootloader", "grub", "--store", store, "--image", "sample_image",
			"--toplayer-path", "boot_docker", "--dir", t.TempDir(), "--volume", "LABEL=boot")
		diskOut = runLogged(t, mkbootimg, "disk", "--out", disk, "--bootloader", "grub", "--data-image", data,
			"--store", store, "--image", "sample_image", "--toplayer-path", "boot_docker",
			"--timeout", "1", "--serial", "--append", uefiCmdline)
	}()
	t.Run("mkbootimg entry from the ext4 store", func(t *testing.T) {
		for _, want := range wantArgs {
			if !strings.Contains(entryOut, want) {
				t.Errorf("mkbootimg entry printed no %s:\n%s", want, entryOut)
			}
		}
	})
	if !strings.Contains(diskOut, "partition 2: ext4 LABEL=linux") {
		t.Errorf("mkbootimg disk does not report an ext4 partition 2 labelled linux:\n%s", diskOut)
	}
	var grub uefiBoot
	for _, b := range uefiBoots {
		if b.kind == bootloader.GRUB {
			grub = b
		}
	}
	e := grub.entry(t, espReader(t, disk))
	for _, want := range append(wantArgs, uefiCmdline) {
		if !strings.Contains(e.Cmdline, want) {
			t.Errorf("the disk's first GRUB entry boots %q: no %s", e.Cmdline, want)
		}
	}

	v := startUEFI(t, "store-disk-"+cell, r, dir, disk)
	waitUEFITestinit(t, v, grub)
	f := facts(v.transcript())
	checkBootedFrom(t, f, "sample_image", "sample_image", rootKind)
	checkTopLayer(t, f)
	expectFact(t, f, "previous", "absent")

	// Partition 2, cut out of the booted disk, holds the store byte for byte as dockerd left it.
	after := t.TempDir()
	extractPartition(t, disk, 2, filepath.Join(after, "disk.img"))
	checkStoreCellUnchanged(t, r, cell, filepath.Join(after, "disk.img"))
}

// extractPartition copies partition n of the GPT disk to out, sparse.
func extractPartition(t *testing.T, disk string, n int, out string) {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatalf("open %s: %v", disk, err)
	}
	table, ok := d.Table.(*gpt.Table)
	d.Close()
	if !ok || len(table.Partitions) < n {
		t.Fatalf("%s has no GPT partition %d: %+v", disk, n, d.Table)
	}
	p := table.Partitions[n-1]
	const mib = 1 << 20
	start, size := int64(p.Start)*512, int64(p.End-p.Start+1)*512
	if start%mib != 0 || size%mib != 0 {
		t.Fatalf("partition %d of %s is not MiB-aligned: %d bytes at %d", n, disk, size, start)
	}
	runOrFatal(t, "dd", "if="+disk, "of="+out, "bs=1M", fmt.Sprintf("skip=%d", start/mib), fmt.Sprintf("count=%d", size/mib),
		"conv=sparse", "status=none")
}
