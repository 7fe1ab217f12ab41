package blockdev

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// requireTools skips (fails in CI) unless every tool is on $PATH.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	testenv.Tools(t, "btrfs-progs e2fsprogs dosfstools xfsprogs fdisk", tools...)
}

// requireRoot skips (fails in CI) unless the test can attach loop devices.
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.Root(t, "to attach loop devices")
	requireTools(t, "losetup", "blkid")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runIn runs a command with stdin.
func runIn(t *testing.T, stdin, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// sparseFile creates a file of the given size (holes, so big images are cheap).
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// blkid returns `blkid -p -o export` of a file or device as a map, undoing
// its backslash escaping ("my\ disk").
func blkid(t *testing.T, path string) map[string]string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "export", path).Output()
	// Exit status 2 means nothing was found, which some cases expect.
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 2) {
		t.Fatalf("blkid -p %s: %v", path, err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(out)) {
		k, v, _ := strings.Cut(strings.TrimRight(line, "\n"), "=")
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			b.WriteByte(v[i])
		}
		m[k] = b.String()
	}
	return m
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string // substring of the error; "" means success
	}{
		{in: "LABEL=linux", want: Spec{"LABEL", "linux"}},
		{in: "label=linux", want: Spec{"LABEL", "linux"}},
		{in: "LABEL=a=b", want: Spec{"LABEL", "a=b"}},
		{in: "UUID=B2FA-BC61", want: Spec{"UUID", "B2FA-BC61"}},
		{in: "PARTUUID=1234abcd-02", want: Spec{"PARTUUID", "1234abcd-02"}},
		{in: "PARTLABEL=EFI System", want: Spec{"PARTLABEL", "EFI System"}},
		{in: "/dev/vda2", want: Spec{"PATH", "/dev/vda2"}},
		{in: "/dev//nvme0n1p2/", want: Spec{"PATH", "/dev/nvme0n1p2"}},
		{in: "/dev/disk/by-label/linux", want: Spec{"LABEL", "linux"}},
		{in: `/dev/disk/by-label/my\x20disk`, want: Spec{"LABEL", "my disk"}},
		{in: "/dev/disk/by-uuid/b2fa-bc61", want: Spec{"UUID", "b2fa-bc61"}},
		{in: "/dev/disk/by-partuuid/1234abcd-02", want: Spec{"PARTUUID", "1234abcd-02"}},
		{in: "/dev/disk/by-partlabel/root", want: Spec{"PARTLABEL", "root"}},
		{in: "", wantErr: "not a device spec; use LABEL=<label>"},
		{in: "linux", wantErr: "not a device spec; use LABEL=<label>"},
		{in: "LABEL=", wantErr: "empty LABEL value"},
		{in: "ID=3", wantErr: `unknown kind "ID"`},
		{in: "/dev/disk/by-id/ata-foo", wantErr: "made by udev, which the initramfs does not run"},
		{in: "/dev/disk/by-label/", wantErr: "made by udev"},
		{in: `/dev/disk/by-label/a\x2`, wantErr: `udev names escape bytes as \xNN`},
		{in: `/dev/disk/by-label/a\xzz`, wantErr: `bad escape "\\xzz"`},
		{in: "/mnt/disk.img", wantErr: "a path must be under /dev"},
		{in: "/dev", wantErr: "a path must be under /dev"},
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSpec(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestSpecString(t *testing.T) {
	for _, in := range []string{"LABEL=linux", "UUID=B2FA-BC61", "PARTUUID=x-01", "PARTLABEL=a b", "/dev/vda"} {
		s, err := ParseSpec(in)
		if err != nil {
			t.Fatal(err)
		}
		if s.String() != in {
			t.Errorf("ParseSpec(%q).String() = %q", in, s.String())
		}
	}
	s, _ := ParseSpec("/dev/disk/by-label/linux")
	if s.String() != "LABEL=linux" {
		t.Errorf("by-label spec prints as %q, want LABEL=linux", s)
	}
}

func TestMatch(t *testing.T) {
	d := Device{Name: "vda2", Path: "/tmp/x/dev/vda2", FSType: "vfat", Label: "ESP", UUID: "B2FA-BC61",
		PartUUID: "6b1071a3-70ce-1246-a82b-ac376a473044", PartLabel: "EFI System"}
	tests := []struct {
		spec Spec
		want bool
	}{
		{Spec{"LABEL", "ESP"}, true},
		{Spec{"LABEL", "esp"}, false},
		{Spec{"UUID", "b2fa-bc61"}, true},
		{Spec{"UUID", "B2FA-BC61"}, true},
		{Spec{"UUID", "B2FA-BC62"}, false},
		{Spec{"PARTUUID", "6B1071A3-70CE-1246-A82B-AC376A473044"}, true},
		{Spec{"PARTLABEL", "EFI System"}, true},
		{Spec{"PARTLABEL", "efi system"}, false},
		{Spec{"PATH", "/dev/vda2"}, true},
		{Spec{"PATH", "/tmp/x/dev/vda2"}, true},
		{Spec{"PATH", "/dev/vda"}, false},
		{Spec{"LABEL", ""}, false},
		{Spec{"NAME", "vda2"}, false},
	}
	for _, tt := range tests {
		if got := tt.spec.Match(d); got != tt.want {
			t.Errorf("%+v.Match(%+v) = %v, want %v", tt.spec, d, got, tt.want)
		}
	}
	if (Spec{"LABEL", ""}).Match(Device{}) {
		t.Error("an empty LABEL= matched a device without a label")
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"LABEL=linux", "/dev/disk/by-label/a\\x20b", "/dev/vda", "UUID=", "x", "/dev/disk/by-uuid/\\x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			return
		}
		if spec.Value == "" {
			t.Fatalf("ParseSpec(%q) accepted an empty value: %+v", s, spec)
		}
		if err := spec.valid(); err != nil {
			t.Fatalf("ParseSpec(%q) = %+v, which Find rejects: %v", s, spec, err)
		}
		// What String prints must parse back to the same spec.
		again, err := ParseSpec(spec.String())
		if err != nil || again != spec {
			t.Fatalf("ParseSpec(%q) = %+v prints as %q, which parses to %+v, %v", s, spec, spec, again, err)
		}
	})
}
