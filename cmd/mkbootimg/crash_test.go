package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

// crashRuns is how many runs of each command are killed, each at another point.
const crashRuns = 32

// crashInput is one version of a command's inputs. Two versions ("old" and "new") differ in the
// kernel, in the embedded dockerinit.toml and in the command line of the entries, so that every
// file a command manages has different bytes in each and a kill can land mid-replacement.
type crashInput struct {
	name    string
	rootfs  string // its kernel
	timeout string // --boot-timeout, embedded in the initramfs
	append  string // --append, on the entries' command line
}

// killPoint is when a run is killed: after a delay from its start, or from the first file it
// creates in the target.
type killPoint struct {
	after     time.Duration
	fromWrite bool
}

// crashCase is one command writing into a target tree (root).
type crashCase struct {
	name string
	// before lays out what is in the target before mkbootimg first runs: the user's own files.
	before map[string]string
	args   func(root string) []string
	menu   bool     // the command writes menu entries (and takes --append)
	disk   string   // a disk image the command writes, compared by what boots from it
	tools  []string // besides go, with the Debian package that has them
	pkg    string
	// renamed maps a file of before to the file it becomes: a killed run may leave it holding
	// that file's new bytes (a systemd-boot entry is rewritten in place, then renamed).
	renamed map[string]string
	// oneOf is a glob of files of which exactly one must be there at every moment: an entry
	// that is renamed is never missing nor there twice.
	oneOf string
}

