package qemutests

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// pcVersion is one version of `mkbootimg install`'s inputs. The two versions differ in the
// kernel (another file of the same size), in the dockerinit.toml embedded in the initramfs
// (--boot-timeout) and in the entries' command line (--append): every file install manages has
// other bytes in each, and an interrupted replacement of one version by the other can be seen.
type pcVersion struct{ name, timeout, append string }

var pcVersions = []pcVersion{{"A", "30s", "quiet"}, {"B", "45s", "console=ttyS0 pc=b"}}

// pcSkeleton is the ESP before mkbootimg first runs: systemd-boot's loader.conf and an entry of
// another system, which install must leave as they are.
var pcSkeleton = map[string]string{
	"loader/loader.conf":         "timeout 3\n",
	"loader/entries/debian.conf": "title Debian\nlinux /vmlinuz\ninitrd /initrd.img\n",
}

// pcTemp is the name atomicfile gives a file while it is written: ".NAME.mkbootimg-RANDOM".
var pcTemp = regexp.MustCompile(`^\.(.+)\.mkbootimg-[^/]+$`)

// pcInit is PID 1 of TestMkbootimgPowerCut's boots (init=/pc/pcinit), put into the booted root
// by the top layer with the mkbootimg binary and the two versions' inputs under /pc. It runs
// `mkbootimg install` for systemd-boot into each ESP the command line names (pc.labels=, FAT
// labels), version pc.version=, printing "PC ..." markers the test times its power cuts by, and
// what it sees in the managed directories as it changes (a poll every 50 ms). After the runs it
// waits pc.linger= seconds, with nothing synced beyond what mkbootimg synced, then unmounts the
// ESPs and powers off. Filled in with fmt: %[1]s is the install command's flags, %[2]s the
// per-version case arms.
const pcInit = `#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
exec </dev/console >/dev/console 2>&1
[ -r /proc/cmdline ] || mount -t proc proc /proc
say() { echo "PC $*"; }
arg() { for w in $(cat /proc/cmdline); do case $w in "$1"=*) echo "${w#*=}" ;; esac; done; }
poweroff_now() {
	sync
	echo o >/proc/sysrq-trigger
	while :; do sleep 1; done
}
version=$(arg pc.version)
labels=$(arg pc.labels)
linger=$(arg pc.linger)
for m in vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859_1; do modprobe -q $m; done
case $version in
%[2]s
*) say "unknown pc.version=$version"; poweroff_now ;;
esac

# find_esp prints the device of the FAT file system labelled $1: dockerinit's /dev/disk link, or,
# if the disk appeared after dockerinit scanned, the label read from the FAT32 boot sector.
find_esp() {
	i=0
	while [ $i -lt 100 ]; do
		if [ -e "/dev/disk/by-label/$1" ]; then
			readlink -f "/dev/disk/by-label/$1"
			return 0
		fi
		for d in /dev/vd?; do
			if [ "$(dd if=$d bs=1 skip=71 count=11 2>/dev/null | tr -d ' ')" = "$1" ]; then
				echo $d
				return 0
			fi
		done
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# watch lists the managed directories every 20 ms and prints each new listing. The listing is
# made by the shell's own globbing, with no process forked for it: a temporary file lives for a
# few hundred ms under TCG, and a listing that forks ls and tr on a busy host could miss it.
watch() {
	prev=
	while :; do
		cur=
		for f in $1/dockerinit/desktop-latest/.* $1/dockerinit/desktop-latest/* $1/loader/entries/.* $1/loader/entries/*; do
			cur="$cur ${f#$1/}"
		done
		[ "$cur" != "$prev" ] && say "see$cur"
		[ -z "$prev" ] && : >/run/pc-watching
		prev=$cur
		sleep 0.02
	done
}

for label in $(echo "$labels" | tr , ' '); do
	dev=$(find_esp $label) || { say "no ESP labelled $label"; poweroff_now; }
	mnt=/esp/$label
	mkdir -p $mnt
	mount -t vfat $dev $mnt || { say "mount $dev failed"; poweroff_now; }
	rm -f /run/pc-watching
	watch $mnt &
	watcher=$!
	# The install starts once the watcher has listed the ESP: a watcher forked late on a busy
	# host would miss the temporary files the test times its cuts from.
	while [ ! -e /run/pc-watching ]; do sleep 0.01; done
	say "install $version on $label start"
	/pc/mkbootimg install --esp $mnt %[1]s --rootfs /pc/$version --boot-timeout "$timeout" --append "$append"
	say "install $version on $label done rc=$?"
	kill $watcher
	wait $watcher 2>/dev/null
done
say "idle, lingering ${linger:-0} s"
sleep ${linger:-0}
for label in $(echo "$labels" | tr , ' '); do umount /esp/$label || say "umount /esp/$label failed"; done
say "powering off"
poweroff_now
`

