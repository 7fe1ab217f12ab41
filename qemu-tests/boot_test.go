package qemutests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/status"
)

// baseCmdline is the original tutorial's kernel command line, on a serial console.
// no_timer_check: under TCG on a loaded host the kernel may panic with "IO-APIC + timer doesn't work!".
const baseCmdline = "console=ttyS0 root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker panic=-1 no_timer_check"

const (
	testinit = "init=/usr/local/sbin/testinit"
	// TCG on two shared cores: a testinit boot takes well under a minute when the machine is idle.
	testinitTimeout = 180 * time.Second
	systemdTimeout  = 300 * time.Second
	poweroffTimeout = 120 * time.Second
)

// TestBoots boots the fixture disk several times, in order: every boot writes its rw layer
// to the same disk, and the last check is that none of them touched the Docker store.
func TestBoots(t *testing.T) {
	r := requireRig(t)

	t.Run("sample_image", func(t *testing.T) {
		f := bootTestinit(t, r, "sample_image", "")
		checkImageBooted(t, f, "sample_image")
		checkTopLayer(t, f)
		t.Run("rw layer is fresh", func(t *testing.T) {
			expectFact(t, f, "previous", "absent")
			expectFact(t, f, "written", "ok")
		})
	})

	t.Run("file from the previous boot is gone", func(t *testing.T) {
		f := bootTestinit(t, r, "sample_image-again", "")
		expectFact(t, f, "image", "sample_image")
		expectFact(t, f, "previous", "absent")
	})

	t.Run("docker_image=other_image", func(t *testing.T) {
		f := bootTestinit(t, r, "other_image", "docker_image=other_image")
		checkImageBooted(t, f, "other_image")
	})

	t.Run("systemd reaches multi-user", func(t *testing.T) {
		// e2scrub_reap runs lvs, which waits up to 10 s a block device for udev's records and,
		// on a busy machine under TCG, holds multi-user.target past the test's minute: it is the
		// image's business, not the initramfs's.
		v := startVM(t, "systemd", r, baseCmdline+" systemd.mask=e2scrub_reap.service")
		login, err := v.waitFor(regexp.MustCompile(`login: *`+lineEnd), systemdTimeout)
		if err != nil {
			t.Fatalf("systemd boot to a login prompt: %v", err)
		}
		v.timings(t, regexp.MustCompile(`Reached target .*Multi-User System`))
		t.Run("multi-user target", func(t *testing.T) {
			// getty may print the prompt before systemd reports the target: wait a little for it.
			if !seen(v, "Reached target .*Multi-User System") {
				if _, err := v.waitFor(regexp.MustCompile(`Reached target .*Multi-User System`), 60*time.Second); err != nil {
					t.Errorf(`no "Reached target Multi-User System" on the console: %v`, err)
				}
			}
		})
		t.Run("hostname from the top layer", func(t *testing.T) {
			if !strings.Contains(login.text, "dockerinit-top login:") {
				t.Errorf("login prompt %q, want the top layer's hostname dockerinit-top", login.text)
			}
		})
		t.Run("root logs in and powers off", func(t *testing.T) {
			if err := v.send("root\r"); err != nil {
				t.Fatal(err)
			}
			if _, err := v.waitFor(regexp.MustCompile(`root@dockerinit-top:.*# *`+lineEnd), 60*time.Second); err != nil {
				t.Fatalf("root login with the empty password: %v", err)
			}
			t.Run("dockerinit status", func(t *testing.T) {
				status, out := typeCommand(t, v, rootPrompt, "dockerinit status")
				if status != "0" {
					t.Fatalf("dockerinit status: exit status %s; it printed:\n%s", status, strings.Join(out, "\n"))
				}
				expectOutput(t, "dockerinit status", out,
					`^Booted by dockerinit into sample_image$`,
					`^  image ID +sha256:[0-9a-f]{64}$`,
					`^  rw layer +docker_rwlayer \(a fresh snapshot`,
					`^  root device +/dev/vda \(root=LABEL=linux\)$`,
					`^  top layer +boot_docker: \d+ entries applied$`,
					`^  init +/sbin/init$`,
					`^Boot steps \(dockerinit started [0-9.]+ s after the kernel, took [0-9.]+ ms\):$`,
					`^  make rw layer +[0-9.]+ ms$`)
			})
			t.Run("systemd-analyze counts the initramfs", func(t *testing.T) {
				checkSystemdAnalyze(t, v)
			})
			if err := v.send("systemctl poweroff\r"); err != nil {
				t.Fatal(err)
			}
			if err := v.waitExit(poweroffTimeout); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("Docker store unchanged", func(t *testing.T) { checkStoreUnchanged(t, r) })
}

// rootPrompt is bash's prompt for root in the booted image.
var rootPrompt = regexp.MustCompile(`^root@dockerinit-top:[^#]*# `)

// initrdTime is systemd-analyze's summary when systemd knows the initrd's start.
var initrdTime = regexp.MustCompile(`^Startup finished in .*\(kernel\) \+ ([0-9.]+m?s) \(initrd\) \+ .*\(userspace\)`)

// checkSystemdAnalyze checks that systemd-analyze reports the initramfs ("(initrd)"), which it
// does only when dockerinit handed systemd its start time, and that it is about as long as
// dockerinit's own steps took (boot.json), plus the switch.
func checkSystemdAnalyze(t *testing.T, v *vm) {
	t.Helper()
	var out []string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(3 * time.Second) {
		var status string
		status, out = typeCommand(t, v, rootPrompt, "SYSTEMD_COLORS=0 systemd-analyze time | cat")
		if status == "0" || time.Now().After(deadline) {
			break // "Bootup is not yet finished" fails until the last start-up job ends
		}
	}
	var initrd string
	for _, l := range out {
		if m := initrdTime.FindStringSubmatch(l); m != nil {
			initrd = m[1]
		}
	}
	if initrd == "" {
		t.Fatalf("systemd-analyze reports no initrd time; it printed:\n%s", strings.Join(out, "\n"))
	}
	got, err := time.ParseDuration(initrd)
	if err != nil {
		t.Fatalf("initrd time %q: %v", initrd, err)
	}
	_, jsonOut := typeCommand(t, v, rootPrompt, "grep total_ms /run/dockerinit/boot.json")
	var totalMS float64
	for _, l := range jsonOut {
		if _, err := fmt.Sscanf(strings.TrimSpace(l), `"total_ms": %g,`, &totalMS); err == nil {
			break
		}
	}
	steps := time.Duration(totalMS * float64(time.Millisecond))
	if steps <= 0 {
		t.Fatalf("no total_ms in boot.json; grep printed:\n%s", strings.Join(jsonOut, "\n"))
	}
	// The initrd time runs from /init's start to systemd's, so it holds the steps; the switch
	// and the program's start add little (seconds at most under TCG).
	if got < steps || got > steps+5*time.Second {
		t.Errorf("systemd-analyze says the initrd took %v; dockerinit's steps took %v", got, steps)
	}
	t.Logf("systemd-analyze: initrd %v; dockerinit steps %v", got, steps)
}

// checkStoreUnchanged compares the Docker store on the disk with its listing made when dockerd
// stopped: no boot, failed or not, may change it.
func checkStoreUnchanged(t *testing.T, r *rig) { checkStoreOf(t, r, r.fixture) }

// checkStoreOf compares the store on dir/disk.img, the fixture's or a copy, with the fixture's
// store as dockerd left it.
func checkStoreOf(t *testing.T, r *rig, dir string) {
	t.Helper()
	before, err := os.ReadFile(filepath.Join(r.fixture, "store.list"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.listStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := listingDiff(string(before), after); diff != "" {
		t.Errorf("the boots modified the Docker store (- when dockerd stopped, + now):\n%s", diff)
	}
}

// bootTestinit boots with testinit as the image's init and returns its facts.
func bootTestinit(t *testing.T, r *rig, name, extra string) map[string][]string {
	t.Helper()
	cmdline := baseCmdline + " " + testinit
	if extra != "" {
		cmdline += " " + extra
	}
	return runTestinit(t, startVM(t, name, r, cmdline))
}

// checkTopLayer checks that every kind of entry of the fixture's top layer (fixture.sh's
// make_toplayer) made it into the booted root.
func checkTopLayer(t *testing.T, f map[string][]string) {
	t.Helper()
	t.Run("top layer applied", func(t *testing.T) {
		for _, tc := range []struct{ name, key, want string }{
			{"hostname", "hostname", "dockerinit-top"},
			{"dotfile", "dotfile", "dotfile from the top layer"},
			{"setuid file owned by 1234:1234", "setuid", "1234:1234 4755"},
			{"xattr", "xattr", "top"},
			{"symlink", "symlink", "link-a"},
			{"empty directory", "emptydir", "directory 0"},
			{"mtime", "mtime", "981173106"}, // 2001-02-03 04:05:06 UTC
			{"whiteout deletes /etc/motd", "motd", "absent"},
		} {
			t.Run(tc.name, func(t *testing.T) { expectFact(t, f, tc.key, tc.want) })
		}
		t.Run("hardlink pair", func(t *testing.T) {
			v := one(t, f, "hardlink")
			fields := strings.Fields(v)
			if len(fields) != 4 || fields[0] != fields[2] || fields[1] != "2" || fields[3] != "2" {
				t.Errorf("stat -c '%%i %%h' link-a link-b = %q, want one inode number twice, each with 2 links", v)
			}
		})
	})
}

// checkImageBooted checks that testinit of image ran on the rw layer and boot.json names the image.
func checkImageBooted(t *testing.T, f map[string][]string, image string) {
	t.Helper()
	checkBootedFrom(t, f, image, image, "btrfs snapshot")
}

// checkBootedFrom checks that testinit of the image content ran on the rw layer made as rootKind
// says (a "btrfs snapshot" mounted with subvol=, or an "overlayfs" whose upper folder is in the rw
// layer) and that boot.json names image, the reference booted (content's, or a multi-platform
// image holding it), and how its root was made.
func checkBootedFrom(t *testing.T, f map[string][]string, image, content, rootKind string) {
	t.Helper()
	t.Run("init ran on the rw layer", func(t *testing.T) {
		expectFact(t, f, "image", content)
		if rootKind == "overlayfs" {
			checkRootMount(t, f, "overlay", "upperdir=/mnt/top/docker_rwlayer/upper")
		} else {
			checkRootMount(t, f, "btrfs", "subvol=/docker_rwlayer")
		}
	})
	t.Run("boot.json", func(t *testing.T) {
		doc := strings.Join(f["bootjson"], "\n")
		if doc == "missing" || doc == "" {
			t.Fatal("/run/dockerinit/boot.json does not exist in the booted system")
		}
		if !json.Valid([]byte(doc)) {
			t.Fatalf("/run/dockerinit/boot.json is not valid JSON:\n%s", doc)
		}
		var r status.Report
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatalf("/run/dockerinit/boot.json is not a status.Report: %v\n%s", err, doc)
		}
		if r.Image != image || !strings.HasPrefix(r.ImageID, "sha256:") || r.RWLayer != "docker_rwlayer" {
			t.Errorf("boot.json says image %q (%s), rw layer %q; want %s on docker_rwlayer", r.Image, r.ImageID, r.RWLayer, image)
		}
		if r.RootKind != rootKind || r.Store == "" {
			t.Errorf("boot.json says the root is a %q from %q, want a %s from the store", r.RootKind, r.Store, rootKind)
		}
		if r.TotalMS <= 0 || len(r.Steps) < 8 {
			t.Errorf("boot.json: total %v ms over %d steps; want the time of every step", r.TotalMS, len(r.Steps))
		}
	})
}

// checkRootMount checks that testinit saw / mounted once, as fstype, read-write, with option.
func checkRootMount(t *testing.T, f map[string][]string, fstype, option string) {
	t.Helper()
	mounts := f["rootmount"]
	if len(mounts) != 1 {
		t.Fatalf("lines for / in /proc/mounts: %q, want exactly one", mounts)
	}
	fields := strings.Fields(mounts[0])
	if len(fields) < 4 || fields[2] != fstype {
		t.Fatalf("root mount %q, want %s", mounts[0], fstype)
	}
	opts := strings.Split(fields[3], ",")
	if !slices.Contains(opts, "rw") || !slices.Contains(opts, option) {
		t.Errorf("root mount options %q, want rw and %s", fields[3], option)
	}
}

// one returns the single value testinit printed for key.
func one(t *testing.T, f map[string][]string, key string) string {
	t.Helper()
	v := f[key]
	if len(v) != 1 {
		t.Fatalf("testinit printed %d values for %s (%q), want one", len(v), key, v)
	}
	return v[0]
}

func expectFact(t *testing.T, f map[string][]string, key, want string) {
	t.Helper()
	if got := one(t, f, key); got != want {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

func seen(v *vm, pattern string) bool { return len(matching(v, pattern)) > 0 }

// matching returns the console lines that match pattern.
func matching(v *vm, pattern string) []string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, l := range v.transcript() {
		if re.MatchString(l.text) {
			out = append(out, l.text)
		}
	}
	return out
}

// listingDiff shows the lines only in before (-) or only in after (+), at most 40 of them.
func listingDiff(before, after string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			m[l] = true
		}
		return m
	}
	b, a := in(before), in(after)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(before), "\n") {
		if !a[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(after), "\n") {
		if !b[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], "...")
	}
	return strings.Join(out, "\n")
}

func TestListingDiff(t *testing.T) {
	for _, tc := range []struct{ name, before, after, want string }{
		{"same", "a d\nb f\n", "a d\nb f\n", ""},
		{"changed mtime", "a d 1\nb f 2\n", "a d 1\nb f 3\n", "- b f 2\n+ b f 3"},
		{"added file", "a d\n", "a d\nc f\n", "+ c f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listingDiff(tc.before, tc.after); got != tc.want {
				t.Errorf("listingDiff = %q, want %q", got, tc.want)
			}
		})
	}
}
