package initramfs

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// List writes a line for each entry, like `cpio -tv`: mode, owner, size (major, minor for a
// device), path and symlink target. When there are several archives, each starts with a line
// saying where it is and how it is compressed.
func List(w io.Writer, archives []Archive) error {
	for i, a := range archives {
		if len(archives) > 1 {
			if _, err := fmt.Fprintf(w, "# archive %d of %d at byte %d (%s): %d entries\n",
				i+1, len(archives), a.Offset, describeCompression(a.Compression), len(a.Entries)); err != nil {
				return err
			}
		}
		for _, e := range a.Entries {
			size := fmt.Sprint(len(e.Data))
			switch {
			case e.Mode&fs.ModeDevice != 0:
				size = fmt.Sprintf("%d, %d", e.Major, e.Minor)
			case e.Mode&fs.ModeSymlink != 0:
				size = fmt.Sprint(len(e.Target))
			}
			name := e.Path
			if e.Mode&fs.ModeSymlink != 0 {
				name += " -> " + e.Target
			}
			if _, err := fmt.Fprintf(w, "%s %5d %5d %10s %s\n", ModeString(e.Mode), e.UID, e.GID, size, name); err != nil {
				return err
			}
		}
	}
	return nil
}

func describeCompression(c string) string {
	if c == "none" {
		return "uncompressed"
	}
	return c + "-compressed"
}

// ModeString renders m as ls does ("drwxr-xr-x", "crw-------", "-rwsr-xr-x"); fs.FileMode's own
// String marks devices with two letters.
func ModeString(m fs.FileMode) string {
	t := byte('-')
	switch {
	case m.IsDir():
		t = 'd'
	case m&fs.ModeSymlink != 0:
		t = 'l'
	case m&fs.ModeCharDevice != 0:
		t = 'c'
	case m&fs.ModeDevice != 0:
		t = 'b'
	case m&fs.ModeNamedPipe != 0:
		t = 'p'
	case m&fs.ModeSocket != 0:
		t = 's'
	}
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := func(i int, bit fs.FileMode, c byte) {
		if m&bit == 0 {
			return
		}
		if b[i] == '-' {
			c -= 'a' - 'A' // set without x: capital, as ls shows it
		}
		b[i] = c
	}
	special(3, fs.ModeSetuid, 's')
	special(6, fs.ModeSetgid, 's')
	special(9, fs.ModeSticky, 't')
	return string(b)
}

// NotFoundError is a path that is not in the archive, with the closest ones that are.
type NotFoundError struct {
	Path    string
	Closest []string
}

func (e *NotFoundError) Error() string {
	msg := e.Path + " is not in the archive"
	if len(e.Closest) > 0 {
		msg += "; closest: " + strings.Join(e.Closest, ", ")
	}
	return msg + " (mkbootimg ls lists every entry)"
}

// maxHops bounds symlink resolution, as the kernel's 40 does.
const maxHops = 40

// Find returns the regular file at p as the kernel would leave it unpacked: a later entry
// replaces an earlier one, and symlinks in the archive are followed (an absolute target starts at
// the archive's root). A missing path is a *NotFoundError.
func Find(entries []Entry, p string) (Entry, error) {
	byPath := map[string]Entry{}
	dirs := map[string]bool{} // parents of entries, which need no entry of their own
	for _, e := range entries {
		c := cleanPath(e.Path)
		if c == "" {
			continue
		}
		byPath[c] = e
		for d := path.Dir(c); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	notFound := func() error { return &NotFoundError{Path: p, Closest: closest(byPath, cleanPath(p))} }
	rest := splitPath(p)
	cur := "" // resolved so far, relative to the root
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			cur = parentOf(cur)
			continue
		}
		next := path.Join(cur, c)
		e, ok := byPath[next]
		switch {
		case !ok && dirs[next]:
			cur = next
		case !ok:
			return Entry{}, notFound()
		case e.Mode&fs.ModeSymlink != 0:
			if hops++; hops > maxHops {
				return Entry{}, fmt.Errorf("%s: more than %d symlinks to follow: there is a loop", p, maxHops)
			}
			if strings.HasPrefix(e.Target, "/") {
				cur = ""
			}
			rest = append(splitPath(e.Target), rest...)
		case len(rest) > 0 && !e.Mode.IsDir():
			return Entry{}, fmt.Errorf("%s: %s is not a directory", p, next)
		default:
			cur = next
		}
	}
	e, ok := byPath[cur]
	switch {
	case cur == "" || dirs[cur] && !ok || e.Mode.IsDir():
		return Entry{}, fmt.Errorf("%s is a directory; mkbootimg ls lists its entries", p)
	case !e.Mode.IsRegular():
		return Entry{}, fmt.Errorf("%s is not a regular file but %s", p, ModeString(e.Mode))
	}
	return e, nil
}

// cleanPath turns an entry's name ("./usr/bin", "/init", "etc/") into the form Find compares
// ("usr/bin", "init", "etc"); the root is "".
func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// splitPath gives p's components without empty and "." ones; ".." stays, to be resolved.
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// parentOf is cur's parent; the root is its own parent.
func parentOf(cur string) string {
	if d := path.Dir(cur); d != "." {
		return d
	}
	return ""
}

// closest returns up to three paths most like p: the same file name elsewhere first, then the
// fewest edits, as long as fewer than half of p changes.
func closest(byPath map[string]Entry, p string) []string {
	type cand struct {
		path     string
		sameBase bool
		dist     int
	}
	var cands []cand
	for q, e := range byPath {
		if e.Mode.IsDir() {
			continue
		}
		c := cand{q, path.Base(q) == path.Base(p), editDistance(p, q)}
		if c.sameBase || c.dist <= len(p)/2 {
			cands = append(cands, c)
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.sameBase != b.sameBase {
			return a.sameBase
		}
		if a.dist != b.dist {
			return a.dist < b.dist
		}
		return a.path < b.path
	})
	var out []string
	for _, c := range cands[:min(3, len(cands))] {
		out = append(out, c.path)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
