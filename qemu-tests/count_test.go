package qemutests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/bootloader"
)

// countInit is the image's init for the boot counting boots, laid into the top layer (so every
// image of the fixture has it): it says which image it runs in, fails (exits, so the kernel
// panics and the machine resets, as a broken image's init would) when the command line names its
// image in ditest.fail=, and otherwise marks the boot good with what the initramfs left in /run,
// as an image without systemd does, prints dockerinit status, and powers off. With
// ditest.run=update or rollback (and ditest.ref=REF for update) it runs that mkbootimg verb as a
// user of the booted system would, before powering off: on the store as the booted system mounts
// the root file system's top, writing a GRUB custom.cfg there (ditest-entries/).
const countInit = `#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc 2>/dev/null
img=$(cat /etc/dockerinit-test-image)
echo "DITEST image $img"
for w in $(cat /proc/cmdline); do
	# The pause lets the line reach the console before the panic.
	[ "$w" = "ditest.fail=$img" ] && echo "DITEST failing" && sleep 1 && exit 1
done
/run/dockerinit/dockerinit mark-good | sed 's/^/DITEST markgood /'
/run/dockerinit/dockerinit status | sed 's/^/DITEST status /'
verb= ref=
for w in $(cat /proc/cmdline); do
	case $w in ditest.run=*) verb=${w#*=} ;; ditest.ref=*) ref=${w#*=} ;; esac
done
if [ -n "$verb" ]; then
	mkdir -p /mnt/top
	mount -o subvolid=5 LABEL=linux /mnt/top
	/usr/local/sbin/mkbootimg $verb --bootloader grub --out /mnt/top/ditest-entries \
		--bootloader-config /mnt/top/ditest-entries/custom.cfg --store /mnt/top/docker \
		--modules none --no-pin --tries 2 $ref >/tmp/verb.log 2>&1
	rc=$?
	sed 's/^/DITEST verb /' /tmp/verb.log
	echo "DITEST verbrc $rc"
	umount /mnt/top
fi
echo "DITEST finished"
sync
echo o >/proc/sysrq-trigger
while :; do sleep 1; done
`

