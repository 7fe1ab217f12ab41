package blockdev

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
