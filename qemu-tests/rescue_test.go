package qemutests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// shellTimeout bounds one command at the rescue shell (btrfs-subvolumes walks the Docker store).
const shellTimeout = 90 * time.Second

var shellGreeting = regexp.MustCompile("dockerinit rescue shell. `help` lists the commands")

// commands counts the commands atPrompt typed, to number their end markers.
var commands int

// shellPrompt is the rescue shell's prompt at the start of a console line.
var shellPrompt = regexp.MustCompile(`^rescue:[^#]*# `)

// atPrompt types line at the rescue shell, waits until it has run and returns its exit status and
// the console lines it printed (kernel messages may be among them).
func atPrompt(t *testing.T, v *vm, line string) (string, []string) {
	t.Helper()
	return typeCommand(t, v, shellPrompt, line)
}

// typeCommand types line at a shell whose prompt matches prompt, waits until it has run and
// returns its exit status and the console lines it printed. The shell prints a numbered marker
// after the command: kernel messages may land on the prompt's line, so the prompt is no reliable
// sign that a command ended, and waitFor may match a line still being printed, which an
// unnumbered marker of the previous command would be. The echo of the typed line shows
// @@N:"$?":end and does not match.
func typeCommand(t *testing.T, v *vm, prompt *regexp.Regexp, line string) (string, []string) {
	t.Helper()
	commands++
	before := len(v.transcript())
	// The trailing ":end" keeps a half-printed status ("@@8:1" of "@@8:127") from matching.
	if err := v.send(fmt.Sprintf(`%s; echo @@%d:"$?":end`, line, commands) + "\r"); err != nil {
		t.Fatal(err)
	}
	// Typed ahead, the line is echoed before the shell prints its prompt, so the marker may
	// follow the prompt on its line: it is matched wherever it starts.
	marker := regexp.MustCompile(fmt.Sprintf(`@@%d:(\d+):end`, commands) + lineEnd)
	done, err := v.waitFor(marker, shellTimeout)
	if err != nil {
		t.Fatalf("%q did not finish at the shell: %v", line, err)
	}
	var out []string
	for _, l := range v.transcript()[before:] {
		if l.text == done.text {
			break
		}
		if !strings.Contains(l.text, `:"$?":end`) {
			// Typed ahead of the prompt, a command's first line follows the prompt on its line.
			out = append(out, prompt.ReplaceAllString(l.text, ""))
		}
	}
	return marker.FindStringSubmatch(done.text)[1], out
}

// expectOutput checks that each pattern matches one of the lines.
func expectOutput(t *testing.T, cmd string, out []string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !anyMatch(regexp.MustCompile(p), out) {
			t.Errorf("%s: no line matches %q; it printed:\n%s", cmd, p, strings.Join(out, "\n"))
		}
	}
}

