// Package bootparam owns the boot parameters of dockerinit: it parses the
// kernel command line, /etc/dockerinit.toml and the origin project's
// /etc/docker-btrfs.json, and merges them (command line > TOML > legacy
// JSON > defaults) into one validated Params.
//
// It imports only the standard library and BurntSushi/toml because it is
// linked into the init binary.
package bootparam

import "strings"

// Cmdline is a kernel command line split into parameters, in order.
type Cmdline struct {
	Params []Param  // the parameters before a lone "--"
	Init   []string // the words after a lone "--": they belong to init
}

// Param is one word of the kernel command line with its quotes removed.
type Param struct {
	Key      string
	Value    string
	HasValue bool // false for a bare word such as "rw" (a flag)
}

// ParseCmdline splits a kernel command line the way the kernel does: words
// are separated by white space outside double quotes, a word is KEY or
// KEY=VALUE, and quotes around the word or the value are removed
// (a="b c" has the value "b c"). Parsing stops at a lone "--"; the words
// after it are returned in Init. Words with an empty key are dropped.
func ParseCmdline(s string) Cmdline {
	var c Cmdline
	afterDashes := false
	for {
		var word string
		word, s = nextWord(s)
		if word == "" {
			return c
		}
		p := splitWord(word)
		switch {
		case afterDashes:
			c.Init = append(c.Init, p.String())
		case p.Key == "--" && !p.HasValue:
			afterDashes = true
		case p.Key != "":
			c.Params = append(c.Params, p)
		}
	}
}

// Lookup returns the last occurrence of key: on a kernel command line the
// last one wins.
func (c Cmdline) Lookup(key string) (Param, bool) {
	for i := len(c.Params) - 1; i >= 0; i-- {
		if c.Params[i].Key == key {
			return c.Params[i], true
		}
	}
	return Param{}, false
}

// String gives the parameter back as init would see it: KEY or KEY=VALUE,
// without quotes.
func (p Param) String() string {
	if !p.HasValue {
		return p.Key
	}
	return p.Key + "=" + p.Value
}

// String writes c back as a kernel command line that ParseCmdline reads as c.
func (c Cmdline) String() string { return strings.Join(c.Words(), " ") }

// Words are c's words as the kernel reads them: a word holding white space is double-quoted
// (the kernel has no escape, so a word holding a double quote cannot come back whole).
func (c Cmdline) Words() []string {
	words := make([]string, 0, len(c.Params)+1+len(c.Init))
	for _, p := range c.Params {
		words = append(words, quoteWord(p.String()))
	}
	if len(c.Init) > 0 {
		words = append(words, "--")
		for _, w := range c.Init {
			words = append(words, quoteWord(w))
		}
	}
	return words
}

// quoteWord quotes the value of KEY=VALUE, or else the whole word, when it holds white space.
func quoteWord(w string) string {
	if w == "" {
		return `""`
	}
	if !strings.ContainsAny(w, spaces) {
		return w
	}
	if key, value, ok := strings.Cut(w, "="); ok && key != "" && !strings.ContainsAny(key, spaces) {
		return key + `="` + value + `"`
	}
	return `"` + w + `"`
}

// nextWord returns the first word of s (quotes kept) and what follows it.
// It returns an empty word when s holds only white space.
func nextWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, spaces)
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			inQuote = !inQuote
		case !inQuote && strings.IndexByte(spaces, s[i]) >= 0:
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// spaces is the kernel's isspace() for ASCII; /proc/cmdline ends in '\n'.
const spaces = " \t\n\v\f\r"

// splitWord removes the quotes of one word: a quote opening the word or
// the value, and then one closing quote at its end.
func splitWord(w string) Param {
	quoted := strings.HasPrefix(w, `"`)
	if quoted {
		w = w[1:]
	}
	key, value, hasValue := strings.Cut(w, "=")
	if hasValue && strings.HasPrefix(value, `"`) {
		value = value[1:]
		quoted = true
	}
	if quoted {
		if hasValue {
			value = strings.TrimSuffix(value, `"`)
		} else {
			key = strings.TrimSuffix(key, `"`)
		}
	}
	return Param{Key: key, Value: value, HasValue: hasValue}
}

// Seal returns the command line to boot with when sealed, the one signed into the UKI, is set
// (else actual, unchanged), and the words of actual, the one the kernel got, that sealed does not
// hold anywhere: those the boot ignores, for the message that says so.
func Seal(sealed, actual string) (cmdline string, ignored []string) {
	if sealed == "" {
		return actual, nil
	}
	own := map[string]bool{}
	for _, w := range words(sealed) {
		own[w] = true
	}
	for _, w := range words(actual) {
		if !own[w] {
			ignored = append(ignored, w)
		}
	}
	return sealed, ignored
}

// words splits a command line into its words, quotes kept, as nextWord reads them.
func words(s string) []string {
	var out []string
	for {
		var w string
		if w, s = nextWord(s); w == "" {
			return out
		}
		out = append(out, w)
	}
}
