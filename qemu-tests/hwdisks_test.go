package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
)

// The hardware boots' disks, derived from the fixture disk and kept beside it while it is
// unchanged. The boots attach them with snapshot=on, so they are never written.
const (
	// gpt.img: an ESP, the fixture's btrfs as partition 2 and a vfat top layer as partition 3.
	gptRootPartUUID  = "6a1c0e47-2f4b-4c7e-9a55-0d1e2f3a4b5c"
	gptRootPartLabel = "dockerinit-root"
	hwTopLabel       = "HWTOP"
	hwTopPath        = "hwlayer"
	hwInit           = "/usr/local/sbin/hwinit"
	// raid1-a.img + raid1-b.img: the fixture's btrfs converted to RAID1 over two devices, with
	// its own file system UUID so the host never confuses it with the fixture.
	raidUUID = "d0c4e7a1-5b2f-4c3d-9e8f-a1b2c3d4e5f6"

	hwDisksVersion = "1" // bump when the layout below changes
)

// hwinit rides on the vfat top layer: it prints the /dev/disk links the initramfs made (the
// initramfs's /dev moved into the new root), then runs testinit.
const hwinitScript = `#!/bin/sh
exec </dev/console >/dev/console 2>&1
for l in /dev/disk/by-*/*; do
	printf 'DITEST link %s %s\n' "${l#/dev/disk/}" "$(readlink "$l")"
done
exec /usr/local/sbin/testinit
`

type hwDisks struct {
	gpt, raidA, raidB string
}

var (
	hwOnce sync.Once
	hw     *hwDisks
	hwErr  error
)

// requireHWDisks makes the hardware boots' disks once per test binary, or reuses them from an
// earlier run when the fixture disk is the same.
func requireHWDisks(t *testing.T, r *rig) *hwDisks {
	t.Helper()
	hwOnce.Do(func() {
		start := time.Now()
		hw, hwErr = makeHWDisks(r)
		t.Logf("hardware disks ready in %v", time.Since(start).Round(time.Millisecond))
	})
	if hwErr != nil {
		t.Fatal(hwErr)
	}
	return hw
}

func makeHWDisks(r *rig) (*hwDisks, error) {
	dir := filepath.Join(r.fixture, "hw")
	d := &hwDisks{gpt: filepath.Join(dir, "gpt.img"), raidA: filepath.Join(dir, "raid1-a.img"), raidB: filepath.Join(dir, "raid1-b.img")}
	fixtureStamp, err := os.ReadFile(filepath.Join(r.fixture, "fixture.stamp"))
	if err != nil {
		return nil, fmt.Errorf("the fixture has no stamp: %w", err)
	}
	stamp := hwDisksVersion + " " + strings.TrimSpace(string(fixtureStamp))
	stampPath := filepath.Join(dir, "stamp")
	if old, err := os.ReadFile(stampPath); err == nil && string(old) == stamp {
		return d, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fi, err := os.Stat(r.disk)
	if err != nil {
		return nil, err
	}
	if err := makeGPTDisk(d.gpt, r.disk, fi.Size()); err != nil {
		return nil, fmt.Errorf("make %s: %w", d.gpt, err)
	}
	if err := makeRAID1(d.raidA, d.raidB, r.disk, fi.Size()); err != nil {
		return nil, fmt.Errorf("make the RAID1 pair: %w", err)
	}
	return d, os.WriteFile(stampPath, []byte(stamp), 0o644)
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// makeGPTDisk lays out a GPT disk as an installer would: ESP, the btrfs (a sparse copy of the
// fixture disk) and a small vfat partition holding a top layer.
func makeGPTDisk(img, btrfsImg string, btrfsSize int64) error {
	const mib = 1 << 20
	espStart, fatSize := int64(1*mib), int64(40*mib) // FAT32 needs about 34 MiB at least
	rootStart := espStart + fatSize
	topStart := rootStart + btrfsSize
	if err := sh("truncate", "-s", fmt.Sprint(topStart+fatSize+mib), img); err != nil {
		return err
	}
	script := fmt.Sprintf(`label: gpt
label-id: 5D1E7C2A-0B3F-4E59-8C61-7A2B9D4E0F13
start=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=0E6F5B2C-1D3A-4B8E-9F70-2C4D6E8FA0B1, name="EFI System"
start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=%s, name="%s"
start=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=3B7E9D1F-5A2C-4E6B-8D0F-1A3C5E7B9D2F, name="hwtop"
`, espStart/512, fatSize/512, rootStart/512, btrfsSize/512, gptRootPartUUID, gptRootPartLabel, topStart/512, fatSize/512)
	cmd := exec.Command("sfdisk", "--quiet", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %w\n%s", err, out)
	}
	if err := sh("dd", "if="+btrfsImg, "of="+img, "bs=1M", fmt.Sprintf("seek=%d", rootStart/mib), "conv=sparse,notrunc", "status=none"); err != nil {
		return err
	}
	d, err := diskfs.Open(img)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "ESP"}); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	top, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 3, FSType: filesystem.TypeFat32, VolumeLabel: hwTopLabel})
	if err != nil {
		return fmt.Errorf("top layer partition: %w", err)
	}
	name := "/" + hwTopPath + hwInit
	if err := top.Mkdir(filepath.Dir(name)); err != nil {
		return err
	}
	f, err := top.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(hwinitScript)); err != nil {
		return err
	}
	return f.Close()
}

// makeRAID1 turns a sparse copy of the fixture's btrfs into a RAID1 over it and a second device,
// as `btrfs device add` and a converting balance do on a real machine (a few seconds).
func makeRAID1(a, b, btrfsImg string, size int64) (err error) {
	if err := sh("cp", "--sparse=always", btrfsImg, a); err != nil {
		return err
	}
	if err := sh("btrfstune", "-f", "-M", raidUUID, a); err != nil {
		return err
	}
	if err := sh("truncate", "-s", fmt.Sprint(size), b); err != nil {
		return err
	}
	var loops []string
	defer func() {
		for _, l := range loops {
			_ = exec.Command("btrfs", "device", "scan", "--forget", l).Run()
			_ = exec.Command("losetup", "-d", l).Run()
		}
	}()
	for _, f := range []string{a, b} {
		out, err := exec.Command("losetup", "--find", "--show", f).Output()
		if err != nil {
			return fmt.Errorf("losetup %s: %w", f, err)
		}
		loops = append(loops, strings.TrimSpace(string(out)))
	}
	mnt, err := os.MkdirTemp("", "dockerinit-raid1-")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	if err := sh("mount", "-t", "btrfs", loops[0], mnt); err != nil {
		return err
	}
	defer func() {
		if uerr := sh("umount", mnt); err == nil {
			err = uerr
		}
	}()
	if err := sh("btrfs", "device", "add", "-f", loops[1], mnt); err != nil {
		return err
	}
	return sh("btrfs", "balance", "start", "-f", "-dconvert=raid1", "-mconvert=raid1", "-sconvert=raid1", mnt)
}
