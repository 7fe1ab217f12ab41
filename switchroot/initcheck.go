package switchroot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// maxScripts is how many #! scripts the kernel runs in a row, each the interpreter of the one
// before, before it fails with ELOOP (exec_binprm in fs/exec.c).
const maxScripts = 5

// scriptHead is as much of a #! line as the kernel reads (BINPRM_BUF_SIZE).
const scriptHead = 256

// machines maps GOARCH to the ELF machine the kernel this program runs on executes natively.
var machines = map[string]elfMachine{
	"386": em386, "amd64": emX86_64, "arm": emARM, "arm64": emAArch64, "loong64": emLoongArch,
	"mips": emMIPS, "mipsle": emMIPS, "mips64": emMIPS, "mips64le": emMIPS, "ppc64": emPPC64,
	"ppc64le": emPPC64, "riscv64": emRISCV, "s390x": emS390,
}

// executable is a file CheckInit looks at: the init, or an interpreter and what names it.
type executable struct {
	path    string
	namedBy string // "": the init itself; else the file whose PT_INTERP or #! line names path
	as      string // how namedBy names it: "ELF program interpreter", "#! interpreter"
}

func (x executable) String() string {
	if x.namedBy == "" {
		return x.path
	}
	return fmt.Sprintf("%s (the %s of %s)", x.path, x.as, x.namedBy)
}

// remedy says what to do about x.
func (x executable) remedy() string {
	if x.namedBy == "" {
		return "pass init= naming the image's init"
	}
	return fmt.Sprintf("install %s in the image, or pass init= naming an init that can run", x.path)
}

// checkExec reports whether the kernel can execute x once root (a descriptor of the new root) is
// "/": a regular file with an x bit, that is an ELF for this machine
// whose program interpreter passes the same checks, or a #! script whose interpreter does.
// depth counts the #! scripts before x.
func checkExec(root int, x executable, depth int) error {
	f, head, err := openHead(root, x)
	if err != nil {
		return err
	}
	defer f.Close()
	switch {
	case bytes.HasPrefix(head, []byte(elfMagic)):
		interp, err := checkELF(f, x, true)
		if err != nil || interp == "" {
			return err // a static ELF needs nothing more
		}
		// The kernel loads the program interpreter (the dynamic loader) itself, as an ELF.
		return checkLoader(root, executable{path: interp, namedBy: x.path, as: "ELF program interpreter"})
	case bytes.HasPrefix(head, []byte("#!")):
		if depth == maxScripts {
			return fmt.Errorf("%s in the image is a #! script too, and the kernel runs no more than %d #! scripts in a row: %s", x, maxScripts, x.remedy())
		}
		interp, err := scriptInterpreter(head, x)
		if err != nil {
			return err
		}
		return checkExec(root, executable{path: interp, namedBy: x.path, as: "#! interpreter"}, depth+1)
	}
	return fmt.Errorf("%s in the image is neither an ELF executable nor a #! script (it starts with %q), so the kernel cannot run it: %s", x, start(head), x.remedy())
}

// openHead opens x (see openExec) and reads its start: as much as the kernel looks at to choose
// how to run it.
func openHead(root int, x executable) (*os.File, []byte, error) {
	f, err := openExec(root, x)
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, scriptHead)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, fmt.Errorf("read %s: %w", x, err)
	}
	return f, head[:n], nil
}

// start is the first bytes of head, to quote in a message.
func start(head []byte) []byte { return head[:min(len(head), 16)] }

// checkLoader checks an ELF program interpreter: the kernel runs it as a static ELF, so neither a
// #! line nor a program interpreter of its own counts.
func checkLoader(root int, x executable) error {
	f, head, err := openHead(root, x)
	if err != nil {
		return err
	}
	defer f.Close()
	if !bytes.HasPrefix(head, []byte(elfMagic)) {
		return fmt.Errorf("%s in the image is not an ELF (it starts with %q), and the kernel loads only an ELF as a program interpreter: %s", x, start(head), x.remedy())
	}
	_, err = checkELF(f, x, false)
	return err
}

