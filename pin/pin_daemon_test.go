package pin

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// These tests run the real tools, each on a daemon and store of its own in a temporary folder
// (never the host's), and check that the tools' own clean-up honours the pins: prune -a and rmi
// without -f leave a pinned image and delete an unpinned one, and once unpinned, prune deletes
// it too.

const (
	dockerdBin = "/usr/sbin/dockerd"
	// dockerBin is Debian's client, named in full: another docker may come first on $PATH.
	dockerBin     = "/usr/bin/docker"
	podmanBin     = "/usr/bin/podman"
	containerdBin = "/usr/bin/containerd"
	ctrBin        = "/usr/bin/ctr"
)

// archive writes a docker-archive tarball (what docker save writes, and what docker load, podman
// load and ctr images import read) of a one-layer image holding one file with content, named
// by each of tags.
func archive(t *testing.T, path, content string, tags ...string) {
	t.Helper()
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	must(t, lw.WriteHeader(&tar.Header{Name: "pinned", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}))
	_, err := lw.Write([]byte(content))
	must(t, err)
	must(t, lw.Close())
	diffID := sha256.Sum256(layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID[:])}},
	})
	must(t, err)
	manifest, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": tags, "Layers": []string{"layer.tar"}}})
	must(t, err)
	var out bytes.Buffer
	w := tar.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{"layer.tar", layer.Bytes()}, {"config.json", config}, {"manifest.json", manifest}} {
		must(t, w.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}))
		_, err := w.Write(f.data)
		must(t, err)
	}
	must(t, w.Close())
	must(t, os.WriteFile(path, out.Bytes(), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// cli runs the tool's CLI with its global flags, for what the test does beside package pin.
func cli(t *testing.T, tool Tool, args ...string) (string, error) {
	t.Helper()
	out, err := tool.run(context.Background(), args...)
	return strings.TrimSpace(string(out)), err
}

func mustCLI(t *testing.T, tool Tool, args ...string) string {
	t.Helper()
	out, err := cli(t, tool, args...)
	must(t, err)
	return out
}

// exists tells whether the store still has image id.
func exists(t *testing.T, tool Tool, id string) bool {
	t.Helper()
	if tool.Kind == Containerd {
		out := mustCLI(t, tool, "content", "ls", "-q")
		return strings.Contains(out, id)
	}
	_, err := cli(t, tool, "image", "inspect", id)
	return err == nil
}

// pruneAndRmi is the scenario for Docker and podman: keep:1 and keep:2 name one image, drop:1
// another; keep:1 is pinned. prune -a and rmi (no -f) leave the kept image and delete the other;
// Pin gives back a name they took; unpinned, the image goes at the next prune.
func pruneAndRmi(t *testing.T, tool Tool, prune ...string) {
	ctx := context.Background()
	dir := t.TempDir()
	archive(t, filepath.Join(dir, "keep.tar"), "kept", "keep:1", "keep:2")
	archive(t, filepath.Join(dir, "drop.tar"), "dropped", "drop:1")
	mustCLI(t, tool, "load", "-i", filepath.Join(dir, "keep.tar"))
	mustCLI(t, tool, "load", "-i", filepath.Join(dir, "drop.tar"))
	keep := mustCLI(t, tool, "image", "inspect", "--format", "{{.Id}}", "keep:1")
	drop := mustCLI(t, tool, "image", "inspect", "--format", "{{.Id}}", "drop:1")

	must(t, tool.Pin(ctx, "keep:1"))
	must(t, tool.Pin(ctx, "keep:1")) // idempotent
	pins, err := tool.List(ctx)
	must(t, err)
	if len(pins) != 1 || pins[0].Ref != "keep:1" || !strings.HasSuffix(pins[0].ImageID, strings.TrimPrefix(keep, "sha256:")) {
		t.Fatalf("List() = %+v, want one pin of keep:1 on %s", pins, keep)
	}

	t.Logf("%s: %s", strings.Join(prune, " "), mustCLI(t, tool, prune...))
	if !exists(t, tool, keep) {
		t.Fatalf("%s deleted the pinned image %s", strings.Join(prune, " "), keep)
	}
	if exists(t, tool, drop) {
		t.Errorf("%s left the unpinned image %s", strings.Join(prune, " "), drop)
	}
	// rmi without -f: of a name the image has besides others it only takes the name (and
	// Docker's prune may have taken keep:1 already); of its last name it is refused.
	refused := 0
	for _, name := range []string{"keep:1", "keep:2"} {
		out, err := cli(t, tool, "rmi", name)
		t.Logf("rmi %s: %s (error: %v)", name, out, err)
		if err != nil && strings.Contains(err.Error(), "container") {
			refused++
		}
	}
	if !exists(t, tool, keep) || refused != 1 {
		t.Fatalf("rmi without -f of keep:1 and keep:2: image %s still there: %v, refusals naming a container: %d, want true and 1", keep, exists(t, tool, keep), refused)
	}
	// A name taken off the pinned image comes back at the next Pin.
	must(t, tool.Pin(ctx, "keep:1"))
	if got, _ := cli(t, tool, "image", "inspect", "--format", "{{.Id}}", "keep:1"); got != keep {
		t.Errorf("after Pin, keep:1 names %q, want the pinned image %s", got, keep)
	}

	must(t, tool.Sync(ctx, nil))
	if pins, err := tool.List(ctx); err != nil || len(pins) != 0 {
		t.Fatalf("after Sync(nil), List() = %+v, %v; want no pin", pins, err)
	}
	mustCLI(t, tool, prune...)
	if exists(t, tool, keep) {
		t.Errorf("once unpinned, %s left image %s", strings.Join(prune, " "), keep)
	}
}

func TestDockerdHonoursPins(t *testing.T) {
	testenv.Root(t, "dockerd")
	testenv.Tools(t, "docker.io", dockerdBin, dockerBin)
	dir := t.TempDir()
	sock := "unix://" + filepath.Join(dir, "docker.sock")
	must(t, os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644)) // not the host's
	tool := Tool{Kind: Docker, Command: dockerBin, Args: []string{"-H", sock}}
	testenv.Daemon(t, filepath.Join(dir, "dockerd.log"), func() error { return tool.Check(context.Background()) },
		dockerdBin, "--config-file", filepath.Join(dir, "daemon.json"), "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "docker.pid"), "-H", sock,
		"--bridge=none", "--iptables=false", "--ip-masq=false")
	pruneAndRmi(t, tool, "image", "prune", "-a", "-f")
}

func TestPodmanHonoursPins(t *testing.T) {
	testenv.Root(t, "podman's rootful store")
	testenv.Tools(t, "podman", podmanBin)
	dir := t.TempDir()
	tool := Tool{Kind: Podman, Command: podmanBin, Args: []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "overlay",
		"--cgroup-manager", "cgroupfs", "--events-backend", "none", "--tmpdir", filepath.Join(dir, "tmp"),
	}}
	t.Cleanup(func() {
		// podman may leave its store's overlay folder mounted; unmount it so that the folder goes.
		_ = exec.Command(podmanBin, append(tool.Args, "system", "reset", "-f")...).Run()
	})
	pruneAndRmi(t, tool, "image", "prune", "-a", "-f")
}

