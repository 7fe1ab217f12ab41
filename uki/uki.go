// Package uki makes what Secure Boot boots: a Unified Kernel Image (systemd's EFI stub with the
// kernel, the initramfs, the kernel command line and os-release as PE sections, one signed
// binary), the keys that sign it, and the signatures. The PE sections are added by binutils'
// objcopy and every signature is made and checked by Debian's sbsigntool and efitools, with keys
// from openssl: nothing here does cryptography itself. It runs at build time only; the init
// never links it.
package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dockerinit/dockerinit/internal/atomicfile"
)

// DefaultStub is systemd's EFI stub as Debian's systemd-boot-efi installs it.
const DefaultStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// Parts are the contents of one UKI.
type Parts struct {
	Stub      string // the EFI stub to start from; "": DefaultStub
	Kernel    string // the kernel image file (vmlinuz)
	Initrd    string // the initramfs file
	Cmdline   string // the kernel command line the stub passes on
	OSRelease []byte // the image's os-release: the boot menu's title for the UKI
	// Title, when set, replaces os-release's PRETTY_NAME, the title systemd-boot's menu shows:
	// UKIs of several images of one distribution would otherwise all show the same one.
	Title string
}

// section is one PE section objcopy adds: its name, contents and where the stub finds it.
type section struct {
	name string
	data []byte
	vma  uint64
}

// sectionAlign keeps every added section on a page: the firmware maps sections page by page.
const sectionAlign = 0x1000

