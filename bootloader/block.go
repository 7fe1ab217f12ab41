package bootloader

import (
	"fmt"
	"strings"
)

// The lines around a block Install owns in a user's refind.conf or custom.cfg. Both files take
// '#' comments.
const (
	blockBegin = "# >>> "
	blockEnd   = "# <<< "
	blockNote  = " (mkbootimg install rewrites this block; edit outside it)"
)

// SetBlock returns conf with the block named id set to body: replaced where it is, else
// appended after a blank line. Every other line is kept byte for byte.
func SetBlock(conf, id, body string) (string, error) {
	if id == "" || strings.ContainsAny(id, " \t\n") {
		return "", fmt.Errorf("block name %q: want one word", id)
	}
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	block := blockBegin + id + blockNote + "\n" + body + blockEnd + id + "\n"
	lines := strings.SplitAfter(conf, "\n")
	begin, end := -1, -1
	for i, l := range lines {
		switch l = strings.TrimRight(l, "\r\n"); {
		case isMarker(l, blockBegin, id):
			if begin >= 0 {
				return "", fmt.Errorf("the block %s begins twice (lines %d and %d): remove one by hand", id, begin+1, i+1)
			}
			begin = i
		case isMarker(l, blockEnd, id) && begin >= 0 && end < 0:
			end = i
		}
	}
	switch {
	case begin >= 0 && end < 0:
		return "", fmt.Errorf("the block %s begins on line %d but has no %q line: fix or remove it by hand", id, begin+1, blockEnd+id)
	case begin >= 0:
		return strings.Join(lines[:begin], "") + block + strings.Join(lines[end+1:], ""), nil
	}
	switch {
	case conf == "":
	case strings.HasSuffix(conf, "\n\n"):
	case strings.HasSuffix(conf, "\n"):
		conf += "\n"
	default:
		conf += "\n\n"
	}
	return conf + block, nil
}

// isMarker reports whether line is marker+id, alone or followed by a note.
func isMarker(line, marker, id string) bool {
	rest, ok := strings.CutPrefix(line, marker+id)
	return ok && (rest == "" || rest[0] == ' ')
}
