package blockdev

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// extImage writes a minimal ext2 superblock (magic, UUID, label): enough for
// Probe, without needing mkfs in tests of the waiting logic.
func extImage(t *testing.T, label string, uuid [16]byte) string {
	t.Helper()
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[0x438:], 0xEF53)
	copy(b[0x468:], uuid[:])
	copy(b[0x478:0x488], label)
	path := filepath.Join(t.TempDir(), "ext.img")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindDeviceThatAppearsLater(t *testing.T) {
	ft := newFakeTree(t)
	ft.add(t, "vda", "", 0, 8, extImage(t, "other", [16]byte{1}))
	// vdb is ready but hidden from /sys/class/block until it "appears".
	ft.add(t, "vdb", "", 0, 8, extImage(t, "linux", [16]byte{2}))
	class, hidden := filepath.Join(ft.sysBlock, "vdb"), filepath.Join(ft.root, "vdb")
	if err := os.Rename(class, hidden); err != nil {
		t.Fatal(err)
	}
	changed := make(chan error)
	go func() {
		changed <- nil // an unrelated event: rescan, still nothing
		time.Sleep(50 * time.Millisecond)
		changed <- os.Rename(hidden, class) // nil: the add event
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := find(ctx, Spec{"LABEL", "linux"}, ft.sysBlock, ft.devDir, changed)
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if d.Name != "vdb" || d.Path != filepath.Join(ft.devDir, "vdb") || d.FSType != "ext2" {
		t.Errorf("find = %+v, want vdb with ext2", d)
	}
}

func TestFindNotFound(t *testing.T) {
	ft := newFakeTree(t)
	ft.add(t, "vda", "", 0, 4<<21, extImage(t, "Linux", [16]byte{0xab, 0xcd}))
	tests := []struct {
		spec Spec
		want []string // substrings of the message
	}{
		{Spec{"LABEL", "linux"}, []string{
			"no block device with LABEL=linux; 1 seen:",
			ft.devDir + "/vda", "4.0 GiB", `TYPE=ext2 LABEL="Linux" UUID="abcd0000-0000-0000-0000-000000000000"`,
			"has LABEL=Linux, which differs only in upper/lower case",
			"Check the spelling of LABEL=linux", "kernel modules for the disk controller",
		}},
		{Spec{"PARTUUID", "1234abcd-02"}, []string{"no block device with PARTUUID=1234abcd-02; 1 seen:", "Check the spelling"}},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := find(ctx, tt.spec, ft.sysBlock, ft.devDir, nil)
		cancel()
		var nf *NotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("find(%s) error = %v, want a *NotFoundError", tt.spec, err)
		}
		if nf.Spec != tt.spec || len(nf.Seen) != 1 || nf.Seen[0].Label != "Linux" {
			t.Errorf("NotFoundError = %+v, want spec %s and the one device seen", nf, tt.spec)
		}
		for _, s := range tt.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("find(%s) error lacks %q:\n%s", tt.spec, s, err)
			}
		}
		if tt.spec.Kind != "LABEL" && strings.Contains(err.Error(), "differs only") {
			t.Errorf("find(%s) error hints at a label:\n%s", tt.spec, err)
		}
	}
}