// pcFlags are install's flags that both versions share; the ESP, --rootfs, --boot-timeout and
// --append are added per run.
func pcFlags(init string) []string {
	return []string{"--bootloader", "systemd-boot", "--init", init, "--modules", "none", "--image", "desktop",
		"--also", "desktop:old", "--root", "LABEL=linux", "--docker-path", "docker"}
}

// TestMkbootimgPowerCut cuts the power (SIGKILL to QEMU) under `mkbootimg install` running in a
// booted guest, writing a systemd-boot layout into a FAT32 ESP on a disk of its own: the kernel
// and initramfs into ESP/dockerinit/desktop-latest/ (one atomicfile.WriteSet), then one entry
// file per image into ESP/loader/entries/. Every ESP starts as version A left it (made on the host
// from a run of the same binary on the same inputs), and the guest installs B over it.
//
// A timing boot runs B to completion and powers off cleanly: it shows that the guest's B is the
// host's, and times the run (its start, the first temporary file, the kernel+initramfs pair
// replaced, the run's end). Then one boot per cut point, each on a fresh copy of the A ESP, is
// killed at a delay from the start of the run: inside the pair's writes, around their renames,
// inside the entries' writes, and after the run has returned (before the guest's own writeback
// would have written anything mkbootimg did not sync). After each cut the ESP image is read on
// the host (mtools): each managed file must be whole A or whole B, the user's files untouched,
// and anything else a temporary dot file, which no boot manager reads. A last boot runs B to
// completion on every cut ESP at once: each must then hold exactly B, with no temporary left.
//
// What a cut can leave. A SIGKILL of QEMU loses everything the guest had not yet handed to its
// disk: its page cache, its dirty FAT and directory buffers, its unwritten inodes. What QEMU had
// completed stays in the image, as on a disk that keeps every write it acknowledged. The ESPs are
// attached with cache=directsync: the guest sees a disk with no volatile write cache, so its
// durability rests on the order in which it waits for writes (which is what fsync gives on such
// a disk), and QEMU completes a write only once the host has it. This does not model a disk that
// loses writes it acknowledged before a flush: no QEMU cache mode drops writes at a kill.
//
// FAT has no journal and its renames are not atomic on disk: a rename of a temporary file over
// the final name rewrites the final name's directory entry (start cluster, size), removes the
// temporary's entries and frees the old file's clusters, writes that reach the disk in the order
// the file system's syncs force. internal/atomicfile's replace orders them so that every managed
// file is always whole A or whole B (this test failed before it did: a cut even a second after a
// successful run left every replaced file on freed clusters, and the next run found the ESP
// read-only). What a cut may still leave, and this test reports without failing:
//   - lost clusters (a temporary file's data whose entry never reached the disk, or the old
//     file's between its replacement and the FAT's next write), which only fsck.fat frees: space
//     wasted on the ESP, nothing a boot manager reads;
//   - a kernel and initramfs of different versions, when the cut falls between the two files'
//     syncs after their renames: the documented limit of atomicfile.WriteSet, each file whole,
//     the pair not;
//   - temporary dot files, whole or not.
//
// Not shown here: a file mkbootimg creates where none was (a first install) is, on FAT, an empty
// file for the moment between the directory's sync and the file's (vfat writes the new entry
// empty until the file's inode is written); every ESP here starts with A's files.
func TestMkbootimgPowerCut(t *testing.T) {
	r := requireRig(t)
	work := t.TempDir()
	mkbootimg := filepath.Join(rigTemp, "bin", "mkbootimg")

	// The guest's /pc: mkbootimg, two root file systems with a kernel each, the dockerinit
	// stand-in for the initramfs' /init (as in cmd/mkbootimg's crash test, random bytes: the
	// kernel and initramfs are never booted, only compared), and the init script.
	pc := filepath.Join(work, "pc")
	pcRandom(t, filepath.Join(pc, "A", "boot", "vmlinuz-6.1.0-1-amd64"), 1, 8<<20)
	pcRandom(t, filepath.Join(pc, "B", "boot", "vmlinuz-6.1.0-1-amd64"), 2, 8<<20)
	pcRandom(t, filepath.Join(pc, "init"), 3, 3<<20)
	runOrFatal(t, "cp", mkbootimg, filepath.Join(pc, "mkbootimg"))
	var arms strings.Builder
	for _, v := range pcVersions {
		fmt.Fprintf(&arms, "%s) timeout=%s append=%s ;;\n", v.name, shellQuote(v.timeout), shellQuote(v.append))
	}
	script := fmt.Sprintf(pcInit, strings.Join(pcFlags("/pc/init"), " "), strings.TrimSuffix(arms.String(), "\n"))
	if err := os.WriteFile(filepath.Join(pc, "pcinit"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	// The references: A on the skeleton, then B over A, by the same binary on the host. The
	// entries name the kernel by its path on the ESP, so where the ESP is mounted does not matter.
	install := func(esp string, v pcVersion) {
		t.Helper()
		args := append([]string{"install", "--esp", esp}, pcFlags(filepath.Join(pc, "init"))...)
		args = append(args, "--rootfs", filepath.Join(pc, v.name), "--boot-timeout", v.timeout, "--append", v.append)
		if out, err := exec.Command(mkbootimg, args...).CombinedOutput(); err != nil {
			t.Fatalf("mkbootimg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	treeA := filepath.Join(work, "treeA")
	pcWriteTree(t, treeA, pcSkeleton)
	install(treeA, pcVersions[0])
	refA := pcSnapshot(t, treeA)
	treeB := filepath.Join(work, "treeB")
	runOrFatal(t, "cp", "-a", treeA, treeB)
	install(treeB, pcVersions[1])
	refB := pcSnapshot(t, treeB)
	var managed []string
	for _, n := range pcNames(refA, refB) {
		if _, user := pcSkeleton[n]; !user {
			if refA[n] == "" || refB[n] == "" || refA[n] == refB[n] {
				t.Fatalf("%s: A %q, B %q: the versions must each have it, with other bytes", n, refA[n], refB[n])
			}
			managed = append(managed, n)
		}
	}
	t.Logf("files mkbootimg manages on the ESP: %s", strings.Join(managed, ", "))

	disk := alteredDisk(t, r, func(top string) {
		runOrFatal(t, "cp", "-a", pc, filepath.Join(top, "boot_docker", "pc"))
	})
	pr := withDisk(t, r, disk)
	// boot starts the guest on the ESP images, each labelled as its file is named.
	boot := func(name, extra string, esps ...string) *vm {
		t.Helper()
		devices := []string{"-drive", "file=" + pr.disk + ",if=virtio,format=raw,cache=unsafe"}
		var labels []string
		for _, img := range esps {
			devices = append(devices, "-drive", "file="+img+",if=virtio,format=raw,cache=directsync")
			labels = append(labels, pcLabel(img))
		}
		return startWithDisks(t, name, pr, baseCmdline+" init=/pc/pcinit pc.labels="+strings.Join(labels, ",")+" "+extra, devices)
	}
	wait := func(v *vm, pattern string, timeout time.Duration) consoleLine {
		t.Helper()
		l, err := v.waitFor(regexp.MustCompile(pattern), timeout)
		if err != nil {
			v.stop()
			t.Fatalf("boot %s: %v\n%s", v.name, err, v.tail(40))
		}
		return l
	}

	// The timing boot.
	timed := pcESP(t, work, "PCESP0", treeA)
	v := boot("mkbootimg-powercut-timing", "pc.version=B", timed)
	start := wait(v, `^PC install B on PCESP0 start$`, testinitTimeout)
	done := wait(v, `^PC install B on PCESP0 done rc=[0-9]+$`, testinitTimeout)
	if !strings.HasSuffix(done.text, "rc=0") {
		t.Fatalf("mkbootimg install in the guest failed:\n%s", v.tail(40))
	}
	wait(v, `^PC powering off$`, testinitTimeout)
	if err := v.waitExit(poweroffTimeout); err != nil {
		t.Fatal(err)
	}
	if got := pcImageTree(t, timed); !maps.Equal(got.files, refB) {
		t.Fatalf("the guest's run of B differs from the host's:\n%s", pcDiff(got.files, refB))
	}
	// The run's events are read from the whole transcript, each on its own: the watcher's lines
	// and mkbootimg's come from two processes, in either order within a few ms.
	pair, ok := pcFirst(v, fromPair)
	if !ok {
		t.Fatalf("mkbootimg in the guest never said it wrote the initramfs:\n%s", v.tail(40))
	}
	firstTemp, ok := pcFirst(v, fromTemp)
	if !ok || firstTemp.at > pair.at {
		// The watcher never saw the pair's temporary files (a host too busy to run it in the
		// few hundred ms they live): the cuts below then aim from the run's start.
		t.Logf("the guest's watcher saw no temporary file before the pair was written; cuts aim from the run's start")
		firstTemp = start
	}
	tTemp, tPair, tDone := firstTemp.at-start.at, pair.at-start.at, done.at-start.at
	t.Logf("install B over A in the guest: first temporary file seen after %v, kernel+initramfs replaced after %v, done after %v (console times)",
		tTemp.Round(time.Millisecond), tPair.Round(time.Millisecond), tDone.Round(time.Millisecond))

	// The cuts, each at a delay from a console line of its boot: the first temporary file the
	// guest saw (how long the build before it takes varies by hundreds of ms from boot to boot),
	// the pair's "wrote" line, the run's end. Under TCG on a shared host a delay still lands a
	// little earlier or later from one boot to the next; each cut's outcome is reported.
	writing := tPair - tTemp
	aimTemp := fromTemp
	if firstTemp == start {
		aimTemp = fromStart
	}
	cuts := []struct {
		what, from string
		after      time.Duration
	}{
		{"writing the pair's temporary files", aimTemp, writing / 3},
		{"late in the pair's writes", aimTemp, writing * 3 / 4},
		{"about the pair's renames", aimTemp, writing * 19 / 20},
		{"writing the entries", fromPair, 10 * time.Millisecond},
		{"1 s after the run returned", fromDone, time.Second},
	}
	var cutImages []string
	for i, c := range cuts {
		label := fmt.Sprintf("PCESP%d", i+1)
		img := pcESP(t, work, label, treeA)
		cutImages = append(cutImages, img)
		name := fmt.Sprintf("mkbootimg-powercut-%d", i+1)
		v := boot(name, "pc.version=B pc.linger=600", img)
		start := wait(v, `^PC install B on `+label+` start$`, testinitTimeout)
		var from consoleLine
		switch c.from {
		case fromStart:
			from = start
		case fromTemp:
			// A watcher that misses the temporary files in this boot would leave the wait to the
			// run's end: the pair's line stops it too, and the cut is reported where it landed.
			from = wait(v, fromTemp+`|`+fromPair, testinitTimeout)
		default:
			from = wait(v, c.from, testinitTimeout)
		}
		time.Sleep(c.after - (time.Since(v.start) - from.at))
		v.stop()
		cutAt := time.Since(v.start) - start.at
		var seen string
		for _, l := range v.transcript() {
			if strings.HasPrefix(l.text, "PC see ") || strings.HasPrefix(l.text, "PC install") || strings.HasPrefix(l.text, "wrote ") {
				seen = l.text
			}
		}
		got := pcImageTree(t, img)
		outcome := pcJudge(t, name, got.files, refA, refB, managed)
		t.Logf("cut %d (%s): power cut %v after the run started, aimed at %v after %q; the guest's last line: %q\n  %s\n  fsck.fat -n: %s",
			i+1, c.what, cutAt.Round(time.Millisecond), c.after.Round(time.Millisecond), from.text, seen, outcome, got.fsck)
	}

	// The repair: B to completion on every cut ESP. No cut may leave a file whose directory entry
	// is longer than its cluster chain: Linux's vfat syncs a file's entry before the FAT, and
	// before atomicfile synced the directory ahead of a temporary file, a cut inside that file's
	// sync left one, whose removal by the next run made the kernel set the ESP read-only
	// ("deleting FAT entry beyond EOF"). Such an ESP still gets fsck.fat -a, so that the rest of
	// the test runs.
	for i, img := range cutImages {
		if fsck, _ := exec.Command("fsck.fat", "-n", img).CombinedOutput(); pcShortChain.Match(fsck) {
			out, _ := exec.Command("fsck.fat", "-a", img).CombinedOutput()
			t.Errorf("cut %d left a file whose cluster chain is shorter than its size (the next run's removal of it sets the ESP read-only); fsck.fat -a before the next run:\n%s", i+1, out)
		}
	}
	v = boot("mkbootimg-powercut-repair", "pc.version=B", cutImages...)
	for i := range cutImages {
		l := wait(v, fmt.Sprintf(`^PC install B on PCESP%d done rc=[0-9]+$`, i+1), testinitTimeout)
		if !strings.HasSuffix(l.text, "rc=0") {
			t.Errorf("the run after cut %d failed: %s\n%s", i+1, l.text, v.tail(40))
		}
	}
	wait(v, `^PC powering off$`, testinitTimeout)
	if err := v.waitExit(poweroffTimeout); err != nil {
		t.Fatal(err)
	}
	for i, img := range cutImages {
		got := pcImageTree(t, img)
		if !maps.Equal(got.files, refB) {
			t.Errorf("after cut %d and a run to completion, the ESP is not B alone:\n%s", i+1, pcDiff(got.files, refB))
		}
		t.Logf("after cut %d and a run to completion: the ESP holds B and no temporary file; fsck.fat -n: %s", i+1, got.fsck)
	}
}

// The console lines TestMkbootimgPowerCut aims its cuts from: the run's start, the first
// temporary file the guest's watcher saw, mkbootimg's line for the pair, the run's end.
const (
	fromStart = `^PC install B on PCESP[0-9] start$`
	fromTemp  = `PC see .*\.mkbootimg-`
	fromPair  = `wrote /esp/PCESP[0-9]/dockerinit/desktop-latest/initramfs\.img `
	fromDone  = `^PC install B on PCESP[0-9] done rc=[0-9]+$`
)

// pcFirst is the first line of v's transcript that pattern matches.
func pcFirst(v *vm, pattern string) (consoleLine, bool) {
	re := regexp.MustCompile(pattern)
	for _, l := range v.transcript() {
		if re.MatchString(l.text) {
			return l, true
		}
	}
	return consoleLine{}, false
}

// pcJudge checks an ESP after a cut against the two versions and says what it holds: each
// managed file whole A or whole B, the user's files as they were, temporary dot files whole,
// partial or empty (no boot manager reads them; the next run removes them), nothing else.
func pcJudge(t *testing.T, name string, got, refA, refB map[string]string, managed []string) string {
	t.Helper()
	var parts []string
	version := map[string]string{}
	for _, n := range managed {
		switch got[n] {
		case refA[n]:
			version[n] = "A"
		case refB[n]:
			version[n] = "B"
		default:
			version[n] = "NEITHER"
			t.Errorf("%s: %s is neither whole A nor whole B: %q\nA %q\nB %q", name, n, got[n], refA[n], refB[n])
		}
		parts = append(parts, path.Base(n)+" "+version[n])
	}
	for n, want := range pcSkeleton {
		if w := pcDigest([]byte(want)); got[n] != w {
			t.Errorf("%s: the user's %s changed: %q, want %q", name, n, got[n], w)
		}
	}
	for _, n := range pcNames(got) {
		if slices.Contains(managed, n) || pcSkeleton[n] != "" {
			continue
		}
		m := pcTemp.FindStringSubmatch(path.Base(n))
		final := path.Join(path.Dir(n), "x")
		if m != nil {
			final = path.Join(path.Dir(n), m[1])
		}
		if m == nil || !slices.Contains(managed, final) {
			t.Errorf("%s: %s (%s) is no file of either version and no temporary file of one", name, n, got[n])
			continue
		}
		what := "partial"
		switch got[n] {
		case refA[final]:
			what = "whole A"
		case refB[final]:
			what = "whole B"
		}
		parts = append(parts, fmt.Sprintf("temporary %s (%s)", path.Base(n), what))
	}
	kernel, initrd := version["dockerinit/desktop-latest/vmlinuz"], version["dockerinit/desktop-latest/initramfs.img"]
	if kernel != initrd {
		parts = append(parts, "MIXED PAIR: the kernel of "+kernel+" with the initramfs of "+initrd)
	}
	return strings.Join(parts, "; ")
}

// pcTree is what the host reads back from an ESP image.
type pcTree struct {
	files map[string]string // path -> pcDigest
	fsck  string            // what fsck.fat -n says of it, shortened
}

// pcImageTree copies every file out of the FAT image img with mtools (the host kernel need not
// have vfat) and digests them. mcopy failing on a file (a broken cluster chain) leaves it absent
// or short, which the comparison then reports.
func pcImageTree(t *testing.T, img string) pcTree {
	t.Helper()
	dir := t.TempDir()
	// File by file: one broken cluster chain must not hide the others.
	list, err := exec.Command("mdir", "-i", img, "-/", "-b", "::").Output()
	if err != nil {
		t.Fatalf("mdir of %s: %v", img, err)
	}
	for _, name := range strings.Fields(string(list)) {
		rel := strings.TrimPrefix(name, "::/")
		if strings.HasSuffix(rel, "/") {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mcopy", "-n", "-i", img, name, dst).CombinedOutput(); err != nil {
			t.Logf("mcopy %s from %s: %v\n%s", name, img, err, out)
			os.Remove(dst)
		}
	}
	fsck, _ := exec.Command("fsck.fat", "-n", img).CombinedOutput()
	// What every ESP the guest had mounted shows (Linux marks it dirty while mounted, in the boot
	// sector but not its backup) is left out.
	var lines []string
	for _, l := range strings.Split(string(fsck), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !pcFsckNoise.MatchString(l) {
			lines = append(lines, l)
		}
	}
	return pcTree{files: pcSnapshot(t, dir), fsck: strings.Join(lines, " / ")}
}

// pcShortChain is what fsck.fat says of a file whose cluster chain is shorter than its size.
var pcShortChain = regexp.MustCompile(`File size is [0-9]+ bytes, cluster chain length is [0-9]+ bytes`)

var pcFsckNoise = regexp.MustCompile(`^fsck\.fat |differences between boot sector and its backup|^This is mostly harmless|^Differences: |^65:01/00$|^Not automatically fixing this|^Dirty bit is set|^Automatically removing dirty bit|^Leaving filesystem unchanged|^Free cluster summary wrong|^Auto-correcting`)

// pcESP makes a FAT32 image labelled label holding the tree dir, as mkfs.vfat and mtools write it.
func pcESP(t *testing.T, work, label, dir string) string {
	t.Helper()
	img := filepath.Join(work, label+".img")
	runOrFatal(t, "truncate", "-s", "96M", img)
	runOrFatal(t, "mkfs.vfat", "-F", "32", "-n", label, img)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", "-i", img}
	for _, e := range entries {
		args = append(args, filepath.Join(dir, e.Name()))
	}
	runOrFatal(t, "mcopy", append(args, "::/")...)
	return img
}

// pcLabel is the label pcESP gave img.
func pcLabel(img string) string { return strings.TrimSuffix(filepath.Base(img), ".img") }

// pcSnapshot digests every regular file under root by its slash path.
func pcSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		tree[filepath.ToSlash(rel)] = pcDigest(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func pcDigest(data []byte) string {
	return fmt.Sprintf("%d bytes sha256 %x", len(data), sha256.Sum256(data))
}

func pcWriteTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pcRandom writes size pseudo-random bytes (incompressible, as a kernel is) to p.
func pcRandom(t *testing.T, p string, seed uint64, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(data)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func pcNames(trees ...map[string]string) []string {
	var all []string
	for _, tree := range trees {
		all = slices.AppendSeq(all, maps.Keys(tree))
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func pcDiff(got, want map[string]string) string {
	var b strings.Builder
	for _, n := range pcNames(got, want) {
		if got[n] != want[n] {
			fmt.Fprintf(&b, "  %s:\n    got  %q\n    want %q\n", n, got[n], want[n])
		}
	}
	return b.String()
}
