package switchroot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// file is one entry of a test root: a link when link is set, else a file of data and mode.
type file struct {
	data []byte
	mode os.FileMode
	link string
}

func exe(data []byte) file    { return file{data: data, mode: 0o755} }
func script(s string) file    { return exe([]byte(s)) }
func symlink(to string) file  { return file{link: to} }
func noexec(data []byte) file { return file{data: data, mode: 0o644} }

// makeRoot writes files (by absolute path inside it) into a new temporary directory.
func makeRoot(t *testing.T, files map[string]file) string {
	t.Helper()
	root := t.TempDir()
	for p, f := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if f.link != "" {
			err = os.Symlink(f.link, full)
		} else {
			err = os.WriteFile(full, f.data, f.mode)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// hostELF reads a dynamically linked executable of the host and its program interpreter (the
// loader, read through its links): a real ELF for this machine, and what it needs.
func hostELF(t *testing.T, path string) (prog []byte, interp string, loader []byte) {
	t.Helper()
	prog, err := os.ReadFile(path)
	if err != nil {
		testenv.Need(t, false, path+" on the host ("+err.Error()+")")
	}
	ef, err := elf.NewFile(bytes.NewReader(prog))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				t.Fatal(err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	testenv.Need(t, interp != "", path+" linked dynamically (it has no PT_INTERP)")
	loader, err = os.ReadFile(interp)
	if err != nil {
		t.Fatalf("the loader of %s: %v", path, err)
	}
	return prog, interp, loader
}

// staticELF is a program with no program interpreter, built once for the tests that need one.
func staticELF(t *testing.T) []byte {
	t.Helper()
	testenv.Tools(t, "golang", "go")
	data, err := buildStatic()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var buildStatic = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "static")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "static")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, b)
	}
	return os.ReadFile(out)
})

// foreignELF is the header of an executable for another machine than this one.
func foreignELF(t *testing.T) ([]byte, elf.Machine) {
	t.Helper()
	m := elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		m = elf.EM_X86_64
	}
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, &h); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), m
}

// TestCheckInitRuns checks that CheckInit takes what the kernel would execute and refuses, saying
// what and why, what its exec would fail on after the initramfs is gone.
func TestCheckInitRuns(t *testing.T) {
	prog, interp, loader := hostELF(t, "/bin/true")
	hostLoader, err := filepath.EvalSymlinks(interp)
	if err != nil {
		t.Fatal(err)
	}
	static := staticELF(t)
	foreign, foreignMachine := foreignELF(t)
	tests := []struct {
		name    string
		files   map[string]file
		wantErr []string // substrings of the error; none: CheckInit("/sbin/init") succeeds
	}{
		{name: "dynamic ELF with its loader",
			files: map[string]file{"/sbin/init": exe(prog), interp: exe(loader)}},
		{name: "loader through an absolute link, resolved in the root",
			files: map[string]file{"/sbin/init": exe(prog), interp: symlink("/lib/the-loader"), "/lib/the-loader": exe(loader)}},
		{name: "dynamic ELF whose loader is missing",
			files:   map[string]file{"/sbin/init": exe(prog)},
			wantErr: []string{"the image has no " + interp + ", the ELF program interpreter of /sbin/init", "install " + interp + " in the image"}},
		{name: "loader link to where the host has it, not the root",
			files:   map[string]file{"/sbin/init": exe(prog), interp: symlink(hostLoader)},
			wantErr: []string{"the image has no " + interp}},
		{name: "loader without an x bit",
			files:   map[string]file{"/sbin/init": exe(prog), interp: noexec(loader)},
			wantErr: []string{interp + " (the ELF program interpreter of /sbin/init) in the image is not an executable file"}},
		{name: "loader that is no ELF",
			files:   map[string]file{"/sbin/init": exe(prog), interp: script("#!/bin/sh\n")},
			wantErr: []string{interp + ` (the ELF program interpreter of /sbin/init) in the image is not an ELF (it starts with "#!/bin/sh\n")`}},
		{name: "static ELF",
			files: map[string]file{"/sbin/init": exe(static)}},
		{name: "garbage with an x bit",
			files:   map[string]file{"/sbin/init": exe([]byte("MZ\x90\x00 not a program"))},
			wantErr: []string{`/sbin/init in the image is neither an ELF executable nor a #! script (it starts with "MZ\x90\x00 not a progr")`, "pass init="}},
		{name: "empty file with an x bit",
			files:   map[string]file{"/sbin/init": exe(nil)},
			wantErr: []string{"neither an ELF executable nor a #! script"}},
		{name: "ELF for another machine",
			files:   map[string]file{"/sbin/init": exe(foreign)},
			wantErr: []string{"/sbin/init in the image is an ELF for " + foreignMachine.String() + " 64-bit little-endian, and this machine runs", "another architecture"}},
		{name: "damaged ELF",
			files:   map[string]file{"/sbin/init": exe(append([]byte(elf.ELFMAG), 9, 9, 9))},
			wantErr: []string{"it is not an ELF this machine can run"}},
		{name: "script whose interpreter is present",
			files: map[string]file{"/sbin/init": script("#!/bin/sh -e\nexec true\n"), "/bin/sh": symlink("dash"), "/bin/dash": exe(static)}},
		{name: "script whose interpreter is missing",
			files:   map[string]file{"/sbin/init": script("#! /bin/sh\n")},
			wantErr: []string{"the image has no /bin/sh, the #! interpreter of /sbin/init", "install /bin/sh in the image"}},
		{name: "script whose interpreter is a script whose interpreter is missing",
			files:   map[string]file{"/sbin/init": script("#!/usr/bin/runner\n"), "/usr/bin/runner": script("#!/bin/nosuch\n")},
			wantErr: []string{"the image has no /bin/nosuch, the #! interpreter of /usr/bin/runner"}},
		{name: "script whose interpreter has a loader",
			files: map[string]file{"/sbin/init": script("#!/bin/true\n"), "/bin/true": exe(prog), interp: exe(loader)}},
		{name: "script whose interpreter lacks its loader",
			files:   map[string]file{"/sbin/init": script("#!/bin/true\n"), "/bin/true": exe(prog)},
			wantErr: []string{"the image has no " + interp + ", the ELF program interpreter of /bin/true"}},
		{name: "five scripts in a row, as the kernel runs",
			files: map[string]file{"/sbin/init": script("#!/s1\n"), "/s1": script("#!/s2\n"), "/s2": script("#!/s3\n"),
				"/s3": script("#!/s4\n"), "/s4": script("#!/s5\n"), "/s5": exe(static)}},
		{name: "six scripts in a row, one more than the kernel runs",
			files: map[string]file{"/sbin/init": script("#!/s1\n"), "/s1": script("#!/s2\n"), "/s2": script("#!/s3\n"),
				"/s3": script("#!/s4\n"), "/s4": script("#!/s5\n"), "/s5": script("#!/s6\n"), "/s6": exe(static)},
			wantErr: []string{"/s5 (the #! interpreter of /s4) in the image is a #! script too, and the kernel runs no more than 5"}},
		{name: "script with DOS line ends",
			files:   map[string]file{"/sbin/init": script("#!/bin/sh\r\necho\r\n"), "/bin/sh": exe(static)},
			wantErr: []string{`its #! line names "/bin/sh\r"`, "dos2unix"}},
		{name: "#! and nothing else",
			files:   map[string]file{"/sbin/init": script("#!  \n")},
			wantErr: []string{"/sbin/init in the image starts with #! but names no interpreter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckInit(makeRoot(t, tt.files), "/sbin/init")
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("CheckInit: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckInit succeeded, want an error with %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckInit = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}
