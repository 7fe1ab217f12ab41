package switchroot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// elfSummary is what CheckInit learns of an ELF.
type elfSummary struct {
	class, data byte
	typ         elfType
	machine     elfMachine
	progs       []elfProg
	interp      string
	found       bool // a PT_INTERP was found
}

// readELF reads data with the hand-written reader, as checkELF does.
func readELF(data []byte) (elfSummary, error) {
	r, size := bytes.NewReader(data), int64(len(data))
	h, err := readELFHeader(r, size)
	if err != nil {
		return elfSummary{}, err
	}
	progs, err := h.progHeaders(r, size)
	if err != nil {
		return elfSummary{}, err
	}
	interp, found, err := interpreter(r, size, progs)
	if err != nil {
		return elfSummary{}, err
	}
	return elfSummary{class: h.class, data: h.data, typ: h.typ, machine: h.machine, progs: progs, interp: interp, found: found}, nil
}

// errIncomparable is an ELF that debug/elf refuses for a reason the kernel does not check.
var errIncomparable = errors.New("debug/elf refuses a program header the kernel does not read")

// referenceELF reads data with debug/elf, then applies the kernel's checks that debug/elf does not
// make, so that it takes what the kernel would take.
func referenceELF(data []byte) (elfSummary, error) {
	ef, err := elf.NewFile(kernelView(data))
	if err != nil {
		if strings.Contains(err.Error(), "invalid program header") {
			return elfSummary{}, errIncomparable
		}
		return elfSummary{}, err
	}
	// The checks of load_elf_phdrs.
	phentsizeAt, want := 54, uint16(56)
	if ef.Class == elf.ELFCLASS32 {
		phentsizeAt, want = 42, 32
	}
	phentsize := ef.ByteOrder.Uint16(data[phentsizeAt:])
	if phentsize != want {
		return elfSummary{}, errors.New("e_phentsize is not the size of a program header")
	}
	if len(ef.Progs) == 0 || len(ef.Progs)*int(phentsize) > 65536 {
		return elfSummary{}, errors.New("no program headers, or more than 64 KiB of them")
	}
	s := elfSummary{class: byte(ef.Class), data: byte(ef.Data), typ: elfType(ef.Type), machine: elfMachine(ef.Machine)}
	for _, p := range ef.Progs {
		s.progs = append(s.progs, elfProg{typ: uint32(p.Type), off: p.Off, filesz: p.Filesz})
		if p.Type != elf.PT_INTERP || s.found {
			continue
		}
		// The checks of load_elf_binary.
		s.found = true
		if p.Filesz == 0 {
			continue // names no interpreter, wherever it is
		}
		if p.Filesz > 4096 || p.Off+p.Filesz > uint64(len(data)) {
			return elfSummary{}, errors.New("PT_INTERP longer than PATH_MAX or past the end of the file")
		}
		b := data[p.Off : p.Off+p.Filesz]
		if b[len(b)-1] != 0 {
			return elfSummary{}, errors.New("PT_INTERP not NUL-terminated")
		}
		s.interp, _, _ = strings.Cut(string(b), "\x00")
	}
	return s, nil
}

// kernelView is data for debug/elf to read as the kernel does, which reads neither e_version nor
// the section headers: debug/elf reads the ELF header (at offset 0, e_ident alone or the whole
// header) with e_version EV_CURRENT and no section headers, and everything else as it is in data,
// program headers that overlap the ELF header included.
func kernelView(data []byte) io.ReaderAt {
	var hdr []byte
	switch {
	case len(data) >= ehdrSize32 && data[eiClass] == elfClass32:
		hdr = bytes.Clone(data[:ehdrSize32])
		copy(hdr[32:36], make([]byte, 4)) // e_shoff
		copy(hdr[48:52], make([]byte, 4)) // e_shnum, e_shstrndx
	case len(data) >= ehdrSize64 && data[eiClass] == elfClass64:
		hdr = bytes.Clone(data[:ehdrSize64])
		copy(hdr[40:48], make([]byte, 8)) // e_shoff
		copy(hdr[60:64], make([]byte, 4)) // e_shnum, e_shstrndx
	default:
		return bytes.NewReader(data) // debug/elf refuses it before it would read a section header
	}
	copy(hdr[20:24], evCurrentIn(data[eiData])) // e_version
	return headerReader{data: data, hdr: hdr}
}

// headerReader reads hdr for reads of an ELF identification or header, and data for others:
// program headers of the size the kernel takes (32 or 56 bytes each) never add up to 16, 52 or 64
// bytes.
type headerReader struct{ data, hdr []byte }

func (r headerReader) ReadAt(b []byte, off int64) (int, error) {
	if off == 0 && (len(b) == eiNident || len(b) == len(r.hdr)) {
		return bytes.NewReader(r.hdr).ReadAt(b, off)
	}
	return bytes.NewReader(r.data).ReadAt(b, off)
}

// evCurrentIn is EV_CURRENT as an e_version in the ELF data encoding data.
func evCurrentIn(data byte) []byte {
	b := make([]byte, 4)
	if data == elfData2MSB {
		b[3] = evCurrent
	} else {
		b[0] = evCurrent
	}
	return b
}

// elfSeed is a seed of FuzzReadELF and what it is.
type elfSeed struct {
	name string
	data []byte
}

