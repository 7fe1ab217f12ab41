package bench

import (
	"fmt"
	"strings"

	"github.com/dockerinit/dockerinit/initramfs"
)

// The kinds of content Composition sorts an initramfs's files into.
const (
	PartInit      = "/init"
	PartModules   = "kernel modules"
	PartFirmware  = "firmware"
	PartMicrocode = "CPU microcode"
	PartOther     = "programs, libraries, scripts, config"
)

// Composition reads an initramfs file (any number of plain or compressed newc archives, as
// the kernel accepts) and sums its regular files by kind, uncompressed: what makes it big.
func Composition(data []byte) ([]Part, error) {
	entries, err := initramfs.Read(data)
	if err != nil {
		return nil, fmt.Errorf("read the initramfs to see what it holds: %w", err)
	}
	order := []string{PartInit, PartModules, PartFirmware, PartMicrocode, PartOther}
	sums := map[string]*Part{}
	for _, e := range entries {
		if !e.Mode.IsRegular() {
			continue
		}
		kind := partOf(e.Path)
		p := sums[kind]
		if p == nil {
			p = &Part{Name: kind}
			sums[kind] = p
		}
		p.Files++
		p.Bytes += int64(len(e.Data))
	}
	var out []Part
	for _, k := range order {
		if p := sums[k]; p != nil {
			out = append(out, *p)
		}
	}
	return out, nil
}

func partOf(p string) string {
	p = strings.TrimPrefix(p, "/")
	base := p[strings.LastIndexByte(p, '/')+1:]
	switch {
	case p == "init":
		return PartInit
	case strings.Contains(p, "lib/modules/") && strings.Contains(base, ".ko"):
		return PartModules
	case strings.Contains(p, "lib/firmware/"):
		return PartFirmware
	case strings.HasPrefix(p, "kernel/x86/microcode/"):
		return PartMicrocode
	}
	return PartOther
}
