package uki

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// needStub skips (fails in CI) without objcopy and systemd's stub.
func needStub(t *testing.T) {
	t.Helper()
	testenv.Tools(t, "binutils", "objcopy")
	_, err := os.Stat(DefaultStub)
	testenv.Need(t, err == nil, "systemd's EFI stub "+DefaultStub+" (apt-get install systemd-boot-efi)")
}

// parts writes a fake kernel and initramfs: the stub is real, the rest only has to be bytes.
func parts(t *testing.T, dir string) Parts {
	t.Helper()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.img")
	if err := os.WriteFile(kernel, append([]byte("MZ"), bytes.Repeat([]byte{0xaa}, 70000)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initrd, bytes.Repeat([]byte("070701"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	return Parts{Kernel: kernel, Initrd: initrd, Cmdline: "root=LABEL=linux rootflags=subvol=docker_rwlayer rw",
		OSRelease: []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n")}
}

func TestAssembleReproducible(t *testing.T) {
	needStub(t)
	dir := t.TempDir()
	p := parts(t, dir)
	a, b := filepath.Join(dir, "a.efi"), filepath.Join(dir, "b.efi")
	if err := Assemble(p, a); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // objcopy stamps the output with the second it runs
	if err := Assemble(p, b); err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("two builds of the same parts differ")
	}
	secs, err := Sections(a)
	if err != nil {
		t.Fatal(err)
	}
	kernel, _ := os.ReadFile(p.Kernel)
	initrd, _ := os.ReadFile(p.Initrd)
	for name, want := range map[string][]byte{".cmdline": []byte(p.Cmdline), ".osrel": p.OSRelease, ".linux": kernel, ".initrd": initrd} {
		if !bytes.Equal(secs[name], want) {
			t.Errorf("section %s: %d bytes, want the %d given", name, len(secs[name]), len(want))
		}
	}
}

func TestAssembleRefuses(t *testing.T) {
	needStub(t)
	dir := t.TempDir()
	good := parts(t, dir)
	notPE := filepath.Join(dir, "not-pe")
	os.WriteFile(notPE, []byte("hello"), 0o644)
	uki := filepath.Join(dir, "uki.efi")
	if err := Assemble(good, uki); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Parts)
		want string
	}{
		{"kernel not EFI", func(p *Parts) { p.Kernel = notPE }, "no MZ header"},
		{"no kernel", func(p *Parts) { p.Kernel = filepath.Join(dir, "absent") }, "read the kernel"},
		{"no os-release", func(p *Parts) { p.OSRelease = nil }, "no os-release"},
		{"newline in cmdline", func(p *Parts) { p.Cmdline = "a\nb" }, "newline"},
		{"stub not PE", func(p *Parts) { p.Stub = notPE }, "apt-get install systemd-boot-efi"},
		{"stub is a UKI", func(p *Parts) { p.Stub = uki }, "not a UKI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			tc.edit(&p)
			err := Assemble(p, filepath.Join(dir, "out.efi"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	secs := layout(0x19134, []section{{data: make([]byte, 10)}, {data: make([]byte, 0x1000)}, {data: make([]byte, 0x1001)}, {data: nil}})
	want := []uint64{0x20000, 0x21000, 0x22000, 0x24000}
	for i, s := range secs {
		if s.vma != want[i] {
			t.Errorf("section %d at %#x, want %#x", i, s.vma, want[i])
		}
	}
}

func TestKeysSignVerify(t *testing.T) {
	needStub(t)
	testenv.Tools(t, "openssl", "openssl")
	testenv.Tools(t, "efitools", "cert-to-efi-sig-list", "sign-efi-sig-list")
	testenv.Tools(t, "sbsigntool", "sbsign", "sbverify")
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	made, err := MakeKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"GUID", "PK.key", "PK.crt", "PK.esl", "PK.auth", "KEK.auth", "db.key", "db.crt", "db.auth"} {
		if made[f] != "made" {
			t.Errorf("%s: %q, want made", f, made[f])
		}
	}
	before, _ := os.ReadFile(filepath.Join(keys, "db.key"))
	// Again: the keys are kept, a removed list is made again from them.
	os.Remove(filepath.Join(keys, "db.auth"))
	made, err = MakeKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(keys, "db.key"))
	if made["db.key"] != "kept" || made["db.auth"] != "made" || !bytes.Equal(before, after) {
		t.Errorf("second run: %v; db.key changed: %v", made, !bytes.Equal(before, after))
	}

	k, err := OpenKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	uki := filepath.Join(dir, "uki.efi")
	if err := Assemble(parts(t, dir), uki); err != nil {
		t.Fatal(err)
	}
	if err := Verify(uki, k.Path("db", "crt")); err == nil {
		t.Error("an unsigned UKI verifies")
	}
	if err := Sign(k, uki, uki); err != nil {
		t.Fatal(err)
	}
	if err := Verify(uki, k.Path("db", "crt")); err != nil {
		t.Error(err)
	}
	other := filepath.Join(dir, "other")
	if _, err := MakeKeys(other); err != nil {
		t.Fatal(err)
	}
	if err := Verify(uki, filepath.Join(other, "db.crt")); err == nil {
		t.Error("the UKI verifies against another db certificate")
	}

	t.Run("wrong or missing keys", func(t *testing.T) {
		mixed := filepath.Join(dir, "mixed")
		os.MkdirAll(mixed, 0o700)
		for _, f := range []string{"PK.auth", "KEK.auth", "db.auth", "db.crt"} {
			b, _ := os.ReadFile(filepath.Join(keys, f))
			os.WriteFile(filepath.Join(mixed, f), b, 0o600)
		}
		if _, err := OpenKeys(mixed); err == nil || !strings.Contains(err.Error(), "lacks db.key: run mkbootimg keys") {
			t.Errorf("without db.key: %v", err)
		}
		b, _ := os.ReadFile(filepath.Join(other, "db.key"))
		os.WriteFile(filepath.Join(mixed, "db.key"), b, 0o600)
		if _, err := OpenKeys(mixed); err == nil || !strings.Contains(err.Error(), "is not the key of") {
			t.Errorf("with another db.key: %v", err)
		}
		if _, err := OpenKeys(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "mkbootimg keys --out") {
			t.Errorf("no folder: %v", err)
		}
		half := filepath.Join(dir, "half")
		os.MkdirAll(half, 0o700)
		os.WriteFile(filepath.Join(half, "KEK.crt"), []byte("x"), 0o600)
		if _, err := MakeKeys(half); err == nil || !strings.Contains(err.Error(), "only one of KEK.key and KEK.crt") {
			t.Errorf("a certificate without its key: %v", err)
		}
	})
}

func TestValidGUID(t *testing.T) {
	for s, want := range map[string]bool{
		"8be4df61-93ca-11d2-aa0d-00e098032b8c": true,
		"8BE4DF61-93CA-11D2-AA0D-00E098032B8C": true,
		"8be4df61-93ca-11d2-aa0d-00e098032b8":  false,
		"8be4df6193ca11d2aa0d00e098032b8c":     false,
		"zbe4df61-93ca-11d2-aa0d-00e098032b8c": false,
		"":                                     false,
	} {
		if validGUID(s) != want {
			t.Errorf("validGUID(%q) = %v", s, !want)
		}
	}
}

func FuzzValidGUID(f *testing.F) {
	f.Add("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	f.Fuzz(func(t *testing.T, s string) {
		if validGUID(s) && len(s) != 36 {
			t.Errorf("%q passes but is not 36 characters", s)
		}
	})
}

func TestClearTimestamp(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "no MZ header"},
		{"not MZ", make([]byte, 0x100), "no MZ header"},
		{"pointer past the end", append([]byte("MZ"), append(make([]byte, 0x3a), 0xff, 0xff, 0, 0)...), "no PE header"},
		{"no PE signature", append([]byte("MZ"), append(make([]byte, 0x3a), 0x40, 0, 0, 0, 'X')...), "no PE header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := clearTimestamp(append(tc.b, make([]byte, 0)...)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("clearTimestamp = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzClearTimestamp feeds objcopy's output, which comes from the stub a user may give.
func FuzzClearTimestamp(f *testing.F) {
	if stub, err := os.ReadFile(DefaultStub); err == nil {
		f.Add(stub[:min(len(stub), 512)])
	}
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := len(b)
		_ = clearTimestamp(b)
		if len(b) != n {
			t.Fatal("the length changed")
		}
	})
}

func TestWithPrettyName(t *testing.T) {
	for _, tc := range []struct{ name, osrel, title, want string }{
		{"replaced", "NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n", "dockerinit desktop:latest",
			"NAME=Debian\nID=debian\nPRETTY_NAME=\"dockerinit desktop:latest\"\n"},
		{"added, last line unended", "ID=alpine", "dockerinit a", "ID=alpine\nPRETTY_NAME=\"dockerinit a\"\n"},
		{"quoted", "ID=x\n", "a \"b\" $c `d` \\e\nf", "ID=x\nPRETTY_NAME=\"a \\\"b\\\" \\$c \\`d\\` \\\\e f\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(withPrettyName([]byte(tc.osrel), tc.title)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
