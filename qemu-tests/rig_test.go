package qemutests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dockerinit/dockerinit/internal/hostdeps"
)

// rig is what every boot needs: the disk and the kernel + initramfs mkbootimg made from it.
type rig struct {
	repo     string // module root
	fixture  string // fixture.sh's OUTDIR: disk.img, store.list
	disk     string
	boot     string // vmlinuz, initramfs.img
	logDir   string // console logs of the boots, kept after the run
	setupLog string // what building the binaries, the fixture and the boot files printed
}

var (
	rigOnce    sync.Once
	theRig     *rig
	rigMissing string // a prerequisite that is absent: skip, or fail in CI
	rigErr     error  // setting up failed although everything was there
	rigLogged  bool
	rigTemp    string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if rigTemp != "" {
		os.RemoveAll(rigTemp)
	}
	os.Exit(code)
}

// requireRig returns the rig, making it on first use. A missing prerequisite skips the
// calling test with the reason outside CI, and fails it in CI, where nothing may be skipped.
func requireRig(t *testing.T) *rig {
	t.Helper()
	rigOnce.Do(func() { theRig, rigMissing, rigErr = setupRig() })
	if rigMissing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the QEMU boot tests cannot run in CI: %s", rigMissing)
		}
		t.Skipf("SKIPPING the QEMU boot tests: %s", rigMissing)
	}
	if !rigLogged && theRig != nil {
		rigLogged = true
		t.Logf("setup:\n%s", theRig.setupLog)
	}
	if rigErr != nil {
		t.Fatal(rigErr)
	}
	return theRig
}

// missingPrerequisite says what keeps the boots from running here, or "" when nothing does.
// The packages are internal/hostdeps's list, the one make deps installs.
func missingPrerequisite(repo string, lookPath func(string) (string, error)) string {
	if os.Getenv("DOCKERINIT_QEMU") == "0" {
		return "DOCKERINIT_QEMU=0 is set"
	}
	if os.Geteuid() != 0 {
		return "they need root (loop mounts, dockerd, debootstrap); run them as root"
	}
	if pkgs := hostdeps.Missing(lookPath); len(pkgs) > 0 {
		return fmt.Sprintf("missing Debian packages %s: make deps installs them (or apt-get install %[1]s)", strings.Join(pkgs, " "))
	}
	for _, cmd := range []string{"dockerinit", "mkbootimg"} {
		if m, _ := filepath.Glob(filepath.Join(repo, "cmd", cmd, "*.go")); len(m) == 0 {
			return fmt.Sprintf("cmd/%s has no Go files yet", cmd)
		}
	}
	return ""
}

func setupRig() (r *rig, missing string, err error) {
	repo, err := filepath.Abs("..")
	if err != nil {
		return nil, "", fmt.Errorf("find the module root: %w", err)
	}
	if missing := missingPrerequisite(repo, exec.LookPath); missing != "" {
		return nil, missing, nil
	}
	r = &rig{repo: repo, fixture: os.Getenv("DOCKERINIT_FIXTURE_DIR")}
	if r.fixture == "" {
		r.fixture = filepath.Join(repo, "out", "fixture")
	}
	r.disk = filepath.Join(r.fixture, "disk.img")
	r.logDir = filepath.Join(repo, "out", "console")
	if rigTemp, err = os.MkdirTemp("", "dockerinit-qemu-tests-"); err != nil {
		return r, "", err
	}
	bin := filepath.Join(rigTemp, "bin")
	r.boot = filepath.Join(rigTemp, "boot")

	// Held until the test binary exits: the boots write to the disk, so no other
	// test run or make demo may use it meanwhile. fixture.sh is told it is held.
	if err := os.MkdirAll(r.fixture, 0o755); err != nil {
		return r, "", err
	}
	lock, err := os.OpenFile(filepath.Join(r.fixture, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return r, "", fmt.Errorf("lock the fixture: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return r, "", fmt.Errorf("lock the fixture %s: %w", r.fixture, err)
	}
	env := append(os.Environ(), "DOCKERINIT_FIXTURE_LOCKED=1", "CGO_ENABLED=0")

	var log bytes.Buffer
	defer func() { r.setupLog = log.String() }()
	run := func(what string, name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = repo, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		fmt.Fprintf(&log, "$ %s %s\n%s", name, strings.Join(args, " "), out.String())
		if err != nil {
			return fmt.Errorf("%s: %s %s: %w\n%s", what, name, strings.Join(args, " "), err, out.String())
		}
		return nil
	}
	if err := run("build the binaries", "go", "build", "-trimpath", "-o", bin+"/", "./cmd/dockerinit", "./cmd/mkbootimg"); err != nil {
		return r, "", err
	}
	fixture := filepath.Join(repo, "qemu-tests", "fixture.sh")
	if err := run("make the fixture", "bash", fixture, r.fixture, filepath.Join(bin, "dockerinit")); err != nil {
		return r, "", err
	}
	if err := run("make the boot files", "bash", fixture, "mkboot", r.fixture, "sample_image", r.boot, filepath.Join(bin, "mkbootimg")); err != nil {
		return r, "", err
	}
	for _, f := range []string{"vmlinuz", "initramfs.img"} {
		if _, err := os.Stat(filepath.Join(r.boot, f)); err != nil {
			return r, "", fmt.Errorf("mkbootimg --out %s did not write %s: %w", r.boot, f, err)
		}
	}
	return r, "", nil
}

// storeListing is fixture.sh's listing of the Docker store on the disk as it is now.
func (r *rig) storeListing() (string, error) { return r.listStore(r.fixture) }

// listStore is fixture.sh's listing of the Docker store on dir/disk.img, the fixture's or a copy.
func (r *rig) listStore(dir string) (string, error) {
	cmd := exec.Command("bash", filepath.Join(r.repo, "qemu-tests", "fixture.sh"), "list", dir)
	cmd.Env = append(os.Environ(), "DOCKERINIT_FIXTURE_LOCKED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("list the Docker store: %w: %s", err, stderr.String())
	}
	return string(out), nil
}

func TestMissingPrerequisite(t *testing.T) {
	repo := t.TempDir()
	for _, cmd := range []string{"dockerinit", "mkbootimg"} {
		if err := os.MkdirAll(filepath.Join(repo, "cmd", cmd), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "cmd", "dockerinit", "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	all := func(string) (string, error) { return "/x", nil }
	noDocker := func(c string) (string, error) {
		if strings.Contains(c, "docker") || c == "zstd" {
			return "", exec.ErrNotFound
		}
		return "/x", nil
	}
	t.Setenv("DOCKERINIT_QEMU", "")
	if os.Geteuid() != 0 {
		if got := missingPrerequisite(repo, all); !strings.Contains(got, "root") {
			t.Errorf("as non-root: %q, want it to say root is needed", got)
		}
		return
	}
	for _, tc := range []struct {
		name     string
		lookPath func(string) (string, error)
		want     string
	}{
		{"packages named once each", noDocker, "missing Debian packages docker.io zstd: make deps installs them (or apt-get install docker.io zstd)"},
		{"unwritten command", all, "cmd/mkbootimg has no Go files yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := missingPrerequisite(repo, tc.lookPath); !strings.Contains(got, tc.want) {
				t.Errorf("missingPrerequisite = %q, want it to contain %q", got, tc.want)
			}
		})
	}
	t.Run("opt out", func(t *testing.T) {
		t.Setenv("DOCKERINIT_QEMU", "0")
		if got := missingPrerequisite(repo, all); got != "DOCKERINIT_QEMU=0 is set" {
			t.Errorf("missingPrerequisite = %q, want the opt-out named", got)
		}
	})
}
