package qemutests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/internal/hostdeps"
	"github.com/dockerinit/dockerinit/internal/testenv"
)

// cleanTreeDebootstrap makes the fresh machine: bookworm's smallest tree (minbase, which has
// fewer packages than any installed system), with make, which the README's commands are typed
// into. Its arguments are the cache key of its tarball.
var cleanTreeDebootstrap = []string{"--variant=minbase", "--include=make", "bookworm"}

// treePath is a root login's $PATH on Debian.
const treePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// treeSession runs its arguments after TREE GOROOT in the tree, as root with a login's
// environment and Go at /usr/local/go, read-only. It mounts what a running Debian machine has
// and a chroot lacks: / as a mount point (dockerd's layer unpacking changes the propagation of
// /, which fails with EINVAL on a plain directory), /proc, /sys with the cgroups (dockerd),
// /dev (the loop devices), /run. It runs in mount and PID namespaces of its own (unshare
// --kill-child): whatever it mounts or starts in the tree is gone when it ends, even when it is
// killed, so the tree can be removed.
const treeSession = `set -euo pipefail
tree=$1 goroot=$2
shift 2
mount --bind "$tree" "$tree"
mount -t proc proc "$tree/proc"
mount --rbind /sys "$tree/sys"
mount --rbind /dev "$tree/dev"
mount -t tmpfs tmpfs "$tree/run"
mkdir -p "$tree/usr/local/go"
mount --bind -o ro "$goroot" "$tree/usr/local/go"
exec chroot "$tree" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/go/bin:` + treePath + ` "$@"
`

