package blockdev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// probeLen covers every superblock Probe reads: the btrfs one is the
// furthest, 4 KiB at 64 KiB.
const probeLen = 0x11000

// Probe reads a file system superblock and returns the type, label and UUID
// as blkid prints them. It knows btrfs, ext2/3/4, xfs, iso9660 and vfat
// (FAT12/16/32); anything else gives "", "", "", nil. Only read errors are
// errors; a device shorter than a superblock is simply not that file system.
func Probe(r io.ReaderAt) (fstype, label, uuid string, err error) {
	id, err := probe(r)
	return id.fsType, id.label, id.uuid, err
}

// fsID is what a superblock says about its file system.
type fsID struct {
	fsType, label, uuid string
	subUUID             string // btrfs: the device's own UUID (blkid's UUID_SUB)
}

// probe is Probe, with the btrfs member's device UUID.
func probe(r io.ReaderAt) (fsID, error) {
	b, err := readUpTo(r, 0, probeLen)
	if err != nil {
		return fsID{}, fmt.Errorf("read superblock: %w", err)
	}
	switch {
	case len(b) >= 0x1022b && string(b[0x10040:0x10048]) == "_BHRfS_M":
		// The superblock at 64 KiB: fsid at 0x20, dev_item.uuid at 0x10b, label at 0x12b.
		return fsID{"btrfs", cString(b[0x1012b:0x1022b]), formatUUID(b[0x10020:0x10030]), formatUUID(b[0x1010b:0x1011b])}, nil
	case len(b) >= 120 && string(b[0:4]) == "XFSB" && validXFS(b):
		return fsID{fsType: "xfs", label: cString(b[108:120]), uuid: formatUUID(b[32:48])}, nil
	case len(b) >= 0x488 && binary.LittleEndian.Uint16(b[0x438:]) == 0xEF53:
		return fsID{fsType: extType(b), label: cString(b[0x478:0x488]), uuid: formatUUID(b[0x468:0x478])}, nil
	}
	// Before FAT: a hybrid ISO also carries a boot sector's 0x55AA.
	if label, uuid, ok := probeISO9660(b); ok {
		return fsID{fsType: "iso9660", label: label, uuid: uuid}, nil
	}
	if bpb, ok := parseFAT(b); ok {
		label, err := fatLabel(r, bpb)
		if err != nil {
			return fsID{}, fmt.Errorf("read FAT root directory: %w", err)
		}
		return fsID{fsType: "vfat", label: label, uuid: fmt.Sprintf("%04X-%04X", bpb.serial>>16, bpb.serial&0xffff)}, nil
	}
	return fsID{}, nil
}

// readUpTo reads n bytes at off, or fewer when the device ends first.
func readUpTo(r io.ReaderAt, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	got, err := r.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:got], nil
}

// cString is a NUL-terminated (or NUL-padded) field as text.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// formatUUID prints 16 bytes stored in order as 8-4-4-4-12 lower-case hex.
func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// validXFS checks the block size, so four stray bytes "XFSB" are not taken
// for a file system.
func validXFS(b []byte) bool {
	bs := binary.BigEndian.Uint32(b[4:8])
	return bs >= 512 && bs <= 65536 && bs&(bs-1) == 0
}

// ext feature bits that decide between ext2, ext3 and ext4 the way blkid does:
// ext4 is anything using a feature ext3 lacks, ext3 is ext2 with a journal.
const (
	extCompatHasJournal  = 0x4
	extIncompatJournal   = 0x8 // an external journal device, not a file system
	ext3IncompatFeatures = 0x2 | 0x4 | 0x10
	ext3ROCompatFeatures = 0x1 | 0x2 | 0x4
)