// TestContainerdHonoursPins: ctr images rm removes any name, and containerd's garbage collector
// then deletes what no name keeps. The pin's own name keeps the image's content, so the image
// survives its names and Pin names it again; unpinned, it goes.
func TestContainerdHonoursPins(t *testing.T) {
	testenv.Root(t, "containerd")
	testenv.Tools(t, "containerd", containerdBin, ctrBin)
	ctx := context.Background()
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	config := strings.Join([]string{"version = 2", `root = "` + filepath.Join(dir, "root") + `"`,
		`state = "` + filepath.Join(dir, "state") + `"`, `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
		"[grpc]", `  address = "` + sock + `"`, ""}, "\n")
	must(t, os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644))
	tool := Tool{Kind: Containerd, Namespace: "pintest", Command: ctrBin, Args: []string{"--address", sock}}
	testenv.Daemon(t, filepath.Join(dir, "containerd.log"), func() error { return tool.Check(ctx) },
		containerdBin, "--config", filepath.Join(dir, "config.toml"))

	archive(t, filepath.Join(dir, "keep.tar"), "kept", "keep:1")
	archive(t, filepath.Join(dir, "drop.tar"), "dropped", "drop:1")
	mustCLI(t, tool, "images", "import", filepath.Join(dir, "keep.tar"))
	mustCLI(t, tool, "images", "import", filepath.Join(dir, "drop.tar"))
	imgs := parseImageTable([]byte(mustCLI(t, tool, "images", "ls")))
	keep, _ := resolveTable(imgs, "keep:1")
	drop, _ := resolveTable(imgs, "drop:1")
	if keep == "" || drop == "" {
		t.Fatalf("imported images not found: %+v", imgs)
	}

	must(t, tool.Pin(ctx, "keep:1"))
	must(t, tool.Pin(ctx, "keep:1"))
	if pins, err := tool.List(ctx); err != nil || len(pins) != 1 || pins[0].ImageID != keep {
		t.Fatalf("List() = %+v, %v; want one pin on %s", pins, err, keep)
	}
	rm := func() {
		mustCLI(t, tool, "images", "rm", "--sync", "docker.io/library/keep:1", "docker.io/library/drop:1")
	}
	rm()
	if !exists(t, tool, keep) {
		t.Fatalf("ctr images rm and GC deleted the pinned image %s", keep)
	}
	if exists(t, tool, drop) {
		t.Errorf("ctr images rm and GC left the unpinned image %s", drop)
	}
	must(t, tool.Pin(ctx, "keep:1"))
	imgs = parseImageTable([]byte(mustCLI(t, tool, "images", "ls")))
	if id, _ := resolveTable(imgs, "docker.io/library/keep:1"); id != keep {
		t.Errorf("after Pin, keep:1 names %q, want the pinned image %s", id, keep)
	}

	must(t, tool.Unpin(ctx, "keep:1"))
	if pins, err := tool.List(ctx); err != nil || len(pins) != 0 {
		t.Fatalf("after Unpin, List() = %+v, %v; want no pin", pins, err)
	}
	mustCLI(t, tool, "images", "rm", "--sync", "docker.io/library/keep:1")
	if exists(t, tool, keep) {
		t.Errorf("once unpinned, ctr images rm and GC left image %s", keep)
	}
}

// TestCheckNoDaemon: with no daemon to answer, Check says what to start.
func TestCheckNoDaemon(t *testing.T) {
	testenv.Tools(t, "docker.io", dockerBin)
	tool := Tool{Kind: Docker, Command: dockerBin, Args: []string{"-H", "unix://" + filepath.Join(t.TempDir(), "none.sock")}}
	err := tool.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "systemctl start docker") {
		t.Errorf("Check() = %v, want an error saying to start dockerd", err)
	}
	missing := Tool{Kind: Podman, Command: filepath.Join(t.TempDir(), "podman")}
	if err := missing.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "apt-get install podman") {
		t.Errorf("Check() of a missing CLI = %v, want one saying what to install", err)
	}
}
