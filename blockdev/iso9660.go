package blockdev

import (
	"encoding/binary"
	"strings"
	"unicode/utf16"
)

// ISO 9660 volume descriptors: 2 KiB each from 32 KiB on, up to a terminator.
const (
	isoFirstDescriptor = 0x8000
	isoDescriptorSize  = 2048
	isoPrimary         = 1
	isoSupplementary   = 2
	isoTerminator      = 255
)

// probeISO9660 reads the label and UUID of an ISO 9660 file system (a CD, DVD or ISO image) from
// the volume descriptors within b. The label is the primary descriptor's volume identifier, or
// the longer-cased Joliet one when there is one; the UUID is the modification date, else the
// creation date, as blkid prints it ("2024-01-02-03-04-05-00"): ISO 9660 has no real UUID.
func probeISO9660(b []byte) (label, uuid string, ok bool) {
	var pvd, joliet []byte
	for off := isoFirstDescriptor; off+isoDescriptorSize <= len(b); off += isoDescriptorSize {
		d := b[off : off+isoDescriptorSize]
		if string(d[1:6]) != "CD001" {
			break
		}
		switch d[0] {
		case isoPrimary:
			if pvd == nil {
				pvd = d
			}
		case isoSupplementary:
			if joliet == nil && isJoliet(d[88:91]) {
				joliet = d
			}
		}
		if d[0] == isoTerminator {
			break
		}
	}
	if pvd == nil {
		return "", "", false
	}
	label = strings.TrimRight(string(pvd[40:72]), " \x00")
	if joliet != nil {
		label = mergeJolietLabel(decodeUCS2(joliet[40:72]), label)
	}
	for _, date := range [][]byte{pvd[830:847], pvd[813:830]} {
		if uuid, ok := isoDateUUID(date); ok {
			return label, uuid, true
		}
	}
	return label, "", true
}

// isJoliet recognises the escape sequences of the three Joliet UCS-2 levels.
func isJoliet(esc []byte) bool {
	return esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E')
}

// decodeUCS2 decodes a big-endian UCS-2 field, trimming the space or NUL padding.
func decodeUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(u)), " \x00")
}

// mergeJolietLabel combines the Joliet label, which keeps the case but holds only 16
// characters, with the primary one, upper case but up to 32 characters: when the primary label
// continues the Joliet one, the rest is appended, so neither limit loses anything.
func mergeJolietLabel(joliet, primary string) string {
	if joliet == "" {
		return primary
	}
	if len(primary) > len(joliet) && strings.EqualFold(primary[:len(joliet)], joliet) {
		return joliet + primary[len(joliet):]
	}
	return joliet
}

// isoDateUUID formats a 17-byte ISO 9660 date ("YYYYMMDDHHMMSScc" and a time zone byte) the way
// blkid shows it as a UUID; an unset date (zeros) gives false.
func isoDateUUID(d []byte) (string, bool) {
	digits := d[:16]
	set := false
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", false
		}
		if c != '0' {
			set = true
		}
	}
	if !set {
		return "", false
	}
	s := string(digits)
	return s[0:4] + "-" + s[4:6] + "-" + s[6:8] + "-" + s[8:10] + "-" + s[10:12] + "-" + s[12:14] + "-" + s[14:16], true
}
