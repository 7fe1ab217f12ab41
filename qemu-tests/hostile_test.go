package qemutests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/btrfs"
)

// TestHostileInput boots the kernel command lines and disks of the security review (issue 12):
// each once took a host's subvolume, an image layer or the whole disk with it. Each must now stop
// with its explanation, or boot, and leave what it refused untouched.
func TestHostileInput(t *testing.T) {
	r := requireRig(t)

	t.Run("subvol names a subvolume dockerinit did not make", func(t *testing.T) {
		// A host's own root subvolume, as Ubuntu's @ named by its rootflags through a hook.
		disk := alteredDisk(t, r, func(top string) {
			runOrFatal(t, "btrfs", "subvolume", "create", filepath.Join(top, "@"))
			if err := os.WriteFile(filepath.Join(top, "@", "host-root"), []byte("keep me\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		})
		v := startVM(t, "hostile-host-subvolume", withDisk(t, r, disk), baseCmdline+" "+testinit+" rootflags=subvol=@")
		explanation := waitForFailure(t, v)
		v.stop()
		for _, w := range []string{`subvol=@: /@ is a btrfs subvolume that dockerinit did not make`, `refusing to delete it`, `choose another subvol=`} {
			if !strings.Contains(explanation, w) {
				t.Errorf("the failure message lacks %q; it says:\n%s", w, explanation)
			}
		}
		mountDisk(t, disk, func(top string) {
			if b, err := os.ReadFile(filepath.Join(top, "@", "host-root")); err != nil || string(b) != "keep me\n" {
				t.Errorf("the host's subvolume @ was changed: %q, %v", b, err)
			}
		})
	})

	t.Run("rw layer inside the Docker root by way of a link", func(t *testing.T) {
		// docker_path=store reaches the Docker root through store -> docker, so the lexical
		// check of docker/... against "store" passes; the boot must compare inodes.
		var layer string
		disk := alteredDisk(t, r, func(top string) {
			layer = imageLayer(t, top, "sample_image")
			if err := os.Symlink("docker", filepath.Join(top, "store")); err != nil {
				t.Fatal(err)
			}
		})
		v := startVM(t, "hostile-link-into-store", withDisk(t, r, disk),
			baseCmdline+" "+testinit+" docker_path=store rootflags=subvol=docker/"+layer)
		explanation := waitForFailure(t, v)
		v.stop()
		if w := `is the image store store on disk`; !strings.Contains(explanation, w) {
			t.Errorf("the failure message lacks %q; it says:\n%s", w, explanation)
		}
		mountDisk(t, disk, func(top string) {
			if ok, err := btrfs.IsSubvolume(filepath.Join(top, "docker", layer)); !ok {
				t.Errorf("the image layer %s was deleted: %v", layer, err)
			}
		})
	})

	t.Run("toplayer_path=/ holds the rw layer and the store", func(t *testing.T) {
		v := startVM(t, "hostile-toplayer-root", r, baseCmdline+" "+testinit+" toplayer_path=/")
		defer v.stop()
		if _, err := v.waitFor(regexp.MustCompile(`top layer /: left out (docker, docker_rwlayer|docker_rwlayer, docker)`), failureTimeout); err != nil {
			t.Fatalf("the boot did not leave the rw layer and the store out of the top layer: %v\n%s", err, v.tail(30))
		}
		f := runTestinit(t, v)
		checkImageBooted(t, f, "sample_image")
	})

	t.Run("two file systems labelled like the root", func(t *testing.T) {
		// A USB stick formatted with the root's label, plugged in at boot.
		stick := filepath.Join(t.TempDir(), "stick.img")
		runOrFatal(t, "truncate", "-s", "128M", stick)
		runOrFatal(t, "mkfs.btrfs", "-q", "-L", "linux", stick)
		v := startWithDisks(t, "hostile-duplicate-label", r, baseCmdline+" "+testinit, []string{
			"-drive", "file=" + r.disk + ",if=virtio,format=raw,cache=unsafe",
			"-drive", "file=" + stick + ",if=virtio,format=raw,snapshot=on",
		})
		explanation := waitForFailure(t, v)
		v.stop()
		for _, w := range []string{`LABEL=linux names 2 devices that are not one file system`, `/dev/vda`, `/dev/vdb`, `relabel one of them`, `UUID=`} {
			if !strings.Contains(explanation, w) {
				t.Errorf("the failure message lacks %q; it says:\n%s", w, explanation)
			}
		}
	})

	t.Run("an init the kernel cannot run keeps the rescue shell locked", func(t *testing.T) {
		// Executable by its mode bits but no program: once, the switch emptied the initramfs
		// before the exec failed, and the shell then opened with no password.
		disk := alteredDisk(t, r, func(top string) {
			p := filepath.Join(top, "boot_docker", "sbin", "notaprogram")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("this is not a program\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		})
		// openssl passwd -6 -salt qemutest 'let me in'
		conf := "[rescue]\npassword_hash = \"$6$qemutest$z.D.gnoD.5RL5TRJMMRDHeTFoxo1.TvWktr.Mkn/rQGzjCBQSm/eVq8cbIWLX/H/fwiCXfhtAq0kr3VIzyfG4/\"\n"
		br := withExtraInitramfs(t, withDisk(t, r, disk), "etc/dockerinit.toml", conf)
		v := startVM(t, "hostile-init-not-a-program", br, baseCmdline+" docker_image=sample_image init=/sbin/notaprogram")
		defer v.stop()
		explanation := waitForFailure(t, v)
		if w := `/sbin/notaprogram in the image is neither an ELF executable nor a #! script`; !strings.Contains(explanation, w) {
			t.Errorf("the failure message lacks %q; it says:\n%s", w, explanation)
		}
		if err := v.send("shell\r"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.waitFor(regexp.MustCompile(`Password for the rescue shell: `), shellTimeout); err != nil {
			t.Fatalf("the rescue shell did not ask for its password: %v\n%s", err, v.tail(20))
		}
		if seen(v, shellGreeting.String()) {
			t.Errorf("the rescue shell opened without its password")
		}
	})

	t.Run("Docker store unchanged", func(t *testing.T) { checkStoreUnchanged(t, r) })
}