// Assemble writes the UKI to out (replacing it), unsigned. The same parts give the same bytes:
// the sections are placed by their sizes only, and the time stamp objcopy writes is cleared.
func Assemble(p Parts, out string) error {
	stub := p.Stub
	if stub == "" {
		stub = DefaultStub
	}
	if _, err := exec.LookPath("objcopy"); err != nil {
		return errors.New("objcopy not found: apt-get install binutils")
	}
	end, err := imageEnd(stub)
	if err != nil {
		return err
	}
	if strings.ContainsAny(p.Cmdline, "\n\x00") {
		return fmt.Errorf("the kernel command line %q holds a newline or NUL: give it on one line", p.Cmdline)
	}
	kernel, err := os.ReadFile(p.Kernel)
	if err != nil {
		return fmt.Errorf("read the kernel: %w", err)
	}
	if len(kernel) < 2 || string(kernel[:2]) != "MZ" {
		return fmt.Errorf("%s is no EFI-stub kernel (no MZ header): the stub needs a kernel built with CONFIG_EFI_STUB", p.Kernel)
	}
	initrd, err := os.ReadFile(p.Initrd)
	if err != nil {
		return fmt.Errorf("read the initramfs: %w", err)
	}
	if len(p.OSRelease) == 0 {
		return errors.New("no os-release: the image has neither /etc/os-release nor /usr/lib/os-release")
	}
	osrel := p.OSRelease
	if p.Title != "" {
		osrel = withPrettyName(osrel, p.Title)
	}
	secs := layout(end, []section{
		{name: ".osrel", data: osrel},
		{name: ".cmdline", data: []byte(p.Cmdline)},
		{name: ".linux", data: kernel},
		{name: ".initrd", data: initrd},
	})
	tmp, err := os.MkdirTemp("", "mkbootimg-uki-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var args []string
	for _, s := range secs {
		f := filepath.Join(tmp, strings.TrimPrefix(s.name, "."))
		if err := os.WriteFile(f, s.data, 0o600); err != nil {
			return err
		}
		args = append(args, "--add-section", s.name+"="+f, "--change-section-vma", fmt.Sprintf("%s=%#x", s.name, s.vma))
	}
	part := filepath.Join(tmp, "uki.efi")
	args = append(args, stub, part)
	if b, err := exec.Command("objcopy", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("objcopy %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(b))
	}
	b, err := os.ReadFile(part)
	if err != nil {
		return err
	}
	if err := clearTimestamp(b); err != nil {
		return fmt.Errorf("objcopy's output %s: %w", part, err)
	}
	// 0600: the initramfs in it may hold the rescue shell's password hash.
	return writeFile(out, b, 0o600)
}

// withPrettyName is os-release with its PRETTY_NAME lines replaced by one saying title, quoted
// as os-release(5) quotes (backslash before ", \, $ and `).
func withPrettyName(osrel []byte, title string) []byte {
	var b strings.Builder
	for line := range strings.Lines(string(osrel)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "PRETTY_NAME=") {
			b.WriteString(line)
			if !strings.HasSuffix(line, "\n") {
				b.WriteString("\n")
			}
		}
	}
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`", "\n", " ").Replace(title)
	fmt.Fprintf(&b, "PRETTY_NAME=\"%s\"\n", quoted)
	return []byte(b.String())
}

// layout places the sections one after another, page-aligned, after the stub's own.
func layout(end uint64, secs []section) []section {
	vma := alignUp(end, 0x10000)
	for i := range secs {
		secs[i].vma = vma
		vma = alignUp(vma+uint64(len(secs[i].data)), sectionAlign)
	}
	return secs
}

func alignUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

// imageEnd is the first address after the stub's sections: the added ones go above it.
func imageEnd(stub string) (uint64, error) {
	f, err := pe.Open(stub)
	if err != nil {
		return 0, fmt.Errorf("the EFI stub %s: %w (apt-get install systemd-boot-efi, or pass --stub FILE)", stub, err)
	}
	defer f.Close()
	var end uint64
	for _, s := range f.Sections {
		switch s.Name {
		case ".linux", ".initrd", ".cmdline", ".osrel":
			return 0, fmt.Errorf("%s already has a %s section: give the bare stub (linuxx64.efi.stub), not a UKI", stub, s.Name)
		}
		end = max(end, uint64(s.VirtualAddress)+uint64(max(s.VirtualSize, s.Size)))
	}
	if end == 0 {
		return 0, fmt.Errorf("%s has no sections: not an EFI stub", stub)
	}
	return end, nil
}

// Sections reads the added sections of a UKI back, by name, as the stub will find them.
func Sections(path string) (map[string][]byte, error) {
	f, err := pe.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	out := map[string][]byte{}
	for _, s := range f.Sections {
		switch s.Name {
		case ".osrel", ".cmdline", ".linux", ".initrd":
			b, err := s.Data()
			if err != nil {
				return nil, fmt.Errorf("%s: section %s: %w", path, s.Name, err)
			}
			// A section's file size is rounded up to the file alignment; VirtualSize is exact.
			if int(s.VirtualSize) < len(b) && s.VirtualSize > 0 {
				b = b[:s.VirtualSize]
			}
			out[s.Name] = b
		}
	}
	return out, nil
}

// clearTimestamp zeroes the PE file header's time stamp, which objcopy sets to the time of the
// run whatever SOURCE_DATE_EPOCH says, and the optional header's checksum, which covers it: 0 is
// "no checksum", which UEFI firmware never checks, and sbsign writes a new one when it signs.
func clearTimestamp(b []byte) error {
	if len(b) < 0x40 || string(b[:2]) != "MZ" {
		return errors.New("no MZ header")
	}
	off := int(binary.LittleEndian.Uint32(b[0x3c:]))
	// "PE\0\0", the COFF file header (TimeDateStamp at 4), then the optional header, whose
	// CheckSum is at 64 in both PE32 and PE32+.
	const coff, checksum = 4, 4 + 20 + 64
	if off < 0 || off+checksum+4 > len(b) || string(b[off:off+4]) != "PE\x00\x00" {
		return errors.New("no PE header where the MZ header points")
	}
	clear(b[off+coff+4 : off+coff+8])
	clear(b[off+checksum : off+checksum+4])
	return nil
}

// writeFile writes b to path whole: under a temporary name first, renamed over path at the end.
func writeFile(path string, b []byte, perm os.FileMode) error {
	t, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	defer t.Discard()
	if _, err := t.Write(b); err != nil {
		return err
	}
	if err := t.Chmod(perm); err != nil {
		return err
	}
	return t.Commit()
}
