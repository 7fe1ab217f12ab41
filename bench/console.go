package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
)

// The console lines a boot's timeline is read from. testinit (qemu-tests/images/sample_image)
// prints "DITEST start uptime=<s>" first thing as the real init, then boot.json line by line.
const (
	runInitLine  = "Run /init as init process"
	startMarker  = "DITEST start uptime="
	bootJSONMark = "DITEST bootjson "
	// rootFound is dockerinit's line "dockerinit: root device /dev/vda (LABEL=linux) found after 319ms".
	rootFound = "dockerinit: root device "
	// firstLine starts every line dockerinit writes to the kernel log.
	firstLine      = "dockerinit: "
	rootFoundAfter = " found after "
)

// ErrNoBoot is returned by ParseBoot when the console does not show a boot that got as far as
// the real init.
var ErrNoBoot = errors.New("the console does not show the boot reaching the image's init")

// ParseBoot reads one boot's timeline from its serial console output, all on the guest clock:
// the kernel's printk stamp on "Run /init as init process", the uptime testinit printed when it
// started, and the steps of the boot.json it printed (none when it printed "missing", as under
// initramfs generators other than dockerinit).
func ParseBoot(console []byte) (Boot, error) {
	var b Boot
	var haveRun, haveStart bool
	var doc []string
	var rootDev string
	for _, line := range unsplice(console) {
		if haveRun && b.FirstLineS == 0 && (strings.Contains(line, firstLine) || strings.Contains(line, FloorFirstLine)) {
			b.FirstLineS, _ = printkStamp(line)
		}
		switch {
		case rootDev == "" && strings.Contains(line, rootFound) && strings.Contains(line, rootFoundAfter):
			rootDev, b.RootFoundS, b.RootWaitS = parseRootFound(line)
		case !haveRun && strings.Contains(line, runInitLine):
			at, ok := printkStamp(line)
			if !ok {
				return Boot{}, fmt.Errorf("%q has no printk time stamp in front (want \"[    2.345678] %s\"); boot with printk.time=1", line, runInitLine)
			}
			b.RunInitS, haveRun = at, true
		case !haveStart && strings.Contains(line, startMarker):
			_, rest, _ := strings.Cut(line, startMarker)
			up, ok := seconds(firstField(rest))
			if !ok {
				return Boot{}, fmt.Errorf("%q: want %s<seconds> as /proc/uptime prints it", line, startMarker)
			}
			b.RealInitS, haveStart = up, true
		case strings.Contains(line, bootJSONMark):
			_, rest, _ := strings.Cut(line, bootJSONMark)
			doc = append(doc, rest)
		}
	}
	switch {
	case !haveRun:
		return Boot{}, fmt.Errorf("%w: no %q line (did the kernel get an initramfs?)", ErrNoBoot, runInitLine)
	case !haveStart:
		return Boot{}, fmt.Errorf("%w: no %q line from testinit after the kernel ran /init", ErrNoBoot, startMarker)
	case b.RealInitS < b.RunInitS:
		return Boot{}, fmt.Errorf("the real init started at %.3f s, before the kernel ran /init at %.3f s: the console mixes two boots", b.RealInitS, b.RunInitS)
	}
	if rootDev != "" {
		b.DiskS = diskSeen(console, rootDev)
	}
	if len(doc) == 0 || (len(doc) == 1 && strings.HasPrefix(doc[0], "missing")) {
		return b, nil
	}
	var report struct {
		Steps []Step `json:"steps"`
	}
	if err := json.Unmarshal([]byte(strings.Join(doc, "\n")), &report); err != nil {
		return Boot{}, fmt.Errorf("the boot.json testinit printed is not the JSON dockerinit writes: %w", err)
	}
	b.Steps = report.Steps
	return b, nil
}

// unsplice splits the console into lines, mending those that a kernel line cut in two: the kernel
// writes to the serial console whenever it logs, so "DITEST start upt[    4.19] cdrom: ...\r\n"
// followed by "ime=4.16" is the kernel's line and, around it, testinit's "DITEST start uptime=4.16".
func unsplice(console []byte) []string {
	var out []string
	carry := "" // the start of a user line a kernel line cut off
	for line := range strings.Lines(string(console)) {
		line = carry + strings.TrimRight(line, "\r\n")
		carry = ""
		if i := strings.Index(line, "["); i > 0 {
			// printkStamp takes only "[ seconds]": "[vda]" or a JSON array is no kernel line.
			if _, ok := printkStamp(line[i:]); ok {
				out = append(out, line[i:])
				carry = line[:i]
				continue
			}
		}
		out = append(out, line)
	}
	if carry != "" {
		out = append(out, carry)
	}
	return out
}

// printkStamp reads the time stamp of a kernel console line, "[    2.345678] ...".
func printkStamp(line string) (float64, bool) {
	open := strings.IndexByte(line, '[')
	if open < 0 {
		return 0, false
	}
	stamp, _, found := strings.Cut(line[open+1:], "]")
	if !found {
		return 0, false
	}
	return seconds(strings.TrimSpace(stamp))
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// seconds parses f as a plausible, non-negative number of seconds since boot.
func seconds(f string) (float64, bool) {
	if f == "" || strings.Trim(f, "0123456789.") != "" {
		return 0, false
	}
	s, err := strconv.ParseFloat(f, 64)
	if err != nil || math.IsInf(s, 0) || s > 1e6 {
		return 0, false
	}
	return s, true
}

// parseRootFound reads dockerinit's "root device DEV (SPEC) found after D" line: the device,
// the line's time stamp and D in seconds; an empty device when the line does not parse.
func parseRootFound(line string) (dev string, at, wait float64) {
	at, ok := printkStamp(line)
	_, rest, _ := strings.Cut(line, rootFound)
	dev = firstField(rest)
	_, after, _ := strings.Cut(rest, rootFoundAfter)
	d, err := time.ParseDuration(firstField(after))
	if !ok || err != nil || d < 0 || !strings.HasPrefix(dev, "/dev/") {
		return "", 0, 0
	}
	return dev, at, d.Seconds()
}

// diskSeen is the time stamp of the first kernel line naming disk dev as drivers do when they
// find one ("virtio_blk virtio2: [vda] 8388608 512-byte logical blocks"); 0 when none does.
func diskSeen(console []byte, dev string) float64 {
	name := "[" + path.Base(dev) + "]"
	for line := range strings.Lines(string(console)) {
		if strings.Contains(line, name) {
			if at, ok := printkStamp(line); ok {
				return at
			}
		}
	}
	return 0
}
