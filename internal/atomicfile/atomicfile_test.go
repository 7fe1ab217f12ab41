package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLeftovers: writing a name removes the temporary files that crashed runs left for it, whether
// the file changes or is kept, and nothing else: not the temporary file of a run still writing
// (it holds its lock), not those of other names, not the user's dot files.
func TestLeftovers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before map[string]string
		live   bool // a run is writing vmlinuz meanwhile
		write  File
		want   []string // the names in the directory after, but a live run's
	}{
		{"the file changes", map[string]string{"vmlinuz": "old", ".vmlinuz.mkbootimg-1": "part", ".vmlinuz.mkbootimg-2": ""}, false,
			File{"vmlinuz", []byte("new"), 0o644}, []string{"vmlinuz"}},
		{"the file is kept", map[string]string{"vmlinuz": "new", ".vmlinuz.mkbootimg-1": "part"}, false,
			File{"vmlinuz", []byte("new"), 0o644}, []string{"vmlinuz"}},
		{"a live run's temporary file stays", map[string]string{"vmlinuz": "old", ".vmlinuz.mkbootimg-1": "part"}, true,
			File{"vmlinuz", []byte("new"), 0o644}, []string{"vmlinuz"}},
		{"other files stay", map[string]string{".initramfs.img.mkbootimg-1": "part", ".vmlinuz.bak": "user's", ".vmlinuz.12345": "older mkbootimg's"}, false,
			File{"vmlinuz", []byte("new"), 0o644}, []string{".initramfs.img.mkbootimg-1", ".vmlinuz.12345", ".vmlinuz.bak", "vmlinuz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.before {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var live *Temp
			if tc.live {
				var err error
				if live, err = Create(filepath.Join(dir, "vmlinuz")); err != nil {
					t.Fatal(err)
				}
				defer live.Discard()
			}
			if err := WriteSet(dir, tc.write); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				if live == nil || e.Name() != filepath.Base(live.Name()) {
					got = append(got, e.Name())
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("left in the directory: %q, want %q", got, tc.want)
			}
			if live != nil {
				if _, err := os.Stat(live.Name()); err != nil {
					t.Errorf("the live run's temporary file was removed: %v", err)
				}
			}
		})
	}
}

// TestTemp: a committed Temp replaces its file, with no temporary file left; a discarded one
// leaves the file as it was.
func TestTemp(t *testing.T) {
	for _, commit := range []bool{true, false} {
		dir := t.TempDir()
		p := filepath.Join(dir, "disk.img")
		if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp, err := Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(filepath.Base(tmp.Name()), ".disk.img"+tempMark) || filepath.Dir(tmp.Name()) != dir {
			t.Errorf("temporary file %s: want .disk.img%s* beside disk.img", tmp.Name(), tempMark)
		}
		if _, err := tmp.WriteString("new"); err != nil {
			t.Fatal(err)
		}
		want := "old"
		if commit {
			if err := tmp.Commit(); err != nil {
				t.Fatal(err)
			}
			want = "new"
		}
		tmp.Discard()
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("commit %v: disk.img holds %q, %v; want %q", commit, b, err, want)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 1 {
			t.Errorf("commit %v: files %q, want disk.img alone", commit, m)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
			t.Errorf("commit %v: temporary files left: %q", commit, m)
		}
	}
}

func TestMkdirAll(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c")
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s: %v, %v", dir, fi, err)
	}
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Errorf("again: %v", err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(file, "x"), 0o755); err == nil {
		t.Error("a directory below a file was made")
	}
	if err := MkdirAll(file, 0o755); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("MkdirAll of a file = %v, want it refused", err)
	}
}

