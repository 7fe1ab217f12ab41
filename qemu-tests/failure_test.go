package qemutests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/imagestore"
	"github.com/dockerinit/dockerinit/initramfs"
)

// failureTimeout bounds a boot that is expected to stop at the rescue prompt.
const failureTimeout = 150 * time.Second

var (
	failBanner   = regexp.MustCompile(`\*\*\* dockerinit: boot failed \*\*\*`)
	rescuePrompt = regexp.MustCompile(`Press Enter to retry the boot`)
)

// TestFailuresExplainThemselves boots into each failure the user can meet and asserts the console
// says what was looked for, what was found and what to change; then that a normal boot still
// works and the Docker store is untouched.
func TestFailuresExplainThemselves(t *testing.T) {
	r := requireRig(t)
	for _, tc := range []struct {
		name  string
		extra string      // appended to the tutorial's command line (the last value wins)
		rig   func() *rig // another disk or initramfs; nil: the fixture's
		want  []string    // each must appear between the banner and the prompt
	}{
		{name: "root device absent", extra: "root=LABEL=nosuch dockerinit.timeout=3s",
			want: []string{`LABEL=nosuch`, `/dev/vda`, `LABEL="?linux`}},
		{name: "docker_path missing", extra: "docker_path=nosuch",
			want: []string{`docker_path=nosuch`, `boot_docker, docker`}},
		{name: "image not found", extra: "docker_image=nosuch:1.0",
			want: []string{`"nosuch:1.0" not found`, `sample_image:latest`, `other_image:latest`}},
		{name: "no subvol in rootflags", extra: "rootflags=compress=zstd",
			want: []string{`rootflags=subvol`, `docker_rwlayer`}},
		{name: "rw layer inside the Docker root", extra: "rootflags=subvol=docker/btrfs/subvolumes/x",
			want: []string{`docker/btrfs/subvolumes/x`, `Docker root`}},
		{name: "init missing", extra: "init=/sbin/nosuch",
			want: []string{`the image has no /sbin/nosuch`, `init=`}},
		{name: "malformed dockerinit.toml", rig: func() *rig {
			return withExtraInitramfs(t, r, "etc/dockerinit.toml", "imagee = \"x\"\n[root]\ndevice = 1\n")
		},
			want: []string{`dockerinit.toml`, `mkbootimg`}},
		{name: "required top layer missing", extra: "toplayer_path=nosuch", rig: func() *rig {
			return withExtraInitramfs(t, r, "etc/dockerinit.toml", "image = \"sample_image\"\n[toplayer]\nrequired = true\n")
		},
			want: []string{`toplayer_path=nosuch: no such directory on LABEL=linux, whose top level holds: .*boot_docker`, `the top layer is required`, `--toplayer-required=false`}},
		{name: "root holds no store", rig: func() *rig { return withDisk(t, r, ext4Disk(t)) },
			want: []string{`docker_path=docker: no directory /docker on /dev/vda; its top holds: lost\+found`}},
		{name: "kernel differs from the initramfs's modules", rig: func() *rig { return withForeignModules(t, r) },
			want: []string{`modules for kernel 0\.0\.0-other`, `6\.1\.`, `rebuild the initramfs with mkbootimg`}},
		{name: "image layer subvolume missing", extra: "docker_image=other_image", rig: func() *rig { return withDisk(t, r, damagedStore(t, r, "other_image")) },
			want: []string{`other_image`, `missing`, `docker image inspect`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := r
			if tc.rig != nil {
				br = tc.rig()
			}
			v := startVM(t, "fail-"+strings.ReplaceAll(tc.name, " ", "-"), br, baseCmdline+" "+testinit+" "+tc.extra)
			defer v.stop()
			explanation := waitForFailure(t, v)
			for _, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(explanation) {
					t.Errorf("the failure message lacks %q; it says:\n%s", w, explanation)
				}
			}
			if !strings.Contains(explanation, "Nothing under the image store was changed") {
				t.Errorf("the failure message does not say the Docker root is untouched:\n%s", explanation)
			}
		})
	}

	t.Run("Enter retries the boot", func(t *testing.T) {
		v := startVM(t, "fail-retry", r, baseCmdline+" "+testinit+" docker_image=nosuch")
		defer v.stop()
		waitForFailure(t, v)
		if err := v.send("\r"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.waitFor(regexp.MustCompile(`dockerinit: retrying the boot from step "resolve image"`), failureTimeout); err != nil {
			t.Fatalf("Enter at the prompt did not resume the boot at the failed step: %v", err)
		}
		if _, err := v.waitFor(failBanner, failureTimeout); err != nil {
			t.Fatalf("the retried boot did not fail again with its banner: %v", err)
		}
	})

	t.Run("missing top layer warns and boots on", func(t *testing.T) {
		v := startVM(t, "warn-toplayer", r, baseCmdline+" "+testinit+" toplayer_path=nosuch")
		defer v.stop()
		if _, err := v.waitFor(regexp.MustCompile(`warning: toplayer_path=nosuch`), failureTimeout); err != nil {
			t.Fatalf("no warning about the missing top layer: %v\n%s", err, v.tail(40))
		}
		if _, err := v.waitFor(regexp.MustCompile(`DITEST start `), failureTimeout); err != nil {
			t.Fatalf("the boot did not go on without the top layer: %v", err)
		}
	})

	t.Run("a normal boot after the failures", func(t *testing.T) {
		f := bootTestinit(t, r, "after-failures", "")
		checkImageBooted(t, f, "sample_image")
	})

	t.Run("Docker store unchanged", func(t *testing.T) { checkStoreUnchanged(t, r) })
}