func anyMatch(re *regexp.Regexp, lines []string) bool {
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

// shellAfterFailure boots an image that does not exist and types shell at the failure prompt;
// the VM stops when the test ends.
func shellAfterFailure(t *testing.T, r *rig, name string) *vm {
	t.Helper()
	v := startVM(t, name, r, baseCmdline+" "+testinit+" docker_image=nosuch")
	waitForFailure(t, v)
	if err := v.send("shell\r"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.waitFor(shellGreeting, shellTimeout); err != nil {
		t.Fatalf("typing shell at the prompt did not open the rescue shell: %v", err)
	}
	return v
}

// TestRescueShell opens the rescue shell built into dockerinit at a failed boot and runs the
// commands a user reaches for, then leaves it to retry; and opens it with dockerinit.rescue,
// password first, before anything is mounted, then boots on.
func TestRescueShell(t *testing.T) {
	r := requireRig(t)

	t.Run("after a failed boot", func(t *testing.T) {
		v := shellAfterFailure(t, r, "rescue-after-failure")
		for _, c := range []struct {
			line, status string
			want         []string
		}{
			{"ls /", "0", []string{`^init$`, `^proc$`, `^etc$`}},
			{"blkid", "0", []string{`^/dev/vda: LABEL="linux" UUID="[0-9a-f-]{36}" TYPE="btrfs"$`}},
			{"lsmod", "0", []string{`^Module +Size +Used by$`, `^btrfs +\d+ +\d+`}},
			{"cat /proc/cmdline", "0", []string{`docker_image=nosuch`}},
			{"mkdir -p /mnt/rescue && mount -t btrfs -o subvolid=5 /dev/vda /mnt/rescue && btrfs-subvolumes /mnt/rescue", "0",
				[]string{`^docker/btrfs/subvolumes/[0-9a-f]{64}$`}},
			{"umount /mnt/rescue", "0", nil},
			{"dmesg | cat", "0", []string{`Linux version`, `dockerinit: booting image nosuch`}},
			{"nosuchcommand", "127", []string{"nosuchcommand: no such command; `help` lists the built-in ones"}},
		} {
			status, out := atPrompt(t, v, c.line)
			if status != c.status {
				t.Errorf("%s: exit status %s, want %s; it printed:\n%s", c.line, status, c.status, strings.Join(out, "\n"))
			}
			expectOutput(t, c.line, out, c.want...)
			if c.line == "blkid" && anyMatch(regexp.MustCompile(`I/O error, dev sr0`), out) {
				// QEMU's q35 has a DVD drive without a disc: blkid must ask it, not read it.
				t.Errorf("blkid read the empty DVD drive; it printed:\n%s", strings.Join(out, "\n"))
			}
		}
		if err := v.send("exit\r"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: retrying the boot from step "resolve image"`), failureTimeout); err != nil {
			t.Fatalf("exit did not resume the boot at the failed step: %v", err)
		}
		if _, err := v.waitFor(failBanner, failureTimeout); err != nil {
			t.Fatalf("the retried boot did not fail again with its banner: %v", err)
		}
	})

	// The retry keeps what the steps before the failed one did: a fix made in the rw layer from
	// the shell is still there when the boot resumes, where starting over would have made the rw
	// layer afresh without it.
	t.Run("a fix in the shell, then exit resumes the boot", func(t *testing.T) {
		v := startVM(t, "rescue-fix", r, baseCmdline+" init=/usr/local/sbin/fixed-init")
		defer v.stop()
		explanation := waitForFailure(t, v)
		for _, want := range []string{
			`check init: the image has no /usr/local/sbin/fixed-init`,
			`mounted at /mnt/top for the rescue shell`,
		} {
			if !strings.Contains(explanation, want) {
				t.Errorf("the failure says nothing like %q; it says:\n%s", want, explanation)
			}
		}
		if err := v.send("shell\r"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.waitFor(shellGreeting, shellTimeout); err != nil {
			t.Fatalf("typing shell at the prompt did not open the rescue shell: %v", err)
		}
		// The prompt's line ends only with what was typed at it.
		if want := `Press Enter to retry the boot from step "check init", or type shell`; !seen(v, regexp.QuoteMeta(want)) {
			t.Errorf("no prompt %q on the console", want)
		}
		status, out := atPrompt(t, v, "ln -s testinit /mnt/top/docker_rwlayer/usr/local/sbin/fixed-init && ls /mnt/top/docker_rwlayer/usr/local/sbin")
		if status != "0" {
			t.Fatalf("fixing the init from the shell: exit status %s; it printed:\n%s", status, strings.Join(out, "\n"))
		}
		expectOutput(t, "ls", out, `fixed-init`)
		if err := v.send("exit\r"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: retrying the boot from step "check init"`), failureTimeout); err != nil {
			t.Fatalf("exit did not resume the boot at the failed step: %v", err)
		}
		f := runTestinit(t, v)
		expectFact(t, f, "image", "sample_image")
		expectFact(t, f, "hostname", "dockerinit-top")
	})

	t.Run("modprobe, then poweroff", func(t *testing.T) {
		v := shellAfterFailure(t, r, "rescue-poweroff")
		// vfat is in the initramfs for top layers, and loaded only when one is on FAT.
		if status, out := atPrompt(t, v, "modprobe fs-vfat"); status != "0" {
			t.Errorf("modprobe fs-vfat: exit status %s; it printed:\n%s", status, strings.Join(out, "\n"))
		}
		_, out := atPrompt(t, v, "lsmod")
		expectOutput(t, "lsmod after modprobe fs-vfat", out, `^vfat +\d+ +0`, `^fat +\d+ +1 vfat`)
		if err := v.send("poweroff\r"); err != nil {
			t.Fatal(err)
		}
		if err := v.waitExit(poweroffTimeout); err != nil {
			t.Fatalf("poweroff in the rescue shell: %v", err)
		}
		if !seen(v, `reboot: Power down`) {
			t.Errorf("QEMU exited, but the kernel never said it powered down")
		}
	})

	t.Run("dockerinit.rescue with a password", func(t *testing.T) {
		// openssl passwd -6 -salt qemutest 'let me in'
		conf := "[rescue]\npassword_hash = \"$6$qemutest$z.D.gnoD.5RL5TRJMMRDHeTFoxo1.TvWktr.Mkn/rQGzjCBQSm/eVq8cbIWLX/H/fwiCXfhtAq0kr3VIzyfG4/\"\n"
		br := withExtraInitramfs(t, r, "etc/dockerinit.toml", conf)
		v := startVM(t, "rescue-cmdline", br, baseCmdline+" "+testinit+" docker_image=sample_image dockerinit.rescue")
		defer v.stop()
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit.rescue is on the kernel command line`), failureTimeout); err != nil {
			t.Fatalf("dockerinit.rescue did not stop the boot: %v", err)
		}
		password := regexp.MustCompile(`Password for the rescue shell: `)
		for _, typed := range []string{"guess", "let me in"} {
			if _, err := v.waitFor(password, shellTimeout); err != nil {
				t.Fatalf("no password prompt: %v", err)
			}
			if err := v.send(typed + "\r"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := v.waitFor(shellGreeting, shellTimeout); err != nil {
			t.Fatalf("the right password did not open the shell: %v", err)
		}
		_, out := atPrompt(t, v, "cat /proc/mounts")
		expectOutput(t, "cat /proc/mounts", out, `^proc /proc proc `, `^devtmpfs /dev devtmpfs `)
		if anyMatch(regexp.MustCompile(`btrfs|/dev/vda`), out) {
			t.Errorf("something was mounted before the shell opened:\n%s", strings.Join(out, "\n"))
		}
		if err := v.send("exit\r"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.waitFor(regexp.MustCompile(`DITEST start `), testinitTimeout); err != nil {
			t.Fatalf("exit did not go on with the boot: %v", err)
		}
		console := v.tail(1000)
		if !strings.Contains(console, "Wrong password.") {
			t.Errorf("no \"Wrong password.\" after the wrong one")
		}
		for _, secret := range []string{"guess", "let me in"} {
			if strings.Contains(console, secret) {
				t.Errorf("the password %q was echoed on the console", secret)
			}
		}
	})
}