// elfSeeds are the starts of real executables, /bin/true, its loader and a static Go program, and
// a 32-bit big-endian ELF with a PT_INTERP, which no host has.
func elfSeeds(t testing.TB) []elfSeed {
	const head = 4096 // covers the ELF header, the program headers and PT_INTERP of each
	var seeds []elfSeed
	add := func(name string, b []byte) { seeds = append(seeds, elfSeed{name, b[:min(len(b), head)]}) }
	if prog, err := os.ReadFile("/bin/true"); err == nil {
		add("/bin/true", prog)
		if ef, err := elf.NewFile(bytes.NewReader(prog)); err == nil {
			for _, p := range ef.Progs {
				if p.Type != elf.PT_INTERP {
					continue
				}
				if b, err := io.ReadAll(p.Open()); err == nil {
					loader, _, _ := strings.Cut(string(b), "\x00")
					if data, err := os.ReadFile(loader); err == nil {
						add(loader, data)
					}
				}
			}
		}
	}
	testenv.Tools(t, "golang", "go")
	static, err := buildStatic()
	if err != nil {
		t.Fatal(err)
	}
	add("static Go program", static)
	add("32-bit big-endian", elf32BE(t, "/lib/ld.so.1"))
	return seeds
}

// elf32BE is a 32-bit big-endian ELF header, a PT_INTERP program header, and the interp it names.
func elf32BE(t testing.TB, interp string) []byte {
	var b bytes.Buffer
	h := elf.Header32{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_MIPS), Version: uint32(elf.EV_CURRENT),
		Phoff: 52, Ehsize: 52, Phentsize: 32, Phnum: 1}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS32), byte(elf.ELFDATA2MSB), byte(elf.EV_CURRENT)
	p := elf.Prog32{Type: uint32(elf.PT_INTERP), Off: 52 + 32, Filesz: uint32(len(interp) + 1)}
	for _, v := range []any{&h, &p, []byte(interp + "\x00")} {
		if err := binary.Write(&b, binary.BigEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// FuzzReadELF checks the hand-written ELF reader against debug/elf: it does not panic, it takes
// exactly what debug/elf reads and the kernel would take, and it finds there what debug/elf finds.
func FuzzReadELF(f *testing.F) {
	for _, seed := range elfSeeds(f) {
		// The reader must take these, and the fuzz function checks what it finds.
		if _, err := readELF(seed.data); err != nil {
			f.Fatalf("%s: %v", seed.name, err)
		}
		f.Add(seed.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readELF(data)
		want, wantErr := referenceELF(data)
		var bad elfError
		switch {
		case err != nil && !errors.As(err, &bad):
			t.Fatalf("readELF: %v, not an elfError: reading a bytes.Reader cannot fail", err)
		case errors.Is(wantErr, errIncomparable):
			// Nothing to compare with.
		case err != nil && wantErr == nil:
			t.Fatalf("readELF: %v; debug/elf reads %+v", err, want)
		case err == nil && wantErr != nil:
			t.Fatalf("readELF = %+v; debug/elf: %v", got, wantErr)
		case err == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("readELF = %+v\ndebug/elf finds %+v", got, want)
		}
	})
}

// TestCheckInitReadsWhatTheKernelReads checks that CheckInit refuses, saying why, a host program
// damaged where the kernel looks, and takes one damaged only where the kernel does not.
func TestCheckInitReadsWhatTheKernelReads(t *testing.T) {
	prog, interp, loader := hostELF(t, "/bin/true")
	ef, err := elf.NewFile(bytes.NewReader(prog))
	if err != nil {
		t.Fatal(err)
	}
	// The offsets of e_shoff and e_phnum, and of the PT_INTERP path.
	shoffAt, phnumAt := 40, 56
	if ef.Class == elf.ELFCLASS32 {
		shoffAt, phnumAt = 32, 44
	}
	var interpEnd uint64
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			interpEnd = p.Off + p.Filesz
			break
		}
	}
	damaged := func(damage func(b []byte) []byte) []byte { return damage(bytes.Clone(prog)) }
	tests := []struct {
		name    string
		prog    []byte
		wantErr string // a substring of the error; "": CheckInit succeeds
	}{
		{name: "section headers past the end of the file",
			prog: damaged(func(b []byte) []byte { b[shoffAt+2] = 0xff; return b })},
		{name: "no program headers",
			prog:    damaged(func(b []byte) []byte { ef.ByteOrder.PutUint16(b[phnumAt:], 0); return b }),
			wantErr: "/sbin/init in the image: it has no program headers (e_phnum is 0), and the kernel loads an ELF by them; it is not an ELF this machine can run"},
		{name: "PT_INTERP not NUL-terminated",
			prog:    damaged(func(b []byte) []byte { b[interpEnd-1] = 'x'; return b }),
			wantErr: "its program interpreter (PT_INTERP) \"" + interp + "x\" does not end in a NUL byte"},
		{name: "cut before PT_INTERP ends",
			prog:    damaged(func(b []byte) []byte { return b[:interpEnd-1] }),
			wantErr: "/sbin/init in the image: the file (" + strconv.FormatUint(interpEnd-1, 10) + " bytes) is too short for its program interpreter (PT_INTERP)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckInit(makeRoot(t, map[string]file{"/sbin/init": exe(tt.prog), interp: exe(loader)}), "/sbin/init")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckInit: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckInit = %v\nwant an error with %q", err, tt.wantErr)
			}
		})
	}
}
