package qemutests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
	"github.com/dockerinit/dockerinit/status"
	"github.com/dockerinit/dockerinit/uki"
)

// TestUpdatePinsAgainstPrune runs `mkbootimg update` and `rollback` as in a booted system whose
// Docker runs: Debian's dockerd on a copy of the fixture's store (btrfs driver). The verbs pin the
// images of the list they write, and `docker image prune -a` and `docker rmi` (no -f) then leave
// them in place; what the list no longer names is unpinned. No QEMU: the boots of the entries the
// verbs write are TestBootCounting's.
func TestUpdatePinsAgainstPrune(t *testing.T) {
	r := requireRig(t)
	testenv.Tools(t, "docker.io", "/usr/sbin/dockerd", "/usr/bin/docker")
	work := t.TempDir()
	disk := filepath.Join(work, "disk.img")
	runOrFatal(t, "cp", "--sparse=always", r.disk, disk)
	mountDisk(t, disk, func(top string) {
		// A subtest, so that dockerd stops (its cleanup) before the disk is unmounted.
		t.Run("update, prune, rollback", func(t *testing.T) { updatePins(t, work, top) })
	})
}

func updatePins(t *testing.T, work, top string) {
	sock := "unix://" + filepath.Join(work, "docker.sock")
	if err := os.WriteFile(filepath.Join(work, "daemon.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Debian's client first: /usr/local/bin may hold an unrelated docker.
	env := append(os.Environ(), "DOCKER_HOST="+sock, "PATH=/usr/bin:/usr/sbin:/bin:/sbin")
	docker := func(args ...string) (string, error) {
		cmd := exec.Command("/usr/bin/docker", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	testenv.Daemon(t, filepath.Join(work, "dockerd.log"), func() error { _, err := docker("version"); return err },
		"/usr/sbin/dockerd", "--config-file", filepath.Join(work, "daemon.json"), "--data-root", filepath.Join(top, "docker"),
		"--storage-driver", "btrfs", "--exec-root", filepath.Join(work, "exec"), "--pidfile", filepath.Join(work, "docker.pid"),
		"-H", sock, "--bridge=none", "--iptables=false", "--ip-masq=false")
	id := func(ref string) string {
		out, err := docker("image", "inspect", "--format", "{{.Id}}", ref)
		if err != nil {
			t.Fatalf("docker image inspect %s: %v: %s", ref, err, out)
		}
		return out
	}
	sample, other := id("sample_image"), id("other_image")

	// What the init leaves in /run of the booted system, here booted into sample_image.
	booted := filepath.Join(work, "booted")
	report := status.Report{Image: "sample_image", ImageID: sample, RWLayer: "docker_rwlayer", Store: "Docker's btrfs storage driver", DockerPath: "docker"}
	data, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(booted, filepath.Dir(status.BootJSON)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(booted, status.BootJSON), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "entries")
	verb := func(args ...string) string {
		t.Helper()
		args = append(args, "--booted", booted, "--bootloader", "grub", "--out", out, "--bootloader-config", filepath.Join(out, "custom.cfg"),
			"--volume", "LABEL=linux", "--store", filepath.Join(top, "docker"), "--modules", "none")
		cmd := exec.Command(filepath.Join(rigTemp, "bin", "mkbootimg"), args...)
		cmd.Env = env
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mkbootimg %s: %v\n%s", strings.Join(args, " "), err, got)
		}
		t.Logf("mkbootimg %s:\n%s", args[0], got)
		return string(got)
	}
	// pins lists the references pinned, sorted.
	pins := func() []string {
		got, err := docker("ps", "-a", "--filter", "label=org.dockerinit.pin", "--format", "{{.Label \"org.dockerinit.pin\"}}")
		if err != nil {
			t.Fatalf("docker ps: %v: %s", err, got)
		}
		refs := strings.Fields(got)
		slices.Sort(refs)
		return refs
	}
	expectPins := func(what string, want ...string) {
		t.Helper()
		slices.Sort(want)
		if got := pins(); !slices.Equal(got, want) {
			t.Errorf("after %s the pins are %q, want %q", what, got, want)
		}
	}
	survives := func(what string, ids ...string) {
		t.Helper()
		for _, i := range ids {
			if _, err := docker("image", "inspect", i); err != nil {
				t.Errorf("after %s the pinned image %s is gone; pins: %q", what, i, pins())
			}
		}
	}

	verb("update", "other_image")
	// The list, and the running image by its ID, which its tag may stop naming.
	expectPins("update", "other_image", "sample_image", sample)
	if out, err := docker("image", "prune", "-a", "-f"); err != nil {
		t.Fatalf("docker image prune -a: %v: %s", err, out)
	}
	survives("docker image prune -a", sample, other)
	if out, err := docker("rmi", other); err == nil || !strings.Contains(out, "container") {
		t.Errorf("docker rmi of the pinned image %s: %v: %s; want a refusal naming the container", other, err, out)
	}
	survives("docker rmi", other)

	// Rolled back from a boot of other_image: both stay listed, so both stay pinned.
	report.Image, report.ImageID, report.Images = "other_image", other, []string{"other_image", "sample_image"}
	if data, err = json.Marshal(report); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(booted, status.BootJSON), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := verb("rollback"); !strings.Contains(got, "rollback: sample_image boots next again; then other_image") {
		t.Errorf("rollback said:\n%s", got)
	}
	// sample_image's pin by ID is no longer wanted: the list names it, and it does not run.
	expectPins("rollback", "sample_image", "other_image", other)
	if out, err := docker("image", "prune", "-a", "-f"); err != nil {
		t.Fatalf("docker image prune -a: %v: %s", err, out)
	}
	survives("a second prune -a", sample, other)

	// Under Secure Boot: update --uki writes signed UKIs, the counted list sealed in the new
	// default's, the running image's its own.
	keys, esp := filepath.Join(work, "keys"), filepath.Join(work, "esp")
	mkbootimg := filepath.Join(rigTemp, "bin", "mkbootimg")
	runOrFatal(t, mkbootimg, "keys", "--out", keys)
	if err := os.Mkdir(esp, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"update", "--booted", booted, "--uki", "--keys", keys, "--bootloader", "systemd-boot", "--esp", esp,
		"--store", filepath.Join(top, "docker"), "--modules", "none", "--no-pin", "sample_image"}
	if got, err := exec.Command(mkbootimg, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkbootimg %s: %v\n%s", strings.Join(args, " "), err, got)
	}
	for name, want := range map[string]string{
		"dockerinit-sample_image-latest.efi": " docker_image=sample_image,other_image dockerinit.tries=3",
		"dockerinit-other_image-latest.efi":  " docker_image=other_image",
	} {
		p := filepath.Join(esp, "EFI", "Linux", name)
		if err := uki.Verify(p, filepath.Join(keys, "db.crt")); err != nil {
			t.Error(err)
			continue
		}
		secs, err := uki.Sections(p)
		if err != nil {
			t.Fatal(err)
		}
		if line := string(secs[".cmdline"]); !strings.HasSuffix(line, want) {
			t.Errorf("%s seals %q, want it to end in %q", name, line, want)
		}
	}
}
