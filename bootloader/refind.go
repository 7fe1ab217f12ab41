package bootloader

import (
	"fmt"
	"strings"
)

// RefindStanza is e as a menuentry stanza of refind.conf. rEFInd cannot escape a double quote,
// so a title or command line holding one is refused.
func RefindStanza(e Entry) (string, error) {
	if err := checkEntry(e); err != nil {
		return "", err
	}
	if err := refindUnquotable(e, e.Title, e.Cmdline, e.Kernel, e.Initrd, e.Volume.Label); err != nil {
		return "", err
	}
	if !e.Volume.IsZero() && e.Volume.Label == "" {
		return "", fmt.Errorf("entry %s: the volume holding %s has no label (UUID %s), and rEFInd names volumes by label: label it (btrfs filesystem label, e2label, fatlabel) or pass --volume LABEL", e.ID, e.Kernel, e.Volume.UUID)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "menuentry \"%s\" {\n", e.Title)
	if e.Volume.Label != "" {
		fmt.Fprintf(&b, "  volume %s\n", refindWord(e.Volume.Label))
	}
	fmt.Fprintf(&b, "  loader %s\n", refindWord(e.Kernel))
	if e.Initrd != "" {
		fmt.Fprintf(&b, "  initrd %s\n", refindWord(e.Initrd))
	}
	if !e.UKI { // a UKI's command line is sealed in it: rEFInd passes none
		fmt.Fprintf(&b, "  options \"%s\"\n", e.Cmdline)
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// RefindLinuxLine is e as a line of refind_linux.conf, the file rEFInd reads beside a kernel it
// finds by itself: the title, then the options with the initramfs as the kernel's EFI stub loads
// it (initrd=, a backslash path on the kernel's volume).
func RefindLinuxLine(e Entry) (string, error) {
	if err := checkEntry(e); err != nil {
		return "", err
	}
	if e.UKI {
		return "", fmt.Errorf("entry %s: refind_linux.conf gives options to kernels rEFInd finds, and a UKI takes none: use --bootloader refind", e.ID)
	}
	opts := e.Cmdline
	if e.Initrd != "" {
		opts = strings.TrimSpace(opts + " initrd=" + strings.ReplaceAll(e.Initrd, "/", `\`))
	}
	if err := refindUnquotable(e, e.Title, opts); err != nil {
		return "", err
	}
	return fmt.Sprintf("\"%s\" \"%s\"\n", e.Title, opts), nil
}

// refindUnquotable refuses a double quote in any of e's fields, which rEFInd cannot escape.
func refindUnquotable(e Entry, fields ...string) error {
	for _, f := range fields {
		if !strings.Contains(f, `"`) {
			continue
		}
		err := fmt.Errorf("entry %s: rEFInd cannot write a double quote, and %q holds one", e.ID, f)
		if e.Cmdline != "" && strings.Contains(f, e.Cmdline) && strings.Contains(e.Cmdline, `"`) {
			return fmt.Errorf("%w: the kernel command line quotes a value holding white space (a label such as \"my disk\"): name the file system by UUID= (--root UUID=..., [root] device), or remove the quote", err)
		}
		return fmt.Errorf("%w: remove it", err)
	}
	return nil
}

// refindWord quotes a value when rEFInd would split it: it splits on white space, '=' and ','.
func refindWord(s string) string {
	if s == "" || strings.ContainsAny(s, " \t=,#") {
		return `"` + s + `"`
	}
	return s
}

// ParseRefind reads the menuentry stanzas of a refind.conf, in order. Only the keys an Entry
// holds are read; submenus and other keys are skipped. Kernel and initrd come back as written.
func ParseRefind(conf string) ([]Entry, error) {
	var (
		entries []Entry
		cur     *Entry
		depth   int // nesting inside the current menuentry: submenuentry blocks
	)
	for n, line := range strings.Split(conf, "\n") {
		toks := refindTokens(line)
		if len(toks) == 0 {
			continue
		}
		switch {
		case cur == nil && toks[0] == "menuentry":
			if len(toks) < 3 || toks[len(toks)-1] != "{" {
				return nil, fmt.Errorf("line %d: %q: want menuentry TITLE {", n+1, line)
			}
			cur = &Entry{Title: strings.Join(toks[1:len(toks)-1], " ")}
		case cur == nil:
		case toks[len(toks)-1] == "{":
			depth++
		case toks[0] == "}" && depth > 0:
			depth--
		case toks[0] == "}":
			entries = append(entries, *cur)
			cur = nil
		case depth > 0 || len(toks) < 2:
		case toks[0] == "volume":
			cur.Volume.Label = toks[1]
		case toks[0] == "loader":
			cur.Kernel = toks[1]
		case toks[0] == "initrd":
			cur.Initrd = toks[1]
		case toks[0] == "options":
			cur.Cmdline = strings.Join(toks[1:], " ")
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("menuentry %q has no closing }", cur.Title)
	}
	return entries, nil
}

// ParseRefindLinux reads refind_linux.conf: one "title" "options" pair per line.
func ParseRefindLinux(conf string) ([][2]string, error) {
	var out [][2]string
	for n, line := range strings.Split(conf, "\n") {
		toks := refindTokens(line)
		switch len(toks) {
		case 0:
		case 2:
			out = append(out, [2]string{toks[0], toks[1]})
		default:
			return nil, fmt.Errorf("line %d: %q: want \"title\" \"options\"", n+1, line)
		}
	}
	return out, nil
}

// refindTokens splits one line as rEFInd does: separators are white space, '=' and ',' outside
// double quotes; '#' outside quotes starts a comment.
func refindTokens(line string) []string {
	var (
		toks   []string
		cur    strings.Builder
		quoted bool
		inTok  bool
	)
	flush := func() {
		if inTok {
			toks = append(toks, cur.String())
		}
		cur.Reset()
		inTok = false
	}
	for i := 0; i < len(line); i++ { // bytes: separators are ASCII, the rest passes as it is
		switch c := line[i]; {
		case c == '"':
			quoted = !quoted
			inTok = true
		case quoted:
			cur.WriteByte(c)
		case c == '#':
			flush()
			return toks
		case c == ' ' || c == '\t' || c == '\r' || c == '=' || c == ',':
			flush()
		default:
			cur.WriteByte(c)
			inTok = true
		}
	}
	flush()
	return toks
}