// waitForFailure waits for the failure banner and the retry prompt and returns what is between.
func waitForFailure(t *testing.T, v *vm) string {
	t.Helper()
	banner, err := v.waitFor(failBanner, failureTimeout)
	if err != nil {
		t.Fatalf("no failure banner: %v\n%s", err, v.tail(60))
	}
	if _, err := v.waitFor(rescuePrompt, failureTimeout); err != nil {
		t.Fatalf("no rescue prompt after the banner: %v\n%s", err, v.tail(60))
	}
	var b strings.Builder
	for _, l := range v.transcript() {
		if l.at >= banner.at {
			b.WriteString(l.text + "\n")
		}
	}
	return b.String()
}

// withDisk is r booting another disk.
func withDisk(t *testing.T, r *rig, disk string) *rig {
	c := *r
	c.disk = disk
	return &c
}

// withExtraInitramfs is r whose initramfs has one more archive appended, holding path: the kernel
// unpacks concatenated archives in order, so the later file wins.
func withExtraInitramfs(t *testing.T, r *rig, path, content string) *rig {
	t.Helper()
	base, err := os.ReadFile(filepath.Join(r.boot, "initramfs.img"))
	if err != nil {
		t.Fatal(err)
	}
	var extra bytes.Buffer
	if err := initramfs.Write(&extra, []initramfs.Entry{initramfs.File(path, 0o644, []byte(content))}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "initramfs.img"), append(base, extra.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(r.boot, "vmlinuz"), filepath.Join(dir, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	c := *r
	c.boot = dir
	return &c
}

func runOrFatal(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// ext4Disk is a small, empty ext4 file system labelled like the fixture's btrfs.
func ext4Disk(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "ext4.img")
	runOrFatal(t, "truncate", "-s", "64M", img)
	runOrFatal(t, "mkfs.ext4", "-q", "-L", "linux", img)
	return img
}

// damagedStore is a copy of the fixture disk whose image has lost its top layer subvolume, as a
// store damaged behind Docker's back would be.
func damagedStore(t *testing.T, r *rig, image string) string {
	t.Helper()
	return alteredDisk(t, r, func(top string) {
		runOrFatal(t, "btrfs", "subvolume", "delete", filepath.Join(top, "docker", imageLayer(t, top, image)))
	})
}

// alteredDisk is a copy of the fixture disk that change altered; change gets the btrfs top level
// mounted. The copy stays mountable by the test after the boots (see mountDisk).
func alteredDisk(t *testing.T, r *rig, change func(top string)) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "altered.img")
	runOrFatal(t, "cp", "--sparse=always", r.disk, img)
	mountDisk(t, img, change)
	return img
}

// mountDisk mounts the btrfs disk image img for look, then unmounts it.
func mountDisk(t *testing.T, img string, look func(top string)) {
	t.Helper()
	mnt := t.TempDir()
	runOrFatal(t, "mount", "-o", "loop", img, mnt)
	defer runOrFatal(t, "umount", mnt)
	look(mnt)
}

// imageLayer is the path of image's top layer below the Docker root at top/docker.
func imageLayer(t *testing.T, top, image string) string {
	t.Helper()
	store, err := imagestore.Open(filepath.Join(top, "docker"), ".", imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := store.Resolve(image)
	if err != nil {
		t.Fatal(err)
	}
	return im.Layer
}

// withForeignModules is r booting its kernel with an initramfs built for a kernel named
// 0.0.0-other: the image's modules, seen under another version, as when a kernel is upgraded
// without rebuilding the initramfs.
func withForeignModules(t *testing.T, r *rig) *rig {
	t.Helper()
	dir := t.TempDir()
	mnt, fake, out := filepath.Join(dir, "mnt"), filepath.Join(dir, "root"), filepath.Join(dir, "boot")
	const other = "0.0.0-other"
	for _, d := range []string{mnt, filepath.Join(fake, "boot"), filepath.Join(fake, "lib/modules", other)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runOrFatal(t, "mount", "-o", "loop,ro,rescue=nologreplay", r.disk, mnt)
	defer runOrFatal(t, "umount", mnt)
	store, err := imagestore.Open(filepath.Join(mnt, "docker"), ".", imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := store.Resolve("sample_image")
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join(mnt, "docker", im.Layer, "usr/lib/modules")
	vers, err := os.ReadDir(modules)
	if err != nil || len(vers) != 1 {
		t.Fatalf("the image's kernel modules: %v, %v", vers, err)
	}
	runOrFatal(t, "mount", "--bind", filepath.Join(modules, vers[0].Name()), filepath.Join(fake, "lib/modules", other))
	defer runOrFatal(t, "umount", filepath.Join(fake, "lib/modules", other))
	runOrFatal(t, "cp", filepath.Join(r.boot, "vmlinuz"), filepath.Join(fake, "boot", "vmlinuz-"+other))
	bin := filepath.Join(rigTemp, "bin")
	runOrFatal(t, filepath.Join(bin, "mkbootimg"), "--rootfs", fake, "--out", out, "--init", filepath.Join(bin, "dockerinit"),
		"--image", "sample_image", "--docker-path", "docker", "--toplayer-path", "boot_docker")
	// The kernel that boots is the image's own, not the copy named 0.0.0-other.
	if err := os.Remove(filepath.Join(out, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(r.boot, "vmlinuz"), filepath.Join(out, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	c := *r
	c.boot = out
	return &c
}