// TestTwoCommands proves the README's "The two commands" on a fresh Debian bookworm machine: a
// debootstrap tree with Go and a clean copy of this checkout, nothing else. There
// `DEMO_POWEROFF=1 make demo` must install the packages, build the fixture with the tree's own
// dockerd and boot sample_image, and `make deps`, the set-up that `make test` runs before `go
// test`, must then find nothing to install, leaving no package of the list missing, by
// dpkg-query, nor any command that the rig looks for. The whole suite is not run there again.
//
// Only the host's cached debian-base tarball (fixture.sh's debootstrap of the image) is shared
// with the tree, hard-linked into its cache, which saves the tree's fixture a debootstrap.
func TestTwoCommands(t *testing.T) {
	testenv.Need(t, os.Getenv("DOCKERINIT_QEMU") != "0", "the QEMU boots, which DOCKERINIT_QEMU=0 turns off")
	testenv.Root(t, "debootstrap, chroot, dockerd and loop mounts in the tree")
	testenv.Tools(t, "debootstrap util-linux zstd git", "debootstrap", "unshare", "zstd", "git")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(repo, "out", "console")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("DOCKERINIT_CACHE")
	if cache == "" {
		cache = "/var/cache/dockerinit-tests"
	}
	goroot := strings.TrimSpace(mustOutput(t, exec.Command("go", "env", "GOROOT")))

	start := time.Now()
	tarball := cleanTreeTarball(t, cache)
	tree, err := os.MkdirTemp("", "dockerinit-clean-bookworm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeUnmounted(tree); err != nil {
			t.Error(err)
		}
	})
	mustOutput(t, exec.Command("tar", "--zstd", "--numeric-owner", "-xpf", tarball, "-C", tree))
	prepareTree(t, tree, cache)
	copyCheckout(t, repo, filepath.Join(tree, "root", "dockerinit"))
	t.Logf("tree %s ready in %s", tree, time.Since(start).Round(time.Second))

	inTree := func(name string, timeout time.Duration, args ...string) string {
		t.Helper()
		logPath := filepath.Join(logDir, "two-commands-"+name+".log")
		log, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "--pid", "--kill-child",
			"bash", "-c", treeSession, "tree-session", tree, goroot}, args...)...)
		cmd.Stdout, cmd.Stderr = log, log
		start := time.Now()
		err = cmd.Run()
		out, _ := os.ReadFile(logPath)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w: not done within %s", err, timeout)
			}
			t.Fatalf("in the tree: %s: %v; last lines of %s:\n%s", strings.Join(args, " "), err, logPath, tailLines(string(out), 40))
		}
		t.Logf("in the tree: %s: %s (log: %s)", strings.Join(args, " "), time.Since(start).Round(time.Second), logPath)
		return string(out)
	}

	demo := inTree("demo", 40*time.Minute, "DEMO_POWEROFF=1", "make", "-C", "/root/dockerinit", "demo")
	for _, want := range []string{
		`deps: installing the missing Debian packages: `,
		`== booted image: sample_image, hostname dockerinit-top`,
		`== powering off`,
	} {
		if !strings.Contains(demo, want) {
			t.Errorf("make demo printed no %q: see out/console/two-commands-demo.log", want)
		}
	}

	// make test is deps, then go test: its set-up alone is make deps.
	plan := inTree("test-plan", time.Minute, "make", "-C", "/root/dockerinit", "-n", "test")
	if !regexp.MustCompile(`(?m)^bash qemu-tests/deps\.sh\n(.*\n)*go test `).MatchString(plan) {
		t.Errorf("make -n test does not run qemu-tests/deps.sh before go test:\n%s", plan)
	}
	if deps := inTree("deps", 10*time.Minute, "make", "-C", "/root/dockerinit", "deps"); strings.Contains(deps, "deps: install") {
		t.Errorf("make deps after make demo still installed something: make demo left packages out:\n%s", deps)
	}

	var notInstalled []string
	for _, p := range hostdeps.Packages() {
		out, err := exec.Command("chroot", tree, "dpkg-query", "-W", "-f=${Status}", p.Name).CombinedOutput()
		if err != nil || string(out) != "install ok installed" {
			notInstalled = append(notInstalled, fmt.Sprintf("%s (%s)", p.Name, strings.TrimSpace(string(out))))
		}
	}
	if len(notInstalled) > 0 {
		t.Errorf("after make deps, dpkg-query in the tree does not show installed: %s", strings.Join(notInstalled, ", "))
	}
	lookPath := func(command string) (string, error) {
		out, err := exec.Command("chroot", tree, "/bin/sh", "-c", `PATH=`+treePath+` command -v "$1"`, "sh", command).Output()
		if err != nil {
			return "", fmt.Errorf("%s: not found in the tree: %w", command, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	if missing := hostdeps.Missing(lookPath); missing != nil {
		t.Errorf("after make deps, the rig's check in the tree finds commands of %s missing", strings.Join(missing, " "))
	}
	t.Logf("the two commands on a fresh bookworm tree: %s in all", time.Since(start).Round(time.Second))
}

// cleanTreeTarball returns the cached tarball of the fresh tree, making it first if needed. The
// cache and its lock are fixture.sh's.
func cleanTreeTarball(t *testing.T, cache string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(strings.Join(cleanTreeDebootstrap, " ")))
	tarball := filepath.Join(cache, "clean-bookworm-"+hex.EncodeToString(sum[:8])+".tar.zst")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", cache, err)
	}
	if _, err := os.Stat(tarball); err == nil {
		return tarball
	}
	work, err := os.MkdirTemp(cache, "work.")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := removeUnmounted(work); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	mirror := debianMirror()
	// In a mount namespace of its own: what debootstrap mounts in the tree cannot outlive it.
	args := append([]string{"--mount", "--propagation", "private", "debootstrap"}, cleanTreeDebootstrap...)
	if out, err := exec.Command("unshare", append(args, filepath.Join(work, "root"), mirror)...).CombinedOutput(); err != nil {
		t.Fatalf("debootstrap %s from %s: %v; last lines:\n%s", strings.Join(cleanTreeDebootstrap, " "), mirror, err, tailLines(string(out), 30))
	}
	mustOutput(t, exec.Command("bash", "-c", `set -o pipefail; tar --numeric-owner -C "$1" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . | zstd -q -T0 -o "$2"`,
		"pack", filepath.Join(work, "root"), filepath.Join(work, "root.tar.zst")))
	if err := os.Rename(filepath.Join(work, "root.tar.zst"), tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrap %s from %s, cached as %s: %s", strings.Join(cleanTreeDebootstrap, " "), mirror, tarball, time.Since(start).Round(time.Second))
	return tarball
}

// debianMirror is the mirror apt uses on this machine, found as fixture.sh's mirror() finds it.
func debianMirror() string {
	if m := os.Getenv("DOCKERINIT_MIRROR"); m != "" {
		return m
	}
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	sources, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	uri := regexp.MustCompile(`(?m)(https?://\S+/debian/?)(\s|$)`)
	for _, f := range append(append([]string{"/etc/apt/sources.list"}, files...), sources...) {
		if data, err := os.ReadFile(f); err == nil {
			if m := uri.FindSubmatch(data); m != nil {
				return string(m[1])
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// hostTrust is this machine's bundle of trusted certificates, which may hold the CA of a
// network that intercepts TLS.
const hostTrust = "/etc/ssl/certs/ca-certificates.crt"

// prepareTree gives the tree what the machine around it has and the tests do not provide: its
// network (name servers, and its trusted certificates as local ones, which ca-certificates adds
// to the tree's bundle when make deps installs it: go build downloads modules over HTTPS), and no
// services started by package scripts (docker.io's would run a dockerd in the tree, which on a
// machine systemd runs). It also hard-links the host's debian-base tarballs into the tree's
// cache, where its fixture.sh reuses the one of its key.
func prepareTree(t *testing.T, tree, cache string) {
	t.Helper()
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatalf("the tree needs this machine's name servers: %v", err)
	}
	if err := os.Remove(filepath.Join(tree, "etc", "resolv.conf")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc", "resolv.conf"), resolv, 0o644); err != nil {
		t.Fatal(err)
	}
	if trust, err := os.ReadFile(hostTrust); err == nil {
		local := filepath.Join(tree, "usr", "local", "share", "ca-certificates")
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, "host-trust.crt"), trust, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	policy := "#!/bin/sh\n# No services in this chroot (policy-rc.d(8)).\nexit 101\n"
	if err := os.WriteFile(filepath.Join(tree, "usr", "sbin", "policy-rc.d"), []byte(policy), 0o755); err != nil {
		t.Fatal(err)
	}
	treeCache := filepath.Join(tree, "var", "cache", "dockerinit-tests")
	if err := os.MkdirAll(treeCache, 0o755); err != nil {
		t.Fatal(err)
	}
	bases, _ := filepath.Glob(filepath.Join(cache, "debian-*.tar.zst"))
	for _, b := range bases {
		dst := filepath.Join(treeCache, filepath.Base(b))
		if err := os.Link(b, dst); err != nil {
			mustOutput(t, exec.Command("cp", "--reflink=auto", b, dst))
		}
	}
}

// copyCheckout copies what git has or would add (tracked and untracked files, not what
// .gitignore names: out/, bin/), as they are in the work tree.
func copyCheckout(t *testing.T, repo, dst string) {
	t.Helper()
	list := mustOutput(t, exec.Command("git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"))
	var files bytes.Buffer
	for f := range strings.SplitSeq(strings.TrimSuffix(list, "\x00"), "\x00") {
		if _, err := os.Lstat(filepath.Join(repo, f)); err == nil { // not deleted in the work tree
			files.WriteString(f + "\x00")
		}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", `set -o pipefail; tar -C "$1" --null -T - -c | tar -C "$2" -x`, "copy", repo, dst)
	cmd.Stdin = &files
	mustOutput(t, cmd)
}

// removeUnmounted removes dir, unless something is still mounted below it: a /dev or /proc
// left mounted must stop the removal, not be emptied through it.
func removeUnmounted(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point, with a space as \040: a tree of ours has none.
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			return fmt.Errorf("not removing %s: %s is still mounted; unmount it (umount -R %[2]s) and remove %[1]s by hand", dir, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func mustOutput(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return string(out)
}