// TestKilledRunsLeaveWholeFiles proves that an interrupted mkbootimg (the plain build, install for
// rEFInd, GRUB and systemd-boot, and disk) never leaves a half-written file where a boot manager
// reads, and that the next run repairs everything. It runs the real binary against a target
// tree and SIGKILLs it crashRuns times, alternating between two versions of the inputs: half the
// kills at i/crashRuns of a full run's duration, half at i/crashRuns of its writes (from the first
// temporary file). After each kill every file must be absent (only before it was first written),
// or be whole as an uninterrupted run of one version or the other leaves it; the boot manager's
// files must parse; anything else must be a dot file, which no boot manager reads. A last run to
// completion must then leave exactly the tree of an uninterrupted run: no temporary file remains.
//
// SIGKILL is a crash of the process, not a power cut: the page cache survives it, so this test
// shows the order of the writes and renames is safe, not that the data reaches the disk. The
// fsyncs before and after each rename are what covers a power cut, which this test cannot show.
func TestKilledRunsLeaveWholeFiles(t *testing.T) {
	testenv.Tools(t, "golang", "go")
	work := t.TempDir()
	bin := filepath.Join(work, "mkbootimg")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A kernel of a few MiB makes the writes last long enough (tens of ms) for kills to land in them.
	initBin := filepath.Join(work, "dockerinit")
	writeRandom(t, initBin, 0, 512<<10)
	efi := filepath.Join(work, "boot.efi")
	if err := os.WriteFile(efi, append([]byte("MZ"), make([]byte, 4096)...), 0o644); err != nil {
		t.Fatal(err)
	}
	var inputs [2]crashInput
	for i, v := range []struct{ name, timeout, append string }{{"old", "30s", "quiet"}, {"new", "45s", "console=ttyS0"}} {
		rootfs := filepath.Join(work, v.name)
		writeRandom(t, filepath.Join(rootfs, "boot", "vmlinuz-6.1.0-1-amd64"), uint64(i+1), 4<<20)
		inputs[i] = crashInput{v.name, rootfs, v.timeout, v.append}
	}
	btrfs := filepath.Join(work, "btrfs.img")

	for _, tc := range []crashCase{
		{name: "build", args: func(root string) []string {
			return []string{"--out", filepath.Join(root, "out")}
		}},
		{name: "install refind", menu: true,
			before: map[string]string{"esp/EFI/refind/refind.conf": "timeout 20\nmenuentry \"Arch\" {\n  loader /vmlinuz-linux\n}\n"},
			args: func(root string) []string {
				return []string{"install", "--bootloader", "refind", "--esp", filepath.Join(root, "esp"),
					"--out", filepath.Join(root, "linux", "dockerinit", "desktop"), "--volume", "LABEL=linux", "--also", "desktop:old"}
			}},
		{name: "install grub", menu: true,
			before: map[string]string{"boot/grub/custom.cfg": "menuentry 'Memtest' {\n\tlinux16 /memtest86+.bin\n}\n"},
			args: func(root string) []string {
				return []string{"install", "--bootloader", "grub", "--bootloader-config", filepath.Join(root, "boot", "grub", "custom.cfg"),
					"--out", filepath.Join(root, "boot", "dockerinit", "desktop"), "--volume", "LABEL=linux", "--also", "desktop:old"}
			}},
		{name: "install systemd-boot", menu: true,
			before: map[string]string{"esp/loader/loader.conf": "timeout 3\n", "esp/loader/entries/debian.conf": "title Debian\nlinux /vmlinuz\n"},
			args: func(root string) []string {
				return []string{"install", "--bootloader", "systemd-boot", "--esp", filepath.Join(root, "esp"), "--also", "desktop:old"}
			}},
		{name: "install systemd-boot counted", menu: true,
			// An entry that used its tries: its file is replaced in place, then renamed.
			before:  map[string]string{"esp/loader/loader.conf": "timeout 3\n", "esp/loader/entries/dockerinit-desktop-latest+0-2.conf": "title old\nlinux /v\n"},
			renamed: map[string]string{"esp/loader/entries/dockerinit-desktop-latest+0-2.conf": "esp/loader/entries/dockerinit-desktop-latest+2.conf"},
			oneOf:   "esp/loader/entries/dockerinit-desktop-latest[+.]*conf",
			args: func(root string) []string {
				return []string{"install", "--bootloader", "systemd-boot", "--esp", filepath.Join(root, "esp"), "--also", "desktop:old",
					"--tries", "2", "--systemd-boot-counting"}
			}},
		{name: "disk", disk: "disk.img", menu: true, tools: []string{"mkfs.btrfs"}, pkg: "btrfs-progs",
			args: func(root string) []string {
				return []string{"disk", "--force", "--out", filepath.Join(root, "disk.img"), "--bootloader", "systemd-boot",
					"--efi-binary", efi, "--btrfs-image", btrfs, "--esp-size", "40M", "--also", "desktop:old"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.tools) > 0 {
				testenv.Tools(t, tc.pkg, tc.tools...)
			}
			if tc.disk != "" {
				makeBtrfs(t, btrfs)
			}
			root := filepath.Join(t.TempDir(), "target")
			// The paths in the entries are the target's, so the references are made in it too.
			reset := func() {
				if err := os.RemoveAll(root); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(root, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, data := range tc.before {
					p := filepath.Join(root, filepath.FromSlash(name))
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			// A killed run's scratch files outside the target (mkbootimg disk builds in $TMPDIR)
			// stay out of the host's /tmp.
			env := append(os.Environ(), "TMPDIR="+t.TempDir())
			// run runs mkbootimg on in, and kills it at k unless k is zero. An uninterrupted run
			// also returns how long it took, and how long it wrote: from the first file it
			// created under root to its end.
			run := func(in crashInput, k killPoint) (killed bool, took, writing time.Duration) {
				args := append(tc.args(root), "--rootfs", in.rootfs, "--init", initBin, "--modules", "none",
					"--image", "desktop", "--root", "LABEL=linux", "--docker-path", "docker", "--boot-timeout", in.timeout)
				if tc.menu {
					args = append(args, "--append", in.append)
				}
				firstWrite, stopWatching := watchCreates(t, root)
				defer stopWatching()
				var out bytes.Buffer
				cmd := exec.Command(bin, args...)
				cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
				start := time.Now()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan struct{})
				if k != (killPoint{}) {
					go func() {
						from := start
						if k.fromWrite {
							select {
							case from = <-firstWrite:
							case <-exited:
								return
							}
						}
						select {
						case <-time.After(time.Until(from.Add(k.after))):
							cmd.Process.Signal(syscall.SIGKILL)
						case <-exited:
						}
					}()
				}
				err := cmd.Wait()
				end := time.Now()
				close(exited)
				var ee *exec.ExitError
				if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
					return true, 0, 0
				}
				if err != nil {
					t.Fatalf("mkbootimg %s (%s): %v\n%s", strings.Join(args, " "), in.name, err, out.String())
				}
				if k == (killPoint{}) {
					select {
					case t0 := <-firstWrite:
						writing = end.Sub(t0)
					case <-time.After(time.Second): // it created nothing
					}
				}
				return false, end.Sub(start), writing
			}

			reset()
			initial := snapshot(t, root, tc.disk)
			var refs [2]map[string]string
			for i, in := range inputs {
				reset()
				run(in, killPoint{})
				refs[i] = snapshot(t, root, tc.disk)
				checkParses(t, root, in.name+" reference")
			}
			// Two more runs, each replacing the other version's files as the killed runs will:
			// they must give the same trees, and they time a run and its writes.
			var full, writing time.Duration
			for i, in := range inputs {
				_, took, wrote := run(in, killPoint{})
				full, writing = full+took/2, writing+wrote/2
				if tree := snapshot(t, root, tc.disk); !maps.Equal(tree, refs[i]) {
					t.Fatalf("%s over %s differs from %s alone:\n%s", in.name, inputs[1-i].name, in.name, treeDiff(tree, refs[i]))
				}
			}

			reset()
			prev := initial
			left := map[string]bool{} // files that have changed since before the first run
			var outcomes [4]int
			for i := range crashRuns {
				in := inputs[i%2]
				// Half the kills are spread over a whole run, the other half over its writes, from
				// its first temporary file: under load, when the writes start varies too much for
				// the first half alone to land enough kills in them.
				k := killPoint{after: full * time.Duration(i+1) / crashRuns}
				if i/2%2 == 1 {
					k = killPoint{after: writing * time.Duration(i+1) / crashRuns, fromWrite: true}
				}
				killed, _, _ := run(in, k)
				when := fmt.Sprintf("run %d (%s, killed %v)", i, in.name, killed)
				now := snapshot(t, root, tc.disk)
				var extra []string
				for _, name := range names(initial, refs[0], refs[1], now) {
					v := now[name] // "" when absent
					switch {
					case v == refs[0][name] || v == refs[1][name]:
					case v == initial[name] && !left[name]:
					case tc.renamed[name] != "" && (v == refs[0][tc.renamed[name]] || v == refs[1][tc.renamed[name]]):
					case refs[0][name] == "" && refs[1][name] == "" && initial[name] == "":
						extra = append(extra, name)
					default:
						t.Errorf("%s: %s is neither absent before its first write, nor the old, nor the new version:\n%q\nwant\n%q\nor\n%q",
							when, name, v, refs[0][name], refs[1][name])
					}
					if v != initial[name] {
						left[name] = true
					}
				}
				if tc.oneOf != "" {
					var of []string
					for name := range now {
						if ok, _ := path.Match(tc.oneOf, name); ok {
							of = append(of, name)
						}
					}
					if len(of) != 1 {
						t.Errorf("%s: %d files match %s, want one: %q", when, len(of), tc.oneOf, of)
					}
				}
				for _, name := range extra {
					if !strings.HasPrefix(path.Base(name), ".") {
						t.Errorf("%s: %s is in no uninterrupted run's output, and not a dot file, which boot managers skip", when, name)
					}
				}
				checkParses(t, root, when)
				// How far the run got, for the log: 0 finished, else the furthest change it made.
				outcome := 0
				if killed {
					outcome = 1
					for _, name := range names(prev, now) {
						switch {
						case now[name] == prev[name]:
						case strings.HasPrefix(path.Base(name), "."):
							outcome = max(outcome, 2)
						default:
							outcome = 3
						}
					}
				}
				outcomes[outcome]++
				prev = now
			}
			t.Logf("a full run takes %v, its writes %v; of %d runs, %d finished, %d were killed before they changed a file, %d having changed only temporary files, %d after a rename",
				full, writing, crashRuns, outcomes[0], outcomes[1], outcomes[2], outcomes[3])

			last := crashRuns % 2
			run(inputs[last], killPoint{})
			if got := snapshot(t, root, tc.disk); !maps.Equal(got, refs[last]) {
				t.Errorf("after a run to completion, the target differs from an uninterrupted run's:\n%s", treeDiff(got, refs[last]))
			}
		})
	}
}

// watchCreates watches the directories now under root, and sends the time the first file or
// directory is created in one of them. mkbootimg creates only temporary files there: the final
// names arrive by rename. stop ends the watch.
func watchCreates(t *testing.T, root string) (first <-chan time.Time, stop func()) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_, err = unix.InotifyAddWatch(fd, p, unix.IN_CREATE)
		}
		return err
	})
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	ch := make(chan time.Time, 1)
	go func() {
		if _, err := f.Read(make([]byte, 4096)); err == nil {
			ch <- time.Now()
		}
	}()
	return ch, func() { f.Close() }
}

