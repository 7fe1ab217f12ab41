package btrfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// loopDevices attaches n sparse files of 256 MiB as loop devices, detached when the test ends.
func loopDevices(t *testing.T, n int) []string {
	t.Helper()
	requireRoot(t)
	testenv.Tools(t, "mount", "losetup")
	var devs []string
	for i := range n {
		img := filepath.Join(t.TempDir(), "member.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 256<<20); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
		if err != nil {
			t.Fatalf("losetup member %d: %v: %s", i, err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() {
			// Unregister first: a stale entry would name a loop device that is reused later.
			_ = exec.Command("btrfs", "device", "scan", "--forget", dev).Run()
			_ = exec.Command("losetup", "-d", dev).Run()
		})
		devs = append(devs, dev)
	}
	return devs
}

func TestDevicesReadyRAID1(t *testing.T) {
	devs := loopDevices(t, 2)
	run(t, "mkfs.btrfs", "-q", "-f", "-d", "raid1", "-m", "raid1", devs[0], devs[1])
	// mkfs registered both members: make the kernel forget them, as after a reboot.
	run(t, "btrfs", "device", "scan", "--forget", devs[0])
	run(t, "btrfs", "device", "scan", "--forget", devs[1])

	ready, err := DevicesReady(ControlPath, devs[0])
	if err != nil || ready {
		t.Fatalf("DevicesReady(first member only) = %v, %v; want false, nil (the second member is unknown)", ready, err)
	}
	if err := RegisterDevice(ControlPath, devs[1]); err != nil {
		t.Fatal(err)
	}
	ready, err = DevicesReady(ControlPath, devs[0])
	if err != nil || !ready {
		t.Fatalf("DevicesReady after registering both = %v, %v; want true, nil", ready, err)
	}
	mnt := t.TempDir()
	run(t, "mount", "-t", "btrfs", devs[0], mnt)
	run(t, "umount", mnt)
}

func TestDevicesReadySingle(t *testing.T) {
	devs := loopDevices(t, 1)
	run(t, "mkfs.btrfs", "-q", "-f", devs[0])
	run(t, "btrfs", "device", "scan", "--forget", devs[0])
	ready, err := DevicesReady(ControlPath, devs[0])
	if err != nil || !ready {
		t.Fatalf("DevicesReady(single device) = %v, %v; want true, nil", ready, err)
	}
}

func TestControlErrors(t *testing.T) {
	for _, tc := range []struct {
		name, control, dev, want string
	}{
		{"no control device", filepath.Join(t.TempDir(), "btrfs-control"), "/dev/vda", "the btrfs module is not loaded"},
		{"path too long", ControlPath, "/dev/" + strings.Repeat("x", 5000), "at most 4087"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RegisterDevice(tc.control, tc.dev)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RegisterDevice = %v, want an error saying %q", err, tc.want)
			}
			if _, err := DevicesReady(tc.control, tc.dev); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DevicesReady = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
