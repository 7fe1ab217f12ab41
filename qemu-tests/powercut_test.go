package qemutests

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// powerCuts are where TestPowerCut kills QEMU, in boot order: a step's debug line, then a wait.
// The waits land inside the steps that write to the disk (deleting and snapshotting the rw
// layer, marking it, laying the top layer); the other steps are cut as they start.
var powerCuts = []struct {
	step  string
	after time.Duration
}{
	{"find root device", 0},
	{"wait for all btrfs devices", 0},
	{"mount root file system", 0},
	{"resolve image", 0},
	{"make rw layer", 0},
	{"make rw layer", 40 * time.Millisecond},
	{"make rw layer", 150 * time.Millisecond},
	{"apply top layer", 0},
	{"apply top layer", 60 * time.Millisecond},
	{"check init", 0},
	{"mount new root", 0},
	{"write boot.json", 0},
	{"switch root", 0},
}

// TestPowerCut cuts the power (SIGKILL to QEMU: what the guest had not written is lost) at each
// step of the boot and inside each write it makes, one boot after the other on one copy of the
// disk, then boots it normally: the image must come up fresh with its top layer, and the store
// must be as dockerd left it.
func TestPowerCut(t *testing.T) {
	r := requireRig(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img") // fixture.sh lists the store of dir/disk.img
	runOrFatal(t, "cp", "--sparse=always", r.disk, disk)
	pr := withDisk(t, r, disk)
	for i, c := range powerCuts {
		name := fmt.Sprintf("powercut-%02d-%s+%v", i, strings.ReplaceAll(c.step, " ", "-"), c.after)
		v := startVM(t, name, pr, baseCmdline+" "+testinit+" dockerinit.debug")
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: step: `+regexp.QuoteMeta(c.step)+lineEnd), failureTimeout); err != nil {
			v.stop()
			t.Fatalf("%s: the boot after the previous power cut did not reach step %q: %v\n%s", name, c.step, err, v.tail(30))
		}
		time.Sleep(c.after)
		v.stop()
		t.Logf("%s: power cut %v into step %q", name, c.after, c.step)
	}
	f := runTestinit(t, startVM(t, "powercut-after", pr, baseCmdline+" "+testinit))
	checkImageBooted(t, f, "sample_image")
	expectFact(t, f, "previous", "absent")
	expectFact(t, f, "hostname", "dockerinit-top") // the top layer's
	checkStoreOf(t, r, dir)
}
