package bootloader

import (
	"fmt"
	"strings"
)

// BLSEntry is e as a Boot Loader Specification Type #1 entry, the file systemd-boot reads from
// loader/entries/ on the ESP. systemd-boot reads only the ESP (and an XBOOTLDR partition), so the
// kernel and initramfs must be there: an entry with another volume is refused.
func BLSEntry(e Entry) (string, error) {
	if err := checkEntry(e); err != nil {
		return "", err
	}
	if !e.Volume.IsZero() {
		return "", fmt.Errorf("entry %s: systemd-boot reads kernels only from the ESP, but %s is on %s: copy vmlinuz and initramfs.img to the ESP (mkbootimg install --bootloader systemd-boot does)", e.ID, e.Kernel, e.Volume.Spec())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "title   %s\n", e.Title)
	// sort-key keeps dockerinit's entries together, ordered by image, among the user's entries.
	b.WriteString("sort-key dockerinit\n")
	fmt.Fprintf(&b, "linux   %s\n", e.Kernel)
	if e.Initrd != "" {
		fmt.Fprintf(&b, "initrd  %s\n", e.Initrd)
	}
	fmt.Fprintf(&b, "options %s\n", e.Cmdline)
	return b.String(), nil
}

// ParseBLS reads a Type #1 entry: "key value" lines, '#' comments. id is the entry's file name
// without ".conf", which is what names a BLS entry.
func ParseBLS(id, conf string) (Entry, error) {
	e := Entry{ID: id}
	for n, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, value = line[:i], strings.TrimSpace(line[i+1:])
		}
		switch key {
		case "title":
			e.Title = value
		case "linux":
			e.Kernel = value
		case "initrd":
			if e.Initrd != "" {
				return Entry{}, fmt.Errorf("%s line %d: a second initrd; dockerinit entries have one", id, n+1)
			}
			e.Initrd = value
		case "options":
			e.Cmdline = strings.TrimSpace(e.Cmdline + " " + value) // several options lines are joined
		}
	}
	if e.Kernel == "" {
		return Entry{}, fmt.Errorf("%s: no linux line: not an entry that boots a kernel", id)
	}
	return e, nil
}