// openExec opens x for reading after checking that it is a regular file with an x bit.
func openExec(root int, x executable) (*os.File, error) {
	fd, err := openInRoot(root, x.path, unix.O_PATH)
	if err != nil {
		if x.namedBy == "" {
			return nil, fmt.Errorf("the image has no %s (%w): pass init=/path/to/init on the kernel command line, or install an init (systemd-sysv) in the image", x.path, err)
		}
		return nil, fmt.Errorf("the image has no %s, the %s of %s (%w): %s", x.path, x.as, x.namedBy, err, x.remedy())
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", x, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return nil, fmt.Errorf("%s in the image is not an executable file (mode %o): %s", x, st.Mode, x.remedy())
	}
	// Opened again to read it: an O_PATH descriptor cannot be read, and opening a fifo or a
	// device for reading, before knowing it is a regular file, could block or act on a device.
	rfd, err := openInRoot(root, x.path, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", x, err)
	}
	return os.NewFile(uintptr(rfd), x.path), nil
}

// checkELF checks that f is an ELF executable for this machine, as far as the kernel checks one
// before loading it, and returns its program interpreter ("" for a static one) if withInterp: the
// kernel reads no PT_INTERP of a program interpreter.
func checkELF(f *os.File, x executable, withInterp bool) (string, error) {
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", x, err)
	}
	size := st.Size()
	h, err := readELFHeader(f, size)
	if err != nil {
		return "", elfErr(x, err)
	}
	if got, want := describeELF(h.class, h.data, h.machine), describeELF(nativeELF()); got != want {
		return "", fmt.Errorf("%s in the image is an ELF for %s, and this machine runs %s (GOARCH %s): the image is for another architecture; use an image built for linux/%s, or %s",
			x, got, want, runtime.GOARCH, runtime.GOARCH, x.remedy())
	}
	if h.typ != etExec && h.typ != etDyn {
		return "", fmt.Errorf("%s in the image is an ELF of type %s, not an executable: %s", x, h.typ, x.remedy())
	}
	progs, err := h.progHeaders(f, size)
	if err != nil {
		return "", elfErr(x, err)
	}
	if !withInterp {
		return "", nil
	}
	interp, found, err := interpreter(f, size, progs)
	if err != nil {
		return "", elfErr(x, err)
	}
	if found && interp == "" {
		return "", fmt.Errorf("%s in the image names an empty program interpreter (PT_INTERP): the file looks damaged; %s", x, x.remedy())
	}
	return interp, nil
}

// elfErr says err, of reading the ELF x, for x: what to do if the kernel would refuse x, else
// only what failed to read.
func elfErr(x executable, err error) error {
	var bad elfError
	if errors.As(err, &bad) {
		return fmt.Errorf("%s in the image: %w; it is not an ELF this machine can run: %s", x, err, x.remedy())
	}
	return fmt.Errorf("%s in the image: %w", x, err)
}

// nativeELF is the class, byte order and machine of an ELF this program's machine runs.
func nativeELF() (class, data byte, machine elfMachine) {
	class = elfClass32
	if bits.UintSize == 64 {
		class = elfClass64
	}
	data = elfData2MSB
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		data = elfData2LSB
	}
	return class, data, machines[runtime.GOARCH]
}

// describeELF names an ELF's machine for messages and comparisons: "EM_X86_64 64-bit
// little-endian".
func describeELF(class, data byte, m elfMachine) string {
	width := "32-bit"
	if class == elfClass64 {
		width = "64-bit"
	}
	order := "big-endian"
	if data == elfData2LSB {
		order = "little-endian"
	}
	return fmt.Sprintf("%s %s %s", m, width, order)
}

// scriptInterpreter is the interpreter a #! line names, as the kernel reads it: the first word
// after #!, words split at spaces and tabs only, in the first line or the first scriptHead bytes.
func scriptInterpreter(head []byte, x executable) (string, error) {
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	fields := strings.FieldsFunc(string(line), func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return "", fmt.Errorf("%s in the image starts with #! but names no interpreter: %s", x, x.remedy())
	}
	if interp, ok := strings.CutSuffix(fields[0], "\r"); ok {
		return "", fmt.Errorf("%s in the image has DOS line ends: its #! line names %q, carriage return included, which the kernel looks for as it is; convert the file (dos2unix), then its interpreter is %s", x, fields[0], interp)
	}
	return fields[0], nil
}