func extType(b []byte) string {
	compat := binary.LittleEndian.Uint32(b[0x45c:])
	incompat := binary.LittleEndian.Uint32(b[0x460:])
	roCompat := binary.LittleEndian.Uint32(b[0x464:])
	switch {
	case incompat&extIncompatJournal != 0:
		return "jbd"
	case incompat&^ext3IncompatFeatures != 0 || roCompat&^ext3ROCompatFeatures != 0:
		return "ext4"
	case compat&extCompatHasJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// fatBPB is what Probe needs from a FAT boot sector.
type fatBPB struct {
	sectorSize       int64
	clusterSectors   int64
	reserved         int64
	fats, fatSectors int64
	rootEntries      int64 // FAT12/16: fixed root directory size
	rootCluster      int64 // FAT32: root directory's first cluster
	serial           uint32
	bootLabel        string
}

// parseFAT recognises a FAT boot sector by its type string and a sane BIOS
// parameter block; the 0x55AA signature alone would also match an MBR.
func parseFAT(b []byte) (fatBPB, bool) {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA {
		return fatBPB{}, false
	}
	le16 := func(off int) int64 { return int64(binary.LittleEndian.Uint16(b[off:])) }
	bpb := fatBPB{
		sectorSize:     le16(11),
		clusterSectors: int64(b[13]),
		reserved:       le16(14),
		fats:           int64(b[16]),
		rootEntries:    le16(17),
		fatSectors:     le16(22),
	}
	var label []byte
	switch {
	case string(b[0x52:0x5a]) == "FAT32   ":
		bpb.fatSectors = int64(binary.LittleEndian.Uint32(b[36:]))
		bpb.rootCluster = int64(binary.LittleEndian.Uint32(b[44:]))
		bpb.serial = binary.LittleEndian.Uint32(b[0x43:])
		label = b[0x47:0x52]
	case strings.HasPrefix(string(b[0x36:0x3e]), "FAT"):
		bpb.serial = binary.LittleEndian.Uint32(b[0x27:])
		label = b[0x2b:0x36]
	default:
		return fatBPB{}, false
	}
	pow2 := func(v int64) bool { return v > 0 && v&(v-1) == 0 }
	if bpb.sectorSize < 512 || bpb.sectorSize > 4096 || !pow2(bpb.sectorSize) ||
		!pow2(bpb.clusterSectors) || bpb.reserved == 0 || bpb.fats == 0 || bpb.fatSectors == 0 {
		return fatBPB{}, false
	}
	bpb.bootLabel = fatName(label)
	return bpb, true
}

// fatName trims the space padding of an 8.3-style name; "NO NAME" is what
// formatters write when there is no label.
func fatName(b []byte) string {
	s := strings.TrimRight(cString(b), " ")
	if s == "NO NAME" {
		return ""
	}
	return s
}

// fatLabel returns the volume label from the root directory's volume-label
// entry, which is what relabelling tools and blkid use, falling back to the
// boot sector copy (blkid before 2.35 did too; newer ones show it only as
// LABEL_FATBOOT), so a label any blkid showed is found. Only the first cluster of a FAT32 root directory is read:
// the label entry is written first, and following the cluster chain would
// mean reading the FAT.
func fatLabel(r io.ReaderAt, bpb fatBPB) (string, error) {
	const entrySize = 32
	firstData := bpb.reserved + bpb.fats*bpb.fatSectors
	var off, size int64
	if bpb.rootCluster != 0 {
		if bpb.rootCluster < 2 {
			return bpb.bootLabel, nil
		}
		off = (firstData + (bpb.rootCluster-2)*bpb.clusterSectors) * bpb.sectorSize
		size = bpb.clusterSectors * bpb.sectorSize
	} else {
		off = firstData * bpb.sectorSize
		size = bpb.rootEntries * entrySize
	}
	dir, err := readUpTo(r, off, int(min(size, 1<<20)))
	if err != nil {
		return "", err
	}
	for e := dir; len(e) >= entrySize; e = e[entrySize:] {
		const attrVolumeID, attrLFN = 0x08, 0x0f
		switch {
		case e[0] == 0x00: // end of directory
			return bpb.bootLabel, nil
		case e[0] == 0xe5 || e[11] == attrLFN || e[11]&attrVolumeID == 0: // deleted, long name, file
			continue
		}
		name := bytes.Clone(e[:11])
		if name[0] == 0x05 { // a real leading 0xE5, escaped so it does not read as deleted
			name[0] = 0xe5
		}
		return fatName(name), nil
	}
	return bpb.bootLabel, nil
}
