// Package modindex owns the text formats that the build half (kmod/modtree) writes and the boot
// half (kmod) reads: module-name normalisation, modules.alias lines with their fnmatch-style
// patterns, and the load plan. It imports only the standard library so PID 1 stays small.
package modindex

import "strings"

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
