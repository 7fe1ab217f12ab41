package toplayer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Names and link targets the fuzzer builds trees from: whiteouts, and links that point out of
// the root every way a top layer or an image can spell it.
var (
	fuzzNames   = []string{"a", "b", "lib", ".wh.a", ".wh.lib", ".wh..wh..opq", ".wh.", "..a"}
	fuzzTargets = []string{"/", "..", "../..", "../../outside", "/outside", "a", "../outside/victim", "/lib", "lib/../../.."}
)

// FuzzApply lays a top layer over an image, both built from the fuzzer's bytes, in a sandbox
// beside a folder "outside": whatever the two trees hold, Apply may fail but must not panic, and
// nothing outside the image's root may change.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 1, 2, 1, 2, 0, 0, 0, 0}) // a dir in the image, a symlink over it in src
	f.Add([]byte{1, 2, 2, 3, 0, 1, 2, 0, 1, 0, 1, 1, 5})
	f.Add([]byte{0, 2, 2, 6, 1, 1, 2, 1, 1, 0, 3, 1, 4, 1, 0, 5, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 120 {
			return // trees of a few dozen entries say as much as bigger ones, faster
		}
		base := t.TempDir()
		src, root, outside := filepath.Join(base, "src"), filepath.Join(base, "root"), filepath.Join(base, "outside")
		for _, d := range []string{src, root, outside} {
			must(t, os.Mkdir(d, 0o755))
		}
		must(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("keep\n"), 0o600))
		must(t, os.Mkdir(filepath.Join(outside, "dir"), 0o700))
		before := fingerprint(t, outside)
		for len(ops) >= 4 {
			tree := root
			if ops[0]%2 == 1 {
				tree = src
			}
			build(tree, ops[1]%5, ops[2], ops[3])
			ops = ops[4:]
		}
		_, _ = Apply(src, root)
		if after := fingerprint(t, outside); after != before {
			t.Fatalf("Apply changed what is outside the root:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// build makes one entry of kind k in tree at a path of 1 to 3 names chosen by p, with a link
// target or hardlink source chosen by x. Parents are made as directories; an entry whose parent
// is anything else is not made, so building never goes through a link out of the sandbox.
func build(tree string, k, p, x byte) {
	names := []string{fuzzNames[p%8]}
	for d := p / 8 % 3; d > 0; d-- {
		names = append([]string{fuzzNames[(p/32+d)%8]}, names...)
	}
	dir := tree
	for _, n := range names[:len(names)-1] {
		dir = filepath.Join(dir, n)
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); errors.Is(err, unix.ENOENT) {
			if os.Mkdir(dir, 0o755) != nil {
				return
			}
		} else if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return
		}
	}
	name := filepath.Join(dir, names[len(names)-1])
	if _, err := os.Lstat(name); err == nil {
		return
	}
	switch k {
	case 0:
		_ = os.WriteFile(name, []byte(strings.Repeat("x", int(x))), os.FileMode(0o600|uint32(x)&0o7077))
	case 1:
		_ = os.Mkdir(name, 0o700|os.FileMode(x)&0o077)
	case 2:
		_ = os.Symlink(fuzzTargets[int(x)%len(fuzzTargets)], name)
	case 3:
		_ = os.Link(filepath.Join(tree, fuzzNames[x%8]), name) // fails unless that is a file
	case 4:
		_ = unix.Mkfifo(name, 0o644)
	}
}
