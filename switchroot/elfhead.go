package switchroot

// The ELF reader here is hand-written, not debug/elf, for two reasons. debug/elf brings
// debug/dwarf, compress/zlib, compress/flate and internal/zstd into PID 1: 200 KiB more of a
// stripped binary for every boot to load, under emulation too. And it parses the section headers, which the kernel
// never looks at, so it could refuse an init the kernel runs. This reads only what the kernel's
// load_elf_binary (fs/binfmt_elf.c) reads to start a program, and bounds every read.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Values from elf.h.
const (
	elfMagic    = "\x7fELF"
	eiNident    = 16 // the size of e_ident
	eiClass     = 4  // the index of EI_CLASS in e_ident
	eiData      = 5
	eiVersion   = 6
	elfClass32  = 1 // ELFCLASS32
	elfClass64  = 2
	elfData2LSB = 1 // ELFDATA2LSB
	elfData2MSB = 2
	evCurrent   = 1 // EV_CURRENT
	ptInterp    = 3 // PT_INTERP
)

// The sizes of Elf32_Ehdr, Elf64_Ehdr, Elf32_Phdr and Elf64_Phdr.
const (
	ehdrSize32 = 52
	ehdrSize64 = 64
	phdrSize32 = 32
	phdrSize64 = 56
)

// Bounds the kernel puts on what it reads.
const (
	// maxProgHeaders is the most bytes of program headers load_elf_phdrs reads. Older kernels
	// also stop at a page; that is not checked, so that no init a newer kernel runs is refused.
	maxProgHeaders = 65536
	// pathMax (PATH_MAX) is the longest PT_INTERP load_elf_binary takes, NUL included.
	pathMax = 4096
)

// elfMachine is an ELF e_machine.
type elfMachine uint16

// The machines of the GOARCHes in machines.
const (
	em386       elfMachine = 3
	emMIPS      elfMachine = 8
	emPPC64     elfMachine = 21
	emS390      elfMachine = 22
	emARM       elfMachine = 40
	emX86_64    elfMachine = 62
	emAArch64   elfMachine = 183
	emRISCV     elfMachine = 243
	emLoongArch elfMachine = 258
)

var machineNames = map[elfMachine]string{
	em386: "EM_386", emMIPS: "EM_MIPS", emPPC64: "EM_PPC64", emS390: "EM_S390", emARM: "EM_ARM",
	emX86_64: "EM_X86_64", emAArch64: "EM_AARCH64", emRISCV: "EM_RISCV", emLoongArch: "EM_LOONGARCH",
}

// String is the elf.h name of m, or its number for a machine no GOARCH here runs.
func (m elfMachine) String() string {
	if s, ok := machineNames[m]; ok {
		return s
	}
	return fmt.Sprintf("e_machine %d", uint16(m))
}

// elfType is an ELF e_type.
type elfType uint16

const (
	etExec elfType = 2 // ET_EXEC
	etDyn  elfType = 3 // ET_DYN
)

// String is the elf.h name of t.
func (t elfType) String() string {
	if names := []string{"ET_NONE", "ET_REL", "ET_EXEC", "ET_DYN", "ET_CORE"}; int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("%#x", uint16(t))
}

// elfError is an ELF the kernel would refuse to run. The other errors of readELFHeader,
// progHeaders and interpreter are failures to read the file.
type elfError string

func (e elfError) Error() string { return string(e) }

func badELF(format string, a ...any) error { return elfError(fmt.Sprintf(format, a...)) }

// elfHeader is what the kernel reads of an ELF header.
type elfHeader struct {
	class, data byte // e_ident[EI_CLASS], e_ident[EI_DATA]
	order       binary.ByteOrder
	typ         elfType
	machine     elfMachine
	phoff       uint64
	phentsize   uint16
	phnum       uint16
}

// elfProg is what the kernel reads of a program header to find the program interpreter.
type elfProg struct {
	typ         uint32
	off, filesz uint64
}