// TestBootCounting boots a list of images with boot counting, on one copy of the fixture disk:
// a new image whose init fails uses its tries and the next boot comes up in the fallback by
// itself; a good image is marked good and keeps booting; an image gone from the store is passed
// over; power cuts while the record is written and a garbage record do not stop the count.
func TestBootCounting(t *testing.T) {
	r := requireRig(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img") // fixture.sh lists the store of dir/disk.img
	copyWithCountInit(t, r, disk)
	cr := withDisk(t, r, disk)
	base := baseCmdline + " init=/usr/local/sbin/countinit"
	failing := base + " docker_image=other_image,sample_image dockerinit.tries=2 ditest.fail=other_image"

	t.Run("a failing new image uses its tries, then the fallback boots", func(t *testing.T) {
		for try := 1; try <= 2; try++ {
			v := startVM(t, fmt.Sprintf("count-fail-%d", try), cr, failing)
			if _, err := v.waitFor(regexp.MustCompile(fmt.Sprintf(`dockerinit: booting other_image \(try %d of 2\)`, try)), testinitTimeout); err != nil {
				v.stop()
				t.Fatalf("boot %d did not take try %d of other_image: %v\n%s", try, try, err, v.tail(30))
			}
			if _, err := v.waitFor(regexp.MustCompile(`DITEST failing`), testinitTimeout); err != nil {
				v.stop()
				t.Fatalf("boot %d: other_image's init did not run: %v", try, err)
			}
			if err := v.waitExit(poweroffTimeout); err != nil { // the panic resets the machine
				t.Errorf("boot %d: %v", try, err)
			}
		}
		v := startVM(t, "count-fallback", cr, failing)
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: warning: other_image failed 2 boots: booting sample_image instead`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("the third boot did not say it falls back: %v\n%s", err, v.tail(30))
		}
		checkFellBack(t, waitCountInit(t, v))
	})

	t.Run("the fallback marked good keeps booting", func(t *testing.T) {
		v := startVM(t, "count-good", cr, failing)
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: booting sample_image \(marked good\)`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("the boot after mark-good did not boot the good image: %v\n%s", err, v.tail(30))
		}
		expectFact(t, waitCountInit(t, v), "image", "sample_image")
	})

	t.Run("systemd marks the boot good after boot-complete.target", func(t *testing.T) {
		// An rw layer of its own: a record of its own, with fresh counts.
		list := " rootflags=subvol=count_rw docker_image=other_image,sample_image dockerinit.tries=2"
		v := startVM(t, "count-systemd", cr, baseCmdline+list)
		if _, err := v.waitFor(regexp.MustCompile(`marked the boot of other_image good`), systemdTimeout); err != nil {
			v.stop()
			t.Fatalf("systemd did not run the unit that marks the boot good: %v\n%s", err, v.tail(40))
		}
		v.stop()
		v = startVM(t, "count-systemd-after", cr, base+list)
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: booting other_image \(marked good\)`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("the boot after systemd marked other_image good did not say so: %v\n%s", err, v.tail(30))
		}
		expectFact(t, waitCountInit(t, v), "image", "other_image")
	})

	t.Run("an image gone from the store is passed over", func(t *testing.T) {
		v := startVM(t, "count-missing", cr, base+" docker_image=nosuch,other_image dockerinit.tries=2")
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: warning: nosuch is not in the store: booting other_image instead`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("no fallback from an image missing from the store: %v\n%s", err, v.tail(30))
		}
		expectFact(t, waitCountInit(t, v), "image", "other_image")
	})

	t.Run("power cuts while the try is recorded", func(t *testing.T) {
		cmdline := base + " docker_image=sample_image,other_image dockerinit.tries=5 dockerinit.debug"
		for i, after := range []time.Duration{0, 20 * time.Millisecond, 80 * time.Millisecond} {
			v := startVM(t, fmt.Sprintf("count-cut-%d", i), cr, cmdline)
			if _, err := v.waitFor(regexp.MustCompile(`dockerinit: step: count the try`+lineEnd), testinitTimeout); err != nil {
				v.stop()
				t.Fatalf("cut %d: the boot did not reach the count: %v\n%s", i, err, v.tail(30))
			}
			time.Sleep(after)
			v.stop()
		}
		v := startVM(t, "count-after-cuts", cr, cmdline)
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: booting sample_image \(try [1-4] of 5\)`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("after the cuts the record did not give sample_image a try: %v\n%s", err, v.tail(30))
		}
		f := waitCountInit(t, v)
		expectFact(t, f, "image", "sample_image")
		if seen(v, `boot counting record .* starting a fresh count`) {
			t.Errorf("a power cut damaged the record:\n%s", strings.Join(matching(v, `boot counting record`), "\n"))
		}
	})

	t.Run("a garbage record is reported and counting starts afresh", func(t *testing.T) {
		mountDisk(t, disk, func(top string) {
			if err := os.WriteFile(filepath.Join(top, "dockerinit-state/docker_rwlayer.json"), []byte("\x00garbage{"), 0o644); err != nil {
				t.Fatal(err)
			}
		})
		v := startVM(t, "count-garbage", cr, failing)
		if _, err := v.waitFor(regexp.MustCompile(`boot counting record .*docker_rwlayer.json: not a record: .*starting a fresh count`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("the garbage record was not reported: %v\n%s", err, v.tail(30))
		}
		if _, err := v.waitFor(regexp.MustCompile(`DITEST failing`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("the fresh count did not give other_image a try: %v", err)
		}
		if err := v.waitExit(poweroffTimeout); err != nil {
			t.Error(err)
		}
	})

	t.Run("update and rollback in the booted system", func(t *testing.T) {
		// An rw layer of its own, so a record of its own. The first boot runs sample_image and,
		// once it is marked good, `mkbootimg update other_image`; the next boots take the list
		// from the entry it wrote (the rig's kernel and initramfs, which the entry's match but
		// for the modules: --modules none keeps the guest's build short).
		own := base + " rootflags=subvol=count_upd"
		v := startVM(t, "count-update", cr, own+" docker_image=sample_image dockerinit.tries=2 ditest.run=update ditest.ref=other_image")
		f := waitCountInit(t, v)
		expectFact(t, f, "verbrc", "0")
		expectLine(t, v, `^DITEST verb update: other_image \([0-9a-f]{12}\) boots next, counted; sample_image, running now, is its fallback$`)
		words := verbEntry(t, disk, "dockerinit-other_image-latest", "docker_image=other_image,sample_image", "dockerinit.tries=2", "rootflags=subvol=count_upd")

		v = startVM(t, "count-updated", cr, base+" "+words+" ditest.run=rollback")
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: booting other_image \(try 1 of 2\) from the list other_image,sample_image`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("the entry update wrote did not boot other_image, counted: %v\n%s", err, v.tail(30))
		}
		f = waitCountInit(t, v)
		expectFact(t, f, "image", "other_image")
		expectFact(t, f, "verbrc", "0")
		expectLine(t, v, `^DITEST verb rollback: sample_image boots next again; then other_image$`)
		words = verbEntry(t, disk, "dockerinit-sample_image-latest", "docker_image=sample_image,other_image", "dockerinit.tries=2", "rootflags=subvol=count_upd")

		v = startVM(t, "count-rolled-back", cr, base+" "+words)
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: booting sample_image \(marked good\) from the list sample_image,other_image`), testinitTimeout); err != nil {
			v.stop()
			t.Fatalf("the entry rollback wrote did not boot sample_image: %v\n%s", err, v.tail(30))
		}
		expectFact(t, waitCountInit(t, v), "image", "sample_image")
	})

	t.Run("Docker store unchanged", func(t *testing.T) { checkStoreOf(t, r, dir) })
}

// copyWithCountInit copies the fixture's disk to disk, with countInit in its top layer at
// /usr/local/sbin/countinit.
func copyWithCountInit(t *testing.T, r *rig, disk string) {
	t.Helper()
	runOrFatal(t, "cp", "--sparse=always", r.disk, disk)
	mountDisk(t, disk, func(top string) {
		p := filepath.Join(top, "boot_docker/usr/local/sbin/countinit")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(countInit), 0o755); err != nil {
			t.Fatal(err)
		}
		// mkbootimg, and the dockerinit it puts into the initramfs it builds, for the verbs.
		for _, bin := range []string{"mkbootimg", "dockerinit"} {
			runOrFatal(t, "cp", filepath.Join(rigTemp, "bin", bin), filepath.Join(filepath.Dir(p), bin))
		}
	})
}

// checkFellBack checks what countInit said on the boot that fell back from other_image, which
// failed its 2 tries, to sample_image: the image, dockerinit status, and the boot marked good.
func checkFellBack(t *testing.T, f map[string][]string) {
	t.Helper()
	expectFact(t, f, "image", "sample_image")
	status := strings.Join(f["status"], "\n")
	for _, want := range []string{"why this one  try 1 of 2", "passed over  other_image failed 2 boots", "other_image   0 tries left, 2 failed boots"} {
		if !strings.Contains(squeeze(status), squeeze(want)) {
			t.Errorf("dockerinit status lacks %q:\n%s", want, status)
		}
	}
	expectFact(t, f, "markgood", "marked the boot of sample_image good: it is no longer counted")
}

// waitCountInit waits for countInit to finish and power off, and returns its facts.
func waitCountInit(t *testing.T, v *vm) map[string][]string {
	t.Helper()
	if _, err := v.waitFor(regexp.MustCompile(`DITEST finished`), testinitTimeout); err != nil {
		v.stop()
		t.Fatalf("boot %s: the init did not finish: %v\n%s", v.name, err, v.tail(40))
	}
	if err := v.waitExit(poweroffTimeout); err != nil {
		t.Errorf("boot %s: %v", v.name, err)
	}
	return facts(v.transcript())
}

// verbEntry reads the GRUB entry id that a verb wrote to ditest-entries/custom.cfg on
// the disk, checks that its command line has each of want, and returns those words.
func verbEntry(t *testing.T, disk, id string, want ...string) string {
	t.Helper()
	var cfg string
	mountDisk(t, disk, func(top string) {
		data, err := os.ReadFile(filepath.Join(top, "ditest-entries", "custom.cfg"))
		if err != nil {
			t.Fatal(err)
		}
		cfg = string(data)
	})
	entries, err := bootloader.ParseGRUB(cfg)
	if err != nil {
		t.Fatalf("the custom.cfg the verb wrote: %v\n%s", err, cfg)
	}
	for _, e := range entries {
		if e.ID != id {
			continue
		}
		have := strings.Fields(e.Cmdline)
		for _, w := range want {
			if !slices.Contains(have, w) {
				t.Fatalf("entry %s (%q) boots %q, without %s", id, e.Title, e.Cmdline, w)
			}
		}
		return strings.Join(want, " ")
	}
	t.Fatalf("no entry %s in the custom.cfg the verb wrote:\n%s", id, cfg)
	return ""
}

// expectLine fails the test unless a console line of v matches pattern.
func expectLine(t *testing.T, v *vm, pattern string) {
	t.Helper()
	if !seen(v, pattern) {
		t.Errorf("boot %s: no console line matches %s:\n%s", v.name, pattern, v.tail(30))
	}
}

// squeeze folds runs of white space, for comparing tabulated output.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }
