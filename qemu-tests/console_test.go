package qemutests

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// markerPrefix starts every line testinit prints for the tests.
const markerPrefix = "DITEST "

// kernelStamp starts a kernel message. The serial port interleaves kernel messages with
// userspace output byte by byte, so one may start in the middle of a line the guest prints
// ("@@12:0:end[    4.739659] sr 2:0:0:0: ...") and run to that line's end.
const kernelStamp = `\[ *[0-9]+\.[0-9]+\] `

// lineEnd ends a pattern for a line the guest prints, where `$` alone would miss a line a
// kernel message landed on.
const lineEnd = `(?:$|` + kernelStamp + `)`

var kernelMessage = regexp.MustCompile(kernelStamp)

// ansiEscape matches the terminal control sequences systemd colours its status with.
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|.)?`)

// cleanConsole turns raw serial output into the text a user reads.
func cleanConsole(s string) string {
	s = ansiEscape.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "\r", "")
}

// parseMarker reads a "DITEST <key> <value>" line; kernel messages may precede the marker or
// follow it on its line.
func parseMarker(line string) (key, value string, ok bool) {
	_, rest, found := strings.Cut(line, markerPrefix)
	if !found {
		return "", "", false
	}
	if at := kernelMessage.FindStringIndex(rest); at != nil {
		rest = rest[:at[0]]
	}
	key, value, _ = strings.Cut(rest, " ")
	if key == "" {
		return "", "", false
	}
	return key, value, true
}

// facts collects testinit's markers in order, by key.
func facts(lines []consoleLine) map[string][]string {
	f := map[string][]string{}
	for _, l := range lines {
		if k, v, ok := parseMarker(l.text); ok {
			f[k] = append(f[k], v)
		}
	}
	return f
}

// kernelTime reads the printk timestamp of a console line such as "[    1.234567] Run /init ...".
func kernelTime(line string) (time.Duration, bool) {
	rest, found := strings.CutPrefix(line, "[")
	if !found {
		return 0, false
	}
	stamp, _, found := strings.Cut(rest, "]")
	if !found {
		return 0, false
	}
	return seconds(strings.TrimSpace(stamp))
}

// seconds parses a non-negative decimal number of seconds, as in printk stamps and /proc/uptime.
func seconds(s string) (time.Duration, bool) {
	if s == "" || strings.Trim(s, "0123456789.") != "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f > 1e6 {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func TestCleanConsole(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mMulti-User System\x1b[0m.\r", "[  OK  ] Reached target Multi-User System."},
		{"plain\r", "plain"},
		{"\x1b(Bcharset", "charset"},
		{"trailing escape \x1b", "trailing escape "},
	} {
		if got := cleanConsole(tc.in); got != tc.want {
			t.Errorf("cleanConsole(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseMarker(t *testing.T) {
	for _, tc := range []struct {
		line, key, value string
		ok               bool
	}{
		{"DITEST hostname dockerinit-top", "hostname", "dockerinit-top", true},
		{"DITEST setuid 1234:1234 4755", "setuid", "1234:1234 4755", true},
		{"[   12.5] random: crng init doneDITEST finished", "finished", "", true},
		{"DITEST image sample_image[    4.739659] sr 2:0:0:0: [sr0] scsi3-mmc drive", "image", "sample_image", true},
		{"DITEST finished[    4.7] cdrom: Uniform CD-ROM driver", "finished", "", true},
		{"DITEST ", "", "", false},
		{"DITEST  two spaces", "", "", false},
		{"no marker here", "", "", false},
	} {
		key, value, ok := parseMarker(tc.line)
		if key != tc.key || value != tc.value || ok != tc.ok {
			t.Errorf("parseMarker(%q) = %q, %q, %v; want %q, %q, %v", tc.line, key, value, ok, tc.key, tc.value, tc.ok)
		}
	}
}

func TestFacts(t *testing.T) {
	got := facts([]consoleLine{
		{text: "[    1.0] Run /init as init process"},
		{text: "DITEST rootmount /dev/vda / btrfs rw 0 0"},
		{text: "DITEST rootmount /dev/vda / btrfs ro 0 0"},
		{text: "DITEST image sample_image"},
	})
	if len(got["rootmount"]) != 2 || got["rootmount"][1] != "/dev/vda / btrfs ro 0 0" || got["image"][0] != "sample_image" {
		t.Errorf("facts = %q, want two rootmount values in order and the image", got)
	}
}

func TestKernelTime(t *testing.T) {
	for _, tc := range []struct {
		line string
		want time.Duration
		ok   bool
	}{
		{"[    2.345678] Run /init as init process", 2345678 * time.Microsecond, true},
		{"[12345.000001] late", 12345000001 * time.Microsecond, true},
		{"[  OK  ] Reached target Multi-User System.", 0, false},
		{"[ -1.0] negative", 0, false},
		{"[1e3] exponent", 0, false},
		{"[    1.5 no bracket", 0, false},
		{"DITEST start uptime=3.1", 0, false},
	} {
		got, ok := kernelTime(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("kernelTime(%q) = %v, %v; want %v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzCleanConsole(f *testing.F) {
	f.Add("[\x1b[0;32m  OK  \x1b[0m] Reached\r")
	f.Add("\x1b")
	f.Fuzz(func(t *testing.T, s string) {
		got := cleanConsole(s)
		if strings.ContainsAny(got, "\x1b\r") {
			t.Errorf("cleanConsole(%q) = %q still holds ESC or CR", s, got)
		}
	})
}

func FuzzParseMarker(f *testing.F) {
	f.Add("DITEST hostname dockerinit-top")
	f.Add("[ 1.0] DITEST x")
	f.Fuzz(func(t *testing.T, line string) {
		key, value, ok := parseMarker(line)
		if !ok {
			return
		}
		if key == "" || strings.Contains(key, " ") || !strings.Contains(line, markerPrefix+key) || (value != "" && !strings.Contains(line, markerPrefix+key+" "+value)) || kernelMessage.MatchString(value) {
			t.Errorf("parseMarker(%q) = %q, %q: key must be one non-empty word of the line, value the text after it", line, key, value)
		}
	})
}

func FuzzKernelTime(f *testing.F) {
	f.Add("[    2.345678] Run /init as init process")
	f.Add("[]")
	f.Fuzz(func(t *testing.T, line string) {
		if d, ok := kernelTime(line); ok && (d < 0 || !strings.HasPrefix(line, "[")) {
			t.Errorf("kernelTime(%q) = %v: want a non-negative time from a line starting with [", line, d)
		}
	})
}