// readELFHeader reads the ELF header of r, a file of size bytes.
func readELFHeader(r io.ReaderAt, size int64) (elfHeader, error) {
	ident, err := readAt(r, size, 0, eiNident, "ELF identification (e_ident)")
	if err != nil {
		return elfHeader{}, err
	}
	if string(ident[:len(elfMagic)]) != elfMagic {
		return elfHeader{}, badELF("it starts with %q, not the ELF magic %q", ident[:len(elfMagic)], elfMagic)
	}
	h := elfHeader{class: ident[eiClass], data: ident[eiData]}
	var ehdrSize int
	switch h.class {
	case elfClass32:
		ehdrSize = ehdrSize32
	case elfClass64:
		ehdrSize = ehdrSize64
	default:
		return elfHeader{}, badELF("its ELF class (e_ident[EI_CLASS]) is %d, want 1 (32-bit) or 2 (64-bit)", h.class)
	}
	switch h.data {
	case elfData2LSB:
		h.order = binary.LittleEndian
	case elfData2MSB:
		h.order = binary.BigEndian
	default:
		return elfHeader{}, badELF("its ELF data encoding (e_ident[EI_DATA]) is %d, want 1 (little-endian) or 2 (big-endian)", h.data)
	}
	if v := ident[eiVersion]; v != evCurrent {
		return elfHeader{}, badELF("its ELF version (e_ident[EI_VERSION]) is %d, want 1 (EV_CURRENT)", v)
	}
	b, err := readAt(r, size, 0, ehdrSize, "ELF header")
	if err != nil {
		return elfHeader{}, err
	}
	h.typ = elfType(h.order.Uint16(b[16:]))
	h.machine = elfMachine(h.order.Uint16(b[18:]))
	if h.class == elfClass32 {
		h.phoff = uint64(h.order.Uint32(b[28:]))
		h.phentsize, h.phnum = h.order.Uint16(b[42:]), h.order.Uint16(b[44:])
	} else {
		h.phoff = h.order.Uint64(b[32:])
		h.phentsize, h.phnum = h.order.Uint16(b[54:]), h.order.Uint16(b[56:])
	}
	return h, nil
}

// progHeaders reads the program headers of r, a file of size bytes whose header is h, with the
// checks of load_elf_phdrs.
func (h elfHeader) progHeaders(r io.ReaderAt, size int64) ([]elfProg, error) {
	want, width := uint16(phdrSize64), 64
	if h.class == elfClass32 {
		want, width = phdrSize32, 32
	}
	if h.phentsize != want {
		return nil, badELF("its program headers are %d bytes each (e_phentsize), and the kernel takes only %d-byte ones in a %d-bit ELF", h.phentsize, want, width)
	}
	if h.phnum == 0 {
		return nil, badELF("it has no program headers (e_phnum is 0), and the kernel loads an ELF by them")
	}
	n := int(h.phnum) * int(h.phentsize)
	if n > maxProgHeaders {
		return nil, badELF("its %d program headers (e_phnum) take %d bytes, more than the kernel reads (%d)", h.phnum, n, maxProgHeaders)
	}
	b, err := readAt(r, size, h.phoff, n, "program headers (e_phoff)")
	if err != nil {
		return nil, err
	}
	progs := make([]elfProg, h.phnum)
	for i := range progs {
		p := b[i*int(h.phentsize):]
		if h.class == elfClass32 {
			progs[i] = elfProg{typ: h.order.Uint32(p), off: uint64(h.order.Uint32(p[4:])), filesz: uint64(h.order.Uint32(p[16:]))}
		} else {
			progs[i] = elfProg{typ: h.order.Uint32(p), off: h.order.Uint64(p[8:]), filesz: h.order.Uint64(p[32:])}
		}
	}
	return progs, nil
}

// interpreter reads the program interpreter that the first PT_INTERP of progs names in r, a file
// of size bytes, as load_elf_binary does. found is false when there is none (a static ELF); path
// is "" when PT_INTERP is empty.
func interpreter(r io.ReaderAt, size int64, progs []elfProg) (path string, found bool, err error) {
	for _, p := range progs {
		if p.typ != ptInterp {
			continue
		}
		if p.filesz > pathMax {
			return "", true, badELF("its program interpreter (PT_INTERP) is %d bytes, longer than the kernel takes (PATH_MAX, %d)", p.filesz, pathMax)
		}
		if p.filesz == 0 {
			return "", true, nil
		}
		b, err := readAt(r, size, p.off, int(p.filesz), "program interpreter (PT_INTERP)")
		if err != nil {
			return "", true, err
		}
		if b[len(b)-1] != 0 {
			return "", true, badELF("its program interpreter (PT_INTERP) %q does not end in a NUL byte, as the kernel wants", b)
		}
		path, _, _ := bytes.Cut(b, []byte{0})
		return string(path), true, nil
	}
	return "", false, nil
}

// readAt reads n bytes at off of r, a file of size bytes; what names them in errors.
func readAt(r io.ReaderAt, size int64, off uint64, n int, what string) ([]byte, error) {
	if off > uint64(size) || uint64(size)-off < uint64(n) {
		return nil, badELF("the file (%d bytes) is too short for its %s: %d bytes at offset %d", size, what, n, off)
	}
	b := make([]byte, n)
	if got, err := r.ReadAt(b, int64(off)); got < n {
		return nil, fmt.Errorf("read its %s: %w", what, err)
	}
	return b, nil
}
