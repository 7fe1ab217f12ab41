// Package modindex owns the text formats that the build half (kmod/modtree) writes and the boot
// half (kmod) reads: module-name normalisation, modules.alias lines with their fnmatch-style
// patterns, and the load plan. It imports only the standard library so PID 1 stays small.
package modindex

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Lines calls fn with the number and the trimmed text of each line of r, the file called file,
// that is neither blank nor a '#' comment; an error from fn stops the read and is returned.
// Lines may be up to 1 MiB long: modules.dep lists whole dependency chains on one line.
func Lines(r io.Reader, file string, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	return nil
}

// Name normalises a module name or alias the way kmod does: '-' and '_' are the same character,
// except inside a bracket expression of a pattern ("[a-z]" keeps its range).
func Name(s string) string {
	if !strings.ContainsRune(s, '-') {
		return s
	}
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}