// TestReplaceOrder: the renamed files are synced after the directory, and the files they replace
// are still open meanwhile, then closed before a last sync (replace says why: on FAT, the final
// name takes the new file's clusters only when the renamed file is synced, the old file's
// clusters must not be freed before, and their freeing is written by the last sync). The open
// files are seen in /proc/self/fd, as links to deleted files.
func TestReplaceOrder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"vmlinuz", "initramfs.img"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("old "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	held := func() []string {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
			if name, ok := strings.CutSuffix(target, " (deleted)"); err == nil && ok && filepath.Dir(name) == dir {
				names = append(names, filepath.Base(name))
			}
		}
		slices.Sort(names)
		return names
	}
	var steps []string
	trace = func(step, name string) {
		step += " " + filepath.Base(name)
		if strings.HasPrefix(step, "sync") {
			step += fmt.Sprintf(" (replaced files open: %s)", strings.Join(held(), ", "))
		}
		steps = append(steps, step)
	}
	defer func() { trace = func(string, string) {} }()
	err := WriteSet(dir, File{"vmlinuz", []byte("new vmlinuz"), 0o644}, File{"initramfs.img", []byte("new initramfs.img"), 0o600})
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(dir)
	want := []string{
		"held " + base,
		"rename vmlinuz",
		"rename initramfs.img",
		"sync dir " + base + " (replaced files open: initramfs.img, vmlinuz)",
		"sync vmlinuz (replaced files open: initramfs.img, vmlinuz)",
		"sync initramfs.img (replaced files open: initramfs.img, vmlinuz)",
		"sync dir " + base + " (replaced files open: )",
	}
	if !slices.Equal(steps, want) {
		t.Errorf("steps:\n  %s\nwant\n  %s", strings.Join(steps, "\n  "), strings.Join(want, "\n  "))
	}
	if got := held(); len(got) > 0 {
		t.Errorf("replaced files still open after WriteSet returned: %q", got)
	}
	for _, name := range []string{"vmlinuz", "initramfs.img"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != "new "+name {
			t.Errorf("%s = %q, %v", name, b, err)
		}
	}
}

func TestRenameRemove(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"a+1-2.conf": "entry", "b.conf": "other", "c.conf": "gone"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Rename(filepath.Join(dir, "a+1-2.conf"), filepath.Join(dir, "b.conf")); err == nil {
		t.Error("Rename replaced an existing file")
	}
	if err := Rename(filepath.Join(dir, "a+1-2.conf"), filepath.Join(t.TempDir(), "a.conf")); err == nil {
		t.Error("Rename moved a file to another directory")
	}
	if err := Rename(filepath.Join(dir, "a+1-2.conf"), filepath.Join(dir, "a+3.conf")); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, "c.conf", "never-there.conf"); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range des {
		b, _ := os.ReadFile(filepath.Join(dir, de.Name()))
		got = append(got, de.Name()+"="+string(b))
	}
	if want := []string{"a+3.conf=entry", "b.conf=other"}; !slices.Equal(got, want) {
		t.Errorf("the directory holds %q, want %q", got, want)
	}
}

// TestRemoveOnSignal: a run killed by SIGINT, SIGTERM or SIGHUP while it writes a file leaves no
// temporary file, and still dies of the signal; the file it replaces keeps its old bytes.
func TestRemoveOnSignal(t *testing.T) {
	if dir := os.Getenv("ATOMICFILE_SIGNAL_DIR"); dir != "" {
		RemoveOnSignal()
		tmp, err := Create(filepath.Join(dir, "disk.img"))
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		tmp.WriteString("half")
		fmt.Println("writing")
		time.Sleep(time.Minute)
		os.Exit(3)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "disk.img"), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestRemoveOnSignal$")
		cmd.Env = append(os.Environ(), "ATOMICFILE_SIGNAL_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "writing\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the writer said %q, want writing", line)
		}
		cmd.Process.Signal(sig)
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != sig {
			t.Errorf("%v: the writer ended with %v, want killed by the signal", sig, err)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
			t.Errorf("%v: temporary files left: %q", sig, m)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "disk.img")); string(b) != "old" {
			t.Errorf("%v: disk.img holds %q, want its old bytes", sig, b)
		}
	}
}
