package blockdev

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// partID is what a partition table says about one partition.
type partID struct {
	UUID, Label string
}

// partTable holds the partitions of one disk by the kernel's partition
// number (GPT entry index + 1; MBR primary 1-4, logical from 5).
type partTable struct {
	gpt    []partID // nil for MBR
	mbrSig uint32   // MBR disk signature, when gpt is nil
}

// part returns PARTUUID and PARTLABEL of partition n, as blkid prints them.
func (t *partTable) part(n int) partID {
	if t == nil || n < 1 {
		return partID{}
	}
	if t.gpt != nil {
		if n > len(t.gpt) {
			return partID{}
		}
		return t.gpt[n-1]
	}
	// The kernel and blkid both print the number in hex: "-0a" for the tenth.
	return partID{UUID: fmt.Sprintf("%08x-%02x", t.mbrSig, n)}
}

// readPartTable reads a disk's GPT (primary, else the backup at the end of a
// disk of the given size), else its MBR. No partition table gives nil, nil.
func readPartTable(r io.ReaderAt, size int64) (*partTable, error) {
	for _, sector := range []int64{512, 4096} {
		parts, err := readGPT(r, sector, size)
		if err != nil {
			return nil, err
		}
		if parts != nil {
			return &partTable{gpt: parts}, nil
		}
	}
	mbr, err := readUpTo(r, 0, 512)
	if err != nil {
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	if len(mbr) < 512 || mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, nil
	}
	return &partTable{mbrSig: binary.LittleEndian.Uint32(mbr[0x1b8:])}, nil
}

// readGPT returns the partition entries of a GPT with the given sector
// size: from the primary header at LBA 1, or if that one is damaged, from the
// backup in the last sector, as the kernel does. No valid GPT gives nil, nil.
func readGPT(r io.ReaderAt, sector, size int64) ([]partID, error) {
	lbas := []int64{1}
	if last := size/sector - 1; last > 1 {
		lbas = append(lbas, last)
	}
	for _, lba := range lbas {
		hdr, err := readUpTo(r, lba*sector, int(sector))
		if err != nil {
			return nil, fmt.Errorf("read GPT header: %w", err)
		}
		first, count, entSize, ok := parseGPTHeader(hdr, lba)
		if !ok {
			continue
		}
		ents, err := readUpTo(r, first*sector, int(count*entSize))
		if err != nil {
			return nil, fmt.Errorf("read GPT entries: %w", err)
		}
		if int64(len(ents)) != count*entSize || crc32.ChecksumIEEE(ents) != binary.LittleEndian.Uint32(hdr[88:]) {
			continue
		}
		parts := make([]partID, count)
		for i := range parts {
			parts[i] = parseGPTEntry(ents[int64(i)*entSize : int64(i+1)*entSize])
		}
		return parts, nil
	}
	return nil, nil
}

// parseGPTHeader checks a header's signature, CRC and own LBA, and returns
// where its entry array is and how it is shaped.
func parseGPTHeader(hdr []byte, lba int64) (first, count, entSize int64, ok bool) {
	if len(hdr) < 92 || string(hdr[:8]) != "EFI PART" {
		return 0, 0, 0, false
	}
	hdrSize := binary.LittleEndian.Uint32(hdr[12:])
	if hdrSize < 92 || int(hdrSize) > len(hdr) {
		return 0, 0, 0, false
	}
	h := make([]byte, hdrSize)
	copy(h, hdr)
	clear(h[16:20]) // the CRC is computed with its own field zeroed
	if crc32.ChecksumIEEE(h) != binary.LittleEndian.Uint32(hdr[16:]) ||
		binary.LittleEndian.Uint64(hdr[24:]) != uint64(lba) {
		return 0, 0, 0, false
	}
	first = int64(binary.LittleEndian.Uint64(hdr[72:]) & (1<<40 - 1))
	count = int64(binary.LittleEndian.Uint32(hdr[80:]))
	entSize = int64(binary.LittleEndian.Uint32(hdr[84:]))
	// The spec's entries are 128 bytes, larger multiples are allowed; more
	// than 1024 of them or a 1 MiB array is no disk anyone made.
	if entSize < 128 || entSize%128 != 0 || count == 0 || count > 1024 || count*entSize > 1<<20 {
		return 0, 0, 0, false
	}
	return first, count, entSize, true
}

// parseGPTEntry reads the unique GUID and UTF-16LE name of one entry; an
// unused entry (zero type GUID) has neither.
func parseGPTEntry(e []byte) partID {
	if allZero(e[:16]) {
		return partID{}
	}
	name := make([]uint16, 0, 36)
	for i := 56; i+1 < 128; i += 2 {
		c := binary.LittleEndian.Uint16(e[i:])
		if c == 0 {
			break
		}
		name = append(name, c)
	}
	return partID{UUID: formatGUID(e[16:32]), Label: string(utf16.Decode(name))}
}

// formatGUID prints a GUID stored the Microsoft way (first three fields
// little-endian) as blkid does: lower-case 8-4-4-4-12.
func formatGUID(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
