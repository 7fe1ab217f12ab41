package bootloader

import (
	"fmt"
	"path"
	"strings"

	"github.com/dockerinit/dockerinit/bootparam"
)

// BLSEntry is e as a Boot Loader Specification Type #1 entry, the file systemd-boot reads from
// loader/entries/ on the ESP. systemd-boot reads only the ESP (and an XBOOTLDR partition), so the
// kernel and initramfs must be there: an entry with another volume is refused.
func BLSEntry(e Entry) (string, error) {
	if err := checkEntry(e); err != nil {
		return "", err
	}
	if e.UKI {
		return "", fmt.Errorf("entry %s: systemd-boot lists the UKIs in ESP/EFI/Linux/ by itself: %s needs no entry file", e.ID, e.Kernel)
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

// BLSName is the file name of a Type #1 entry as systemd-boot's boot counting reads it:
// ID.conf, or ID+LEFT.conf or ID+LEFT-DONE.conf while the entry is counted. systemd-boot renames
// ID+3.conf to ID+2-1.conf as it starts the entry, and so on down to ID+0-3.conf, an entry it
// then sorts last; systemd-bless-boot renames it to ID.conf once the boot is good.
type BLSName struct {
	ID      string // the name without counter and ".conf": Entry.ID
	Counted bool   // a +LEFT[-DONE] counter is in the name
	Left    int    // tries left
	Done    int    // tries taken
}

// blsSuffix ends every Type #1 entry's file name.
const blsSuffix = ".conf"

// maxCounter bounds a counter as systemd-boot does (INT_MAX): a longer number is no counter.
const maxCounter = 1<<31 - 1

// ParseBLSName splits the file name of a Type #1 entry. ok is false for a name that is not an
// entry (no ".conf", or nothing before it). A '+' not followed by a well-formed counter right
// before ".conf" is part of the ID, as systemd-boot reads it.
func ParseBLSName(file string) (n BLSName, ok bool) {
	base, found := strings.CutSuffix(file, blsSuffix)
	if !found || base == "" || strings.ContainsAny(file, "/\x00") {
		return BLSName{}, false
	}
	n.ID = base
	plus := strings.LastIndexByte(base, '+')
	if plus <= 0 { // "+3.conf" would leave no ID
		return n, true
	}
	left, done, hasDone := base[plus+1:], "", false
	if i := strings.IndexByte(left, '-'); i >= 0 {
		left, done, hasDone = left[:i], left[i+1:], true
	}
	l, lok := parseCounter(left)
	d, dok := parseCounter(done)
	if !lok || (hasDone && !dok) {
		return n, true
	}
	return BLSName{ID: base[:plus], Counted: true, Left: l, Done: d}, true
}

// parseCounter reads a counter: decimal digits only, at most maxCounter. "" is 0 and not ok.
func parseCounter(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= maxCounter
}

// String is n as a file name; a counter with no try taken yet is written +LEFT.
func (n BLSName) String() string {
	switch {
	case !n.Counted:
		return n.ID + blsSuffix
	case n.Done == 0:
		return fmt.Sprintf("%s+%d%s", n.ID, n.Left, blsSuffix)
	}
	return fmt.Sprintf("%s+%d-%d%s", n.ID, n.Left, n.Done, blsSuffix)
}

// BLSFile is the file name in loader/entries/ of e: ID+N.conf when it asks systemd-boot to
// count N tries (SystemdTries), else ID.conf.
func BLSFile(e Entry) (string, error) {
	n := BLSName{ID: e.ID, Counted: e.SystemdTries != 0, Left: e.SystemdTries}
	if e.SystemdTries < 0 || e.SystemdTries > bootparam.MaxTries {
		return "", fmt.Errorf("entry %s: systemd-boot tries %d: want 1 to %d", e.ID, e.SystemdTries, bootparam.MaxTries)
	}
	file := n.String()
	if back, ok := ParseBLSName(file); !ok || back != n || strings.Contains(e.ID, "+") {
		return "", fmt.Errorf("entry ID %q does not make a loader/entries file name that systemd-boot reads back (no '/' or '+' in it)", e.ID)
	}
	if len(file) > 255 {
		return "", fmt.Errorf("entry %s: the file name %s is longer than 255 bytes", e.ID, file)
	}
	return file, nil
}

// BLSDefault is the pattern loader.conf's "default" takes to select e whatever its counter
// says. systemd-boot matches it, as a glob, against the entry's ID: in older versions (Debian
// 12's 252 among them) that is the whole file name, counter included (ID+2-1.conf, then ID.conf
// once blessed); newer ones drop the counter. "ID[+.]*conf" matches all of these; it would also match an entry
// named ID.MORE.conf, which MatchesBLSDefault lets the caller rule out.
func BLSDefault(e Entry) string {
	if e.SystemdTries == 0 {
		return e.ID + blsSuffix
	}
	return e.ID + "[+.]*conf"
}

// MatchesBLSDefault reports whether loader.conf's default pattern (from BLSDefault) selects the
// entry in file, as systemd-boot's glob does (file names have no '/').
func MatchesBLSDefault(pattern, file string) bool {
	ok, err := path.Match(pattern, strings.ToLower(file))
	return ok && err == nil
}
