package switchroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckInit(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "lib/systemd"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sbin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "lib/systemd/systemd"), staticELF(t), 0o755))
	must(os.WriteFile(filepath.Join(root, "sbin/notexec"), []byte("x"), 0o644))
	// Absolute link, as Debian ships /sbin/init: must resolve inside root, not on the host.
	must(os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init")))
	must(os.Symlink("/bin/sh", filepath.Join(root, "sbin/hostsh")))
	for _, tc := range []struct {
		init, wantErr string
	}{
		{"/sbin/init", ""},
		{"/lib/systemd/systemd", ""},
		{"/sbin/missing", "the image has no /sbin/missing"},
		{"/sbin/notexec", "not an executable"},
		{"/sbin/hostsh", "the image has no /sbin/hostsh"},
		{"sbin/init", "absolute path"},
		{"/lib/systemd", "not an executable"},
	} {
		err := CheckInit(root, tc.init)
		if tc.wantErr == "" && err != nil {
			t.Errorf("%s: %v", tc.init, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want one containing %q", tc.init, err, tc.wantErr)
		}
	}
}

func TestEmptyStaysOnDevice(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/b/c", "d"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "a/b/c/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "a/link")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := Empty(dir, st.Dev); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	if _, err := os.Stat("/etc/os-release"); err != nil {
		t.Fatal("Empty followed a symlink out of the tree")
	}
	// Another device number: nothing may be removed.
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Empty(dir, st.Dev+1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
		t.Fatal("Empty removed a file of another device")
	}
}

func TestSwitchRefusesOutsidePID1(t *testing.T) {
	err := Switch(t.TempDir(), "/sbin/init", nil, nil, Now())
	if err == nil || !strings.Contains(err.Error(), "not PID 1") {
		t.Fatalf("got %v, want a refusal", err)
	}
}
