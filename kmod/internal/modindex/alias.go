package modindex

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Alias is one "alias PATTERN MODULE" line of modules.alias, both fields normalised with Name.
type Alias struct {
	Pattern string
	Module  string
}

// ParseAliases reads modules.alias. Blank lines and '#' comments are skipped; any other line must
// be "alias PATTERN MODULE".
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	err := Lines(r, "modules.alias", func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("modules.alias line %d: expected \"alias PATTERN MODULE\", found %q", n, line)
		}
		out = append(out, Alias{Pattern: Name(f[1]), Module: Name(f[2])})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FormatAliases writes aliases back in the modules.alias format.
func FormatAliases(w io.Writer, aliases []Alias) error {
	bw := bufio.NewWriter(w)
	for _, a := range aliases {
		fmt.Fprintf(bw, "alias %s %s\n", a.Pattern, a.Module)
	}
	return bw.Flush()
}

// Match reports whether s matches pattern with fnmatch(3) rules and no flags, which is what
// modprobe applies to modules.alias: '*' matches any run of characters ('/' included), '?' one
// character, "[...]" a set with ranges and '!' or '^' negation, and '\' quotes the next character.
// Callers normalise both sides with Name first.
func Match(pattern, s string) bool {
	// Greedy matching with one backtrack point: on a mismatch after a '*', retry with that star
	// swallowing one more character. Linear-ish and never recursive, so hostile patterns are cheap.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if ok, next, valid := matchBracket(pattern, p, s[i]); valid {
					if ok {
						p, i = next, i+1
						continue
					}
				} else if s[i] == '[' { // an unclosed '[' is an ordinary character
					p, i = p+1, i+1
					continue
				}
			case '\\':
				if p+1 < len(pattern) && pattern[p+1] == s[i] {
					p, i = p+2, i+1
					continue
				}
				if p+1 == len(pattern) && s[i] == '\\' {
					p, i = p+1, i+1
					continue
				}
			default:
				if c == s[i] {
					p, i = p+1, i+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchBracket matches c against the bracket expression starting at pattern[open] == '['. It
// returns whether c is in the set, the index after the closing ']', and false for valid when the
// bracket is never closed.
func matchBracket(pattern string, open int, c byte) (ok bool, next int, valid bool) {
	p := open + 1
	negate := false
	if p < len(pattern) && (pattern[p] == '!' || pattern[p] == '^') {
		negate = true
		p++
	}
	matched := false
	for first := true; p < len(pattern); first = false {
		if pattern[p] == ']' && !first {
			return matched != negate, p + 1, true
		}
		lo := pattern[p]
		if lo == '\\' && p+1 < len(pattern) {
			p++
			lo = pattern[p]
		}
		p++
		hi := lo
		if p+1 < len(pattern) && pattern[p] == '-' && pattern[p+1] != ']' {
			hi = pattern[p+1]
			if hi == '\\' && p+2 < len(pattern) {
				hi = pattern[p+2]
				p++
			}
			p += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return false, 0, false
}
