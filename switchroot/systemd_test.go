package switchroot

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestIsSystemd(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr/lib/systemd", "sbin", "bin"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), []byte("x"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin/busybox"), []byte("x"), 0o755))
	// Debian's merged /usr: /lib -> usr/lib, /sbin/init -> /lib/systemd/systemd (absolute).
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init")))
	must(os.Symlink("/bin/busybox", filepath.Join(root, "sbin/openrc-init")))
	for _, tc := range []struct {
		init string
		want bool
	}{
		{"/sbin/init", true},
		{"/lib/systemd/systemd", true},
		{"/usr/lib/systemd/systemd", true},
		{"/sbin/openrc-init", false},
		{"/bin/busybox", false},
		{"/sbin/missing", false},
		{"/usr/lib/systemd", false}, // a directory named systemd's parent, not the binary
	} {
		if got := isSystemd(root, tc.init); got != tc.want {
			t.Errorf("isSystemd(%s) = %v, want %v", tc.init, got, tc.want)
		}
	}
}

func TestSystemdArgs(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"lib/systemd/systemd", "lib/other-init"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ts := Timestamp{Realtime: 1_763_800_000_123_456 * time.Microsecond, Monotonic: 812_345 * time.Microsecond}

	args, fd := systemdArgs(root, "/lib/systemd/systemd", ts)
	if fd < 0 {
		t.Fatal("no descriptor for systemd")
	}
	defer unix.Close(fd)
	want := []string{"--switched-root", "--system", "--deserialize=" + strconv.Itoa(fd)}
	if strings.Join(args, " ") != strings.Join(want, " ") {
		t.Errorf("args %q, want %q", args, want)
	}
	// What systemd will read from the descriptor it inherits: from the start, the whole state.
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC != 0 {
		t.Errorf("descriptor flags %#x (%v): it must survive the exec", flags, err)
	}
	data, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "initrd-timestamp=1763800000123456 812345\n\n"; got != want {
		t.Errorf("serialization %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name, init string
		ts         Timestamp
	}{
		{"another init", "/lib/other-init", ts},
		{"no start time", "/lib/systemd/systemd", Timestamp{}},
	} {
		if args, fd := systemdArgs(root, tc.init, tc.ts); fd >= 0 || args != nil {
			unix.Close(fd)
			t.Errorf("%s: got %q and descriptor %d, want nothing", tc.name, args, fd)
		}
	}
}

func TestNow(t *testing.T) {
	a := Now()
	time.Sleep(time.Millisecond)
	b := Now()
	if a.Monotonic <= 0 || b.Monotonic <= a.Monotonic {
		t.Errorf("monotonic clock %v then %v", a.Monotonic, b.Monotonic)
	}
	if d := time.Duration(time.Now().UnixNano()) - b.Realtime; d < 0 || d > time.Second {
		t.Errorf("realtime %v is %v away from time.Now", b.Realtime, d)
	}
}