func TestFindNoDevicesAtAll(t *testing.T) {
	ft := newFakeTree(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := find(ctx, Spec{"LABEL", "linux"}, ft.sysBlock, ft.devDir, nil)
	if err == nil || !strings.Contains(err.Error(), "the kernel found no block devices at all") ||
		!strings.Contains(err.Error(), "virtio_blk, nvme") {
		t.Errorf("find with no devices: error = %v, want one about missing storage drivers", err)
	}
}

func TestFindStopsOnError(t *testing.T) {
	ft := newFakeTree(t)
	changed := make(chan error, 1)
	changed <- errors.New("read uevent socket: boom")
	_, err := find(context.Background(), Spec{"LABEL", "linux"}, ft.sysBlock, ft.devDir, changed)
	if err == nil || err.Error() != "wait for LABEL=linux: read uevent socket: boom" {
		t.Errorf("find error = %v, want the uevent error with the spec", err)
	}
	_, err = find(context.Background(), Spec{"LABEL", "linux"}, filepath.Join(ft.root, "nosys"), ft.devDir, changed)
	if err == nil || !strings.Contains(err.Error(), "is sysfs mounted") {
		t.Errorf("find without sysfs: error = %v, want it at once", err)
	}
}

func TestFindRejectsBadSpec(t *testing.T) {
	for _, spec := range []Spec{{}, {"NAME", "vda"}, {"LABEL", ""}} {
		if _, err := Find(context.Background(), spec); err == nil {
			t.Errorf("Find(%+v) = nil error, want it rejected at once", spec)
		}
	}
}

// TestFindRealUevent runs Find against the real kernel: the device is a loop
// device attached after Find has started, so only the uevent wakes it.
func TestFindRealUevent(t *testing.T) {
	requireRoot(t)
	const uuid = "5d0c6a52-8f3e-4b7a-9c1d-2e3f4a5b6c7d"
	img := mkfsImage(t, 8<<20, "mkfs.ext4", "-q", "-L", "blockdev-test", "-U", uuid)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		d   Device
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := Find(ctx, Spec{"UUID", strings.ToUpper(uuid)})
		done <- result{d, err}
	}()
	time.Sleep(300 * time.Millisecond) // let Find scan once and start waiting
	loop := strings.TrimSpace(run(t, "losetup", "--show", "-f", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	r := <-done
	if r.err != nil {
		t.Fatalf("Find: %v", r.err)
	}
	if r.d.Path != loop || r.d.FSType != "ext4" || r.d.Label != "blockdev-test" || r.d.UUID != uuid {
		t.Errorf("Find = %+v, want %s with the ext4 image", r.d, loop)
	}
}

// btrfsMember writes the superblock of one device of a btrfs file system: fsid is the file
// system's UUID, dev the device's own (UUID_SUB).
func btrfsMember(t *testing.T, label string, fsid, dev [16]byte, numDevices uint64) string {
	t.Helper()
	img := btrfsImage(t, label, fsid, numDevices)
	writeAt(t, img, 0x1010b, dev[:])
	return img
}

// TestFindDuplicates checks that Find refuses a spec that matches different file systems, names
// them all and what to do, and still takes the devices of one file system.
func TestFindDuplicates(t *testing.T) {
	raid, stick := [16]byte{0x11}, [16]byte{0x22}
	const (
		raidUUID  = "11000000-0000-0000-0000-000000000000"
		stickUUID = "22000000-0000-0000-0000-000000000000"
	)
	iso := filepath.Join(t.TempDir(), "hybrid.iso")
	if err := os.WriteFile(iso, isoImage("LIVE", "", "2024010203040506", ""), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		setup       func(t *testing.T, ft *fakeTree)
		spec        Spec
		want        string   // the device found; "" when a *DuplicateError is wanted
		wantMatches []string // its Matches
		wantErr     []string // parts of its message; "DEV/" stands for the fake /dev
		notErr      []string // what the message must not say
	}{
		{
			name: "a USB stick labelled like the root",
			setup: func(t *testing.T, ft *fakeTree) {
				ft.add(t, "vda", "", 0, 8, extImage(t, "linux", raid))
				ft.add(t, "sdb", "", 0, 8, extImage(t, "linux", stick))
				ft.add(t, "sdc", "", 0, 8, extImage(t, "other", [16]byte{0x33}))
			},
			spec: Spec{"LABEL", "linux"}, wantMatches: []string{"sdb", "vda"},
			wantErr: []string{
				"LABEL=linux names 2 devices that are not one file system:\n",
				"DEV/sdb", `TYPE=ext2 LABEL="linux" UUID="` + stickUUID + `"`,
				"DEV/vda", `TYPE=ext2 LABEL="linux" UUID="` + raidUUID + `"`,
				"dockerinit does not pick one", "relabel one of them (btrfs filesystem label, e2label",
				"or name the one meant by a value only it has: UUID=" + stickUUID + " (DEV/sdb), UUID=" + raidUUID + " (DEV/vda).",
			},
			notErr: []string{"sdc"},
		},
		{
			name: "the members of a btrfs RAID1 are one file system",
			setup: func(t *testing.T, ft *fakeTree) {
				ft.add(t, "vda", "", 0, 8, btrfsMember(t, "linux", raid, [16]byte{1}, 2))
				ft.add(t, "vdb", "", 0, 8, btrfsMember(t, "linux", raid, [16]byte{2}, 2))
			},
			spec: Spec{"LABEL", "linux"}, want: "vda",
		},
		{
			name: "a btrfs RAID1 and a USB stick with its label",
			setup: func(t *testing.T, ft *fakeTree) {
				ft.add(t, "sda", "", 0, 8, btrfsMember(t, "linux", stick, [16]byte{9}, 1))
				ft.add(t, "vda", "", 0, 8, btrfsMember(t, "linux", raid, [16]byte{1}, 2))
				ft.add(t, "vdb", "", 0, 8, btrfsMember(t, "linux", raid, [16]byte{2}, 2))
			},
			spec: Spec{"LABEL", "linux"}, wantMatches: []string{"sda", "vda", "vdb"},
			wantErr: []string{
				"LABEL=linux names 3 devices that are not one file system:\n",
				`TYPE=btrfs LABEL="linux" UUID="` + stickUUID + `" UUID_SUB="09000000-0000-0000-0000-000000000000"`,
				`TYPE=btrfs LABEL="linux" UUID="` + raidUUID + `" UUID_SUB="02000000-0000-0000-0000-000000000000"`,
				": UUID=" + stickUUID + " (DEV/sda), UUID=" + raidUUID + " (DEV/vda).",
			},
		},
		{
			name: "a dd copy of a btrfs device is another file system",
			setup: func(t *testing.T, ft *fakeTree) {
				ft.add(t, "sdb", "", 0, 8, btrfsMember(t, "linux", raid, [16]byte{1}, 1))
				ft.add(t, "vda", "", 0, 8, btrfsMember(t, "linux", raid, [16]byte{1}, 1))
			},
			spec: Spec{"UUID", strings.ToUpper(raidUUID)}, wantMatches: []string{"sdb", "vda"},
			wantErr: []string{"UUID=" + strings.ToUpper(raidUUID) + " names 2 devices", "give one of them a new UUID (btrfstune -u"},
			notErr:  []string{"a value only it has"}, // copies have none
		},
		{
			name: "a hybrid ISO read from the disk and from its first partition",
			setup: func(t *testing.T, ft *fakeTree) {
				ft.add(t, "sdb", "", 0, 8, iso)
				ft.add(t, "sdb1", "sdb", 1, 8, iso)
			},
			spec: Spec{"LABEL", "LIVE"}, want: "sdb",
		},
		{
			name: "a partition label on two disks",
			setup: func(t *testing.T, ft *fakeTree) {
				for i, disk := range []string{"sda", "vda"} {
					gpt := newDisk(t, 8<<20, fmt.Sprintf("label: gpt\nsize=4M, name=\"root\", uuid=%d0000000-0000-4000-8000-000000000000\n", i+1))
					ft.add(t, disk, "", 0, 16384, gpt)
					ft.add(t, disk+"1", disk, 1, 8192, extImage(t, "", [16]byte{byte(i + 1)}))
				}
			},
			spec: Spec{"PARTLABEL", "root"}, wantMatches: []string{"sda1", "vda1"},
			wantErr: []string{
				`PARTLABEL="root"`, "rename one of the partitions (sgdisk -c",
				": UUID=01000000-0000-0000-0000-000000000000 (DEV/sda1), PARTUUID=10000000-0000-4000-8000-000000000000 (DEV/sda1), " +
					"UUID=02000000-0000-0000-0000-000000000000 (DEV/vda1), PARTUUID=20000000-0000-4000-8000-000000000000 (DEV/vda1).",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := newFakeTree(t)
			tt.setup(t, ft)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := find(ctx, tt.spec, ft.sysBlock, ft.devDir, nil)
			if tt.want != "" {
				if err != nil || d.Name != tt.want {
					t.Fatalf("find(%s) = %s, %v; want %s", tt.spec, d.Name, err, tt.want)
				}
				return
			}
			var dup *DuplicateError
			if !errors.As(err, &dup) {
				t.Fatalf("find(%s) = %s, %v; want a *DuplicateError", tt.spec, d.Name, err)
			}
			var names []string
			for _, m := range dup.Matches {
				names = append(names, m.Name)
			}
			if dup.Spec != tt.spec || !slices.Equal(names, tt.wantMatches) {
				t.Errorf("DuplicateError for %s with matches %v; want %s with %v", dup.Spec, names, tt.spec, tt.wantMatches)
			}
			for _, w := range tt.wantErr {
				if w = strings.ReplaceAll(w, "DEV/", ft.devDir+"/"); !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; it is:\n%v", w, err)
				}
			}
			for _, w := range tt.notErr {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error says %q; it is:\n%v", w, err)
				}
			}
		})
	}
}
