package hooks

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// requireShell skips the test without the shell outside CI, and fails it in CI.
func requireShell(t *testing.T, sh string) string {
	t.Helper()
	p, err := exec.LookPath(sh)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is needed to run the hook scripts: %v", sh, err)
		}
		t.Skipf("SKIPPING: %s is not installed: %v", sh, err)
	}
	return p
}

// runStubbed runs script with sh after stubs that record each call in a file, one line a call,
// and returns those lines. The stub of `dockerinit` fails its first prepareFailures calls.
func runStubbed(t *testing.T, sh, stubs, script string, env []string, prepareFailures int) []string {
	t.Helper()
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	harness := `calls=` + calls + `
fails=` + filepath.Join(dir, "fails") + `
log() { printf '%s\n' "$*" >>"$calls"; }
dockerinit() {
	log "dockerinit $*"
	n=$(cat "$fails")
	[ "$n" -eq 0 ] && return 0
	echo $((n - 1)) >"$fails"
	return 1
}
` + stubs + "\n" + script
	if err := os.WriteFile(filepath.Join(dir, "fails"), []byte(strconv.Itoa(prepareFailures)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sh, "-c", harness)
	// The stubs are shell functions: they win over any command of that name in PATH.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, out)
	}
	data, err := os.ReadFile(calls)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

// TestMkinitcpioRuntimeHook runs the runtime hook as mkinitcpio's init does (run_hook, then
// "$mount_handler" /new_root), with the kernel command line's variables set as init sets them.
func TestMkinitcpioRuntimeHook(t *testing.T) {
	sh := requireShell(t, "sh")
	hook, err := filepath.Abs("mkinitcpio/hooks/dockerinit")
	if err != nil {
		t.Fatal(err)
	}
	stubs := `modprobe() { log "modprobe $*"; }
default_mount_handler() { log "default_mount_handler $*"; }
err() { log "err $*"; }
launch_interactive_shell() { log "launch_interactive_shell"; }
mount_handler=default_mount_handler`
	script := `. "` + hook + `"
run_hook
"$mount_handler" /new_root`
	for _, tc := range []struct {
		name     string
		env      []string
		failures int
		want     []string
	}{
		{"tutorial command line", []string{"docker_path=docker", "root=LABEL=linux"}, 0,
			[]string{"modprobe -q btrfs", "modprobe -q overlay", "dockerinit prepare", "default_mount_handler /new_root", "dockerinit mount-root /new_root"}},
		{"docker_image only", []string{"docker_image=desktop"}, 0,
			[]string{"modprobe -q btrfs", "modprobe -q overlay", "dockerinit prepare", "default_mount_handler /new_root", "dockerinit mount-root /new_root"}},
		{"not a dockerinit boot", []string{"root=LABEL=linux"}, 0,
			[]string{"default_mount_handler /new_root"}},
		{"prepare fails: shell, then retry", []string{"docker_path=docker"}, 1,
			[]string{"modprobe -q btrfs", "modprobe -q overlay", "dockerinit prepare", "err dockerinit prepare failed (the reason is above): fix the kernel command line or /etc/dockerinit.toml; exit this shell to try again",
				"launch_interactive_shell", "dockerinit prepare", "default_mount_handler /new_root", "dockerinit mount-root /new_root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runStubbed(t, sh, stubs, script, tc.env, tc.failures)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestMkinitcpioInstallHook runs build and help of the install hook against stubs of the
// documented mkinitcpio install API (add_binary, add_module, add_file, add_runscript).
func TestMkinitcpioInstallHook(t *testing.T) {
	bash := requireShell(t, "bash")
	hook, err := filepath.Abs("mkinitcpio/install/dockerinit")
	if err != nil {
		t.Fatal(err)
	}
	stubs := `add_binary() { log "add_binary $*"; }
add_module() { log "add_module $*"; }
add_file() { log "add_file $*"; }
add_runscript() { log "add_runscript"; }`
	got := runStubbed(t, bash, stubs, `. "`+hook+`"
build
help | grep -q 'docker_path=docker' && log "help names the tutorial's parameters"`, nil, 0)
	want := []string{"add_binary dockerinit /usr/bin/dockerinit", "add_module btrfs", "add_module overlay"}
	for _, f := range []string{"/etc/dockerinit.toml", "/etc/docker-btrfs.json"} {
		if _, err := os.Stat(f); err == nil { // the hook copies the machine's configuration
			want = append(want, "add_file "+f)
		}
	}
	want = append(want, "add_runscript", "help names the tutorial's parameters")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestDracutPreMountHook sources the pre-mount hook as dracut does, with dracut-lib's getarg
// and die stubbed over CMDLINE.
func TestDracutPreMountHook(t *testing.T) {
	sh := requireShell(t, "sh")
	hook, err := filepath.Abs("dracut/90dockerinit/dockerinit-prepare.sh")
	if err != nil {
		t.Fatal(err)
	}
	stubs := `modprobe() { log "modprobe $*"; }` + dracutLib
	for _, tc := range []struct {
		name     string
		cmdline  string
		failures int
		want     []string
	}{
		{"tutorial command line", "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker", 0,
			[]string{"modprobe -q btrfs", "modprobe -q overlay", "dockerinit prepare"}},
		{"docker_image only", "root=LABEL=linux docker_image=desktop", 0,
			[]string{"modprobe -q btrfs", "modprobe -q overlay", "dockerinit prepare"}},
		{"not a dockerinit boot", "root=LABEL=linux rootflags=subvol=@", 0, []string{""}},
		{"prepare fails", "docker_path=docker", 1,
			[]string{"modprobe -q btrfs", "modprobe -q overlay", "dockerinit prepare", "die dockerinit prepare failed (the reason is above): fix the kernel command line or /etc/dockerinit.toml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runStubbed(t, sh, stubs, `. "`+hook+`"`, []string{"CMDLINE=" + tc.cmdline}, tc.failures)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// dracutLib stubs dracut-lib's getarg (over CMDLINE) and die.
const dracutLib = `
die() { log "die $*"; }
getarg() {
	for a in $CMDLINE; do
		case $a in "$1"*) echo "${a#"$1"}"; return 0 ;; esac
	done
	return 1
}`

// TestDracutPrePivotHook sources the pre-pivot hook as dracut does, root= mounted on $NEWROOT.
func TestDracutPrePivotHook(t *testing.T) {
	sh := requireShell(t, "sh")
	hook, err := filepath.Abs("dracut/90dockerinit/dockerinit-mount-root.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		cmdline  string
		failures int
		want     []string
	}{
		{"overlay store", "root=LABEL=linux rw docker_path=var/lib/docker", 0, []string{"dockerinit mount-root /sysroot"}},
		{"not a dockerinit boot", "root=LABEL=linux", 0, []string{""}},
		{"mount-root fails", "docker_image=desktop", 1,
			[]string{"dockerinit mount-root /sysroot", "die dockerinit mount-root failed (the reason is above)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runStubbed(t, sh, dracutLib, `. "`+hook+`"`, []string{"CMDLINE=" + tc.cmdline, "NEWROOT=/sysroot"}, tc.failures)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}
