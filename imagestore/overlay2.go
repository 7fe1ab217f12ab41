package imagestore

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/dockerinit/dockerinit/internal/smallfile"
)

// Docker's overlay2 driver and containers-storage's overlay driver keep a layer alike, in their
// folder home (overlay2/, overlay/):
//
//	home/<id>/diff     the layer's own changes
//	home/<id>/link     its short name: 26 characters of [A-Z2-7], no newline
//	home/<id>/lower    the short links of the layers below, "l/AAA:l/BBB", uppermost first;
//	                   absent for the bottom layer
//	home/l/<short>     a symlink to ../<id>/diff
//
// Both mount from inside home with the short links, so that 128 layers fit the kernel's one page
// of mount options; a Root of Dir home and the short links does the same. Whiteouts are
// overlayfs' own (0/0 character devices, the opaque xattr), which the kernel reads as they are.

const (
	shortLen   = 26       // the drivers' idLength
	linkLimit  = 1 << 10  // one short name
	lowerLimit = 64 << 10 // containers-storage allows 500 lower layers of 29 bytes; Docker 128
)

// openOverlay2 opens the store of Docker's overlay2 graph driver, whose layers are in overlay2/.
func openOverlay2(l location) (Store, error) {
	fsys := l.sub()
	s, err := newGraph(l, "overlay2", func(cacheID string) (Root, error) {
		return overlayRoot(l, fsys, "overlay2", cacheID, damaged)
	})
	if err != nil { // not a nil *graphStore in a non-nil Store
		return nil, err
	}
	return s, nil
}

// overlayRoot gives the layers of the layer id of an overlay driver whose folder is home in fsys,
// the store's folder at l: its own short link, then those of its lower file. It checks what it
// reads: the short names, and that each link that exists points at a layer's diff folder in home,
// so that the mount stays inside the store; a link that does not exist is left to Resolve, which
// names it as missing. advice ends the messages of what the driver itself never writes.
func overlayRoot(l location, fsys fs.FS, home, id, advice string) (Root, error) {
	dir := path.Join(home, id)
	linkFile := dir + "/link"
	own, err := smallfile.Read(fsys, linkFile, linkLimit)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := fs.Stat(fsys, dir); errors.Is(serr, fs.ErrNotExist) {
			return Root{}, &LayerMissingError{Path: l.rel(dir)}
		}
		return Root{}, fmt.Errorf("layer folder %s has no link file (its short name): %s", l.rel(dir), advice)
	}
	if err != nil {
		return Root{}, fmt.Errorf("read the layer's short name: %w: %s", err, advice)
	}
	if !isShortName(string(own)) {
		return Root{}, fmt.Errorf("%s holds %q, not a short name of %d capital letters and digits: %s", l.rel(linkFile), own, shortLen, advice)
	}
	if err := checkLink(l, fsys, home, string(own), id, advice); err != nil {
		return Root{}, err
	}
	root := Root{Kind: Overlay, Dir: home, Layers: []string{"l/" + string(own)}}

	lowerFile := dir + "/lower"
	lower, err := smallfile.Read(fsys, lowerFile, lowerLimit)
	if errors.Is(err, fs.ErrNotExist) { // the bottom layer
		return root, nil
	}
	if err != nil {
		return Root{}, fmt.Errorf("read the layers below: %w: %s", err, advice)
	}
	seen := map[string]bool{string(own): true}
	for entry := range strings.SplitSeq(string(lower), ":") {
		short, ok := strings.CutPrefix(entry, "l/")
		if !ok || !isShortName(short) {
			return Root{}, fmt.Errorf("%s names %q, not a short link l/<%d capital letters and digits>: %s", l.rel(lowerFile), entry, shortLen, advice)
		}
		if seen[short] {
			return Root{}, fmt.Errorf("%s names l/%s twice, or this layer itself: %s", l.rel(lowerFile), short, advice)
		}
		seen[short] = true
		if err := checkLink(l, fsys, home, short, "", advice); err != nil {
			return Root{}, err
		}
		root.Layers = append(root.Layers, entry)
	}
	return root, nil
}

// checkLink checks that the short link home/l/short, if it exists, is a symlink to
// ../<a layer>/diff, and to ../id/diff when id is not empty.
func checkLink(l location, fsys fs.FS, home, short, id, advice string) error {
	p := home + "/l/" + short
	target, err := fs.ReadLink(fsys, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		if fi, lerr := fs.Lstat(fsys, p); lerr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("short link %s is not a symbolic link (its mode is %v): %s", l.rel(p), fi.Mode(), advice)
		}
		return fmt.Errorf("short link %s: %w: %s", l.rel(p), err, advice)
	}
	layer, ok := strings.CutPrefix(target, "../")
	layer, ok2 := strings.CutSuffix(layer, "/diff")
	if !ok || !ok2 || !isName(layer) || id != "" && layer != id {
		want := "../<layer>/diff"
		if id != "" {
			want = "../" + id + "/diff"
		}
		return fmt.Errorf("short link %s points to %q, not %s: %s", l.rel(p), target, want, advice)
	}
	return nil
}

// isShortName reports whether s is a short link name as the drivers make them (base32).
func isShortName(s string) bool {
	return len(s) == shortLen && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == ""
}