// writeRandom writes size pseudo-random bytes (incompressible, as a kernel is) to p.
func writeRandom(t *testing.T, p string, seed uint64, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(data)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeBtrfs makes a small btrfs image (mixed block groups allow 16 MiB) for partition 2.
func makeBtrfs(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", "-f", "-M", "-L", "linux", p).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v: %s", err, out)
	}
}

// snapshot is what a boot manager would find under root: each regular file's mode and digest, and
// for the disk image (a path relative to root) what its partitions hold.
func snapshot(t *testing.T, root, disk string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			tree[rel] = fi.Mode().String()
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			tree[rel] = fmt.Sprintf("a dot file of %d bytes", fi.Size()) // a temporary file: not read
			return nil
		}
		if rel == disk {
			v, err := diskView(p)
			if err != nil {
				v = "NOT A WHOLE DISK: " + err.Error()
			}
			tree[rel] = v
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tree[rel] = fmt.Sprintf("%v %d bytes sha256 %x", fi.Mode().Perm(), len(data), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// diskView describes a disk image by what boots from it: the partitions, every file on the ESP
// (each entry parsed) and partition 2's bytes. The partition GUIDs, the FAT serial and times
// differ on every run and are left out.
func diskView(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return "", err
	}
	defer d.Close()
	table, ok := d.Table.(*gpt.Table)
	if !ok || len(table.Partitions) != 2 {
		return "", fmt.Errorf("partition table %T, want GPT with two partitions", d.Table)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "disk %d bytes\n", fi.Size())
	for _, part := range table.Partitions {
		fmt.Fprintf(&b, "partition %d: sectors %d-%d type %s name %q\n", part.Index, part.Start, part.End, part.Type, part.Name)
	}
	esp, err := d.GetFilesystem(1)
	if err != nil {
		return "", fmt.Errorf("the ESP: %w", err)
	}
	err = fs.WalkDir(esp, ".", func(name string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		data, err := fs.ReadFile(esp, name)
		if err != nil {
			return err
		}
		if dir, file := path.Split(name); dir == "loader/entries/" {
			if _, err := bootloader.ParseBLS(strings.TrimSuffix(file, ".conf"), string(data)); err != nil {
				return err
			}
		}
		fmt.Fprintf(&b, "ESP %s: %d bytes sha256 %x\n", name, len(data), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("the ESP: %w", err)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	part2 := table.Partitions[1]
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, int64(part2.Start)*512, int64(part2.End-part2.Start+1)*512)); err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "partition 2 sha256 %x\n", h.Sum(nil))
	return b.String(), nil
}

// checkParses parses every boot manager file under root with the parser of its kind, and checks
// that each dockerinit entry in it names a kernel, an initramfs and its image.
func checkParses(t *testing.T, root, when string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", when, err)
			return nil
		}
		var entries []bootloader.Entry
		switch {
		case d.Name() == "refind.conf":
			entries, err = bootloader.ParseRefind(string(data))
		case d.Name() == "custom.cfg":
			entries, err = bootloader.ParseGRUB(string(data))
		case filepath.Base(filepath.Dir(p)) == "entries" && strings.HasSuffix(d.Name(), ".conf"):
			var e bootloader.Entry
			e, err = bootloader.ParseBLS(strings.TrimSuffix(d.Name(), ".conf"), string(data))
			entries = []bootloader.Entry{e}
		default:
			return nil
		}
		if err != nil {
			t.Errorf("%s: %s does not parse: %v\n%s", when, p, err, data)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Title, "dockerinit ") &&
				(!strings.HasSuffix(e.Kernel, "/vmlinuz") || !strings.HasSuffix(e.Initrd, "/initramfs.img") || !strings.Contains(e.Cmdline, "docker_image=desktop")) {
				t.Errorf("%s: entry %q in %s lacks its kernel, initramfs or image: %+v", when, e.Title, p, e)
			}
		}
		return nil
	})
}

// names are the file names of the trees, sorted.
func names(trees ...map[string]string) []string {
	var all []string
	for _, tree := range trees {
		all = slices.AppendSeq(all, maps.Keys(tree))
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func treeDiff(got, want map[string]string) string {
	var b strings.Builder
	for _, n := range names(got, want) {
		if got[n] != want[n] {
			fmt.Fprintf(&b, "  %s:\n    got  %q\n    want %q\n", n, got[n], want[n])
		}
	}
	return b.String()
}
