package blockdev

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// btrfsImage writes a minimal btrfs superblock (fsid, magic, num_devices, label): enough for
// Probe and btrfsNumDevices.
func btrfsImage(t *testing.T, label string, fsid [16]byte, numDevices uint64) string {
	t.Helper()
	b := make([]byte, probeLen)
	copy(b[0x10020:], fsid[:])
	copy(b[0x10040:], "_BHRfS_M")
	binary.LittleEndian.PutUint64(b[0x10088:], numDevices)
	copy(b[0x1012b:], label)
	path := filepath.Join(t.TempDir(), "btrfs.img")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeRegistry is the kernel's btrfs device list: ready once want devices are registered.
type fakeRegistry struct {
	mu         sync.Mutex
	want       int
	registered []string
	err        error
}

func (r *fakeRegistry) Register(dev string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if !slices.Contains(r.registered, filepath.Base(dev)) {
		r.registered = append(r.registered, filepath.Base(dev))
	}
	return nil
}

func (r *fakeRegistry) Ready(dev string) (bool, error) {
	if err := r.Register(dev); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.registered) >= r.want, nil
}

func TestAssemble(t *testing.T) {
	raid := [16]byte{0x11, 0x22}
	for _, tc := range []struct {
		name             string
		members          int    // the file system's devices
		present          []bool // per member: there from the start
		later            int    // index of a member that appears after a while, -1: none
		regErr           error
		noDriver         []string
		want             []string // registered devices, in order
		wantErr          []string // parts of the error; nil: no error
		wantIsIncomplete bool
	}{
		{name: "single device is complete at once", members: 1, present: []bool{true}, later: -1, want: []string{"vda"}},
		{name: "both members there", members: 2, present: []bool{true, true}, later: -1, want: []string{"vda", "vdb"}},
		{name: "second member appears later", members: 2, present: []bool{true, false}, later: 1, want: []string{"vda", "vdb"}},
		{name: "second member never appears", members: 2, present: []bool{true, false}, later: -1,
			noDriver: []string{"pci:v00001000d00000001sv00001AF4sd00000008bc01sc00i00 (PCI mass-storage controller)"},
			want:     []string{"vda"}, wantIsIncomplete: true,
			wantErr: []string{"UUID=11220000-0000-0000-0000-000000000000 (LABEL=linux) has 2 devices and only 1 appeared (", "/vda): 1 missing.",
				`TYPE=ext2 LABEL="other"`, "pci:v00001000d00000001", "rootflags=subvol=NAME,degraded"}},
		{name: "registry fails", members: 2, present: []bool{true, true}, later: -1, regErr: errors.New("EPERM"),
			wantErr: []string{"EPERM"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFakeTree(t)
			ft.add(t, "sda", "", 0, 8, extImage(t, "other", [16]byte{9}))
			hidden := map[int]string{}
			for i, here := range tc.present {
				name := "vd" + string(rune('a'+i))
				ft.add(t, name, "", 0, 4<<11, btrfsImage(t, "linux", raid, uint64(tc.members)))
				if !here {
					class := filepath.Join(ft.sysBlock, name)
					hidden[i] = filepath.Join(ft.root, name)
					if err := os.Rename(class, hidden[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
			devs, err := Scan(ft.sysBlock, ft.devDir)
			if err != nil {
				t.Fatal(err)
			}
			d := devs[slices.IndexFunc(devs, func(d Device) bool { return d.Name == "vda" })]
			changed := make(chan error)
			if tc.later >= 0 {
				go func() {
					changed <- nil // an unrelated event: rescan, still incomplete
					time.Sleep(50 * time.Millisecond)
					changed <- os.Rename(hidden[tc.later], filepath.Join(ft.sysBlock, "vd"+string(rune('a'+tc.later))))
				}()
			}
			timeout := 10 * time.Second
			if tc.wantIsIncomplete {
				timeout = 100 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			reg := &fakeRegistry{want: tc.members, err: tc.regErr}
			err = assemble(ctx, d, ft.sysBlock, ft.devDir, changed, reg)
			var inc *IncompleteError
			if errors.As(err, &inc) {
				inc.NoDriver = tc.noDriver
			}
			if tc.wantIsIncomplete != (inc != nil) {
				t.Fatalf("assemble = %v; want an *IncompleteError: %v", err, tc.wantIsIncomplete)
			}
			if tc.wantErr == nil && err != nil {
				t.Fatalf("assemble = %v, want nil", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("assemble error lacks %q; it is:\n%v", w, err)
				}
			}
			if tc.regErr == nil && !slices.Equal(reg.registered, tc.want) {
				t.Errorf("registered %q, want %q", reg.registered, tc.want)
			}
		})
	}
}

// TestAssembleRefusesACopy: a dd copy of the root's btrfs device has its file system UUID and its
// device UUID; found by PARTUUID= (unique), the root must not be assembled with the copy.
func TestAssembleRefusesACopy(t *testing.T) {
	fsid := [16]byte{0x11, 0x22}
	img := btrfsImage(t, "linux", fsid, 1)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[0x1010b:], []byte{0xde, 0xad}) // the member's device UUID (blkid's UUID_SUB)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ft := newFakeTree(t)
	ft.add(t, "vda", "", 0, 4<<11, img)
	ft.add(t, "vdb", "", 0, 4<<11, img)
	devs, err := Scan(ft.sysBlock, ft.devDir)
	if err != nil {
		t.Fatal(err)
	}
	d := devs[slices.IndexFunc(devs, func(d Device) bool { return d.Name == "vda" })]
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = assemble(ctx, d, ft.sysBlock, ft.devDir, make(chan error), &fakeRegistry{want: 2})
	if err == nil || !strings.Contains(err.Error(), "are the same member device") || !strings.Contains(err.Error(), "vdb") {
		t.Errorf("assemble with a copy of the device = %v, want a refusal naming the copy", err)
	}
}

func TestAssembleNotBtrfs(t *testing.T) {
	// No registry, no uevent socket: an ext4 root needs nothing.
	if err := AssembleBtrfs(context.Background(), Device{Path: "/dev/nosuch", FSType: "ext4"}); err != nil {
		t.Errorf("AssembleBtrfs(ext4) = %v, want nil", err)
	}
}

// TestAssembleBtrfsRealRAID1 registers the second member of a real two-device btrfs that the
// kernel has forgotten, through /dev/btrfs-control, and mounts it.
func TestAssembleBtrfsRealRAID1(t *testing.T) {
	requireRoot(t)
	requireTools(t, "mkfs.btrfs", "btrfs", "mount")
	var loops []string
	for range 2 {
		img := filepath.Join(t.TempDir(), "member.img")
		sparseFile(t, img, 256<<20)
		dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
		t.Cleanup(func() {
			_ = exec.Command("btrfs", "device", "scan", "--forget", dev).Run()
			_ = exec.Command("losetup", "-d", dev).Run()
		})
		loops = append(loops, dev)
	}
	run(t, "mkfs.btrfs", "-q", "-f", "-L", "raidtest", "-d", "raid1", "-m", "raid1", loops[0], loops[1])
	run(t, "btrfs", "device", "scan", "--forget", loops[0])
	run(t, "btrfs", "device", "scan", "--forget", loops[1])
	devs, err := Scan("/sys/class/block", "/dev")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(devs, func(d Device) bool { return d.Path == loops[0] })
	if i < 0 {
		t.Fatalf("Scan did not list %s: %s", loops[0], deviceList(devs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := AssembleBtrfs(ctx, devs[i]); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	run(t, "mount", "-t", "btrfs", loops[0], mnt)
	run(t, "umount", mnt)
}
