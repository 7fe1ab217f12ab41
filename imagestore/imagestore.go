// Package imagestore owns reading image stores: it resolves an image reference (name:tag,
// name@digest, image ID or ID prefix) to where the image's layers are on disk and how a root is
// made from them (Root: a btrfs subvolume to snapshot, or layers to stack with overlayfs). It
// only reads.
//
// Store is the interface; each store is one backend, picked by Open from what the folder holds:
// Docker's graph drivers (graph.go: btrfs; overlay2.go), containerd with its btrfs and overlayfs
// snapshotters, Docker's containerd image store among them (containerd.go), and
// containers-storage with its overlay and btrfs drivers (storage.go).
package imagestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Image is one image of a store.
type Image struct {
	ID      string    // "sha256:<64 hex>", the digest of the image config
	Names   []string  // familiar "name:tag" / "name@sha256:..." references, sorted
	ChainID string    // chain ID of the top layer; empty for an image without layers
	Created time.Time // the config's "created"
	Layer   string    // the top layer's folder, slash path relative to the file system's top; empty without layers
	Root    Root      // how the booted root is made from the layers; zero without layers
}

// RootKind says how a store keeps an image's file system, and so how a booted root is made from it.
type RootKind int

const (
	// Snapshot: Root.Layers[0] is a btrfs subvolume holding the whole root file system; a
	// snapshot of it is the booted root (Docker's btrfs driver, containerd's btrfs snapshotter,
	// containers-storage's btrfs driver). O(1) whatever the image's size.
	Snapshot RootKind = iota + 1
	// Overlay: Root.Layers are the image's layer folders, the uppermost first, which overlayfs
	// stacks read-only under a fresh upper folder.
	Overlay
)

func (k RootKind) String() string {
	switch k {
	case Snapshot:
		return "btrfs snapshot"
	case Overlay:
		return "overlayfs"
	}
	return "no root"
}

// Root is where an image's layers are. Layers are relative to Dir, and Dir to the top of the file
// system that holds the store: an overlay mount made from inside Dir names each layer by a short
// path (the stores' own short links where they have them), so that 128 layers stay within the
// kernel's one-page limit on mount options.
type Root struct {
	Kind   RootKind
	Dir    string   // slash path relative to the file system's top, "." for the top itself
	Layers []string // slash paths relative to Dir; Snapshot: exactly one
}

// Paths gives the layer folders relative to the file system's top, the uppermost first.
func (r Root) Paths() []string {
	out := make([]string, len(r.Layers))
	for i, l := range r.Layers {
		out[i] = path.Join(r.Dir, l)
	}
	return out
}

// Store is the images of one image store.
type Store interface {
	// Kind names the store and its driver for people, e.g. "Docker's btrfs storage driver".
	Kind() string
	// Dirs are the store's folders, relative to the file system's top: everything it keeps is
	// under them, and nothing under them is ever written by dockerinit.
	Dirs() []string
	// Resolve finds the image ref names and checks that its layers exist.
	// ref is a reference as users write it (desktop,
	// desktop:latest, docker.io/library/desktop, registry:5000/team/x:1,
	// x@sha256:<hex>), an image ID (sha256:<hex> or bare hex) or a unique
	// prefix of at least 4 hex digits of one; names are tried first.
	Resolve(ref string) (Image, error)
	// Images lists every image: named ones sorted by first name, then
	// unnamed ones by ID.
	Images() ([]Image, error)
}

// Options are what Open cannot tell from the disk.
type Options struct {
	// Namespace is the containerd namespace whose images are booted; empty means "moby", the
	// one Docker's containerd image store uses.
	Namespace string
}

// DefaultNamespace is Docker's containerd namespace.
const DefaultNamespace = "moby"

// location is where a store is: fsys is the file system's top (host: "/"; initramfs: the
// mounted top level), dir the store's folder in it. host is fsys's path on this machine, for
// what needs a real file (containerd's bbolt database); empty in tests with an in-memory fs.
type location struct {
	fsys fs.FS
	host string
	dir  string
}

// sub is the store's folder as an fs.FS. On this machine it is an os.DirFS of its own: fs.Sub's
// wrapper has no Stat, and a Stat that opens the file blocks on a fifo (see smallfile.Read).
func (l location) sub() fs.FS {
	if l.dir == "." {
		return l.fsys
	}
	if l.host != "" {
		return os.DirFS(filepath.Join(l.host, filepath.FromSlash(l.dir)))
	}
	sub, err := fs.Sub(l.fsys, l.dir)
	if err != nil { // only for an invalid dir, which Open refuses first
		return l.fsys
	}
	return sub
}

// rel gives p, relative to the store's folder, relative to the file system's top; "" stays "".
func (l location) rel(p string) string {
	if p == "" {
		return ""
	}
	return path.Join(l.dir, p)
}

// shown is the store's folder as messages give it: a path from the file system's top.
func (l location) shown() string { return path.Clean("/" + l.dir) }

// ErrNotStore is returned by Open for a folder that holds no image store of any kind.
var ErrNotStore = errors.New("not an image store")

// UnsupportedError is returned by Open for a store whose images dockerinit cannot boot from.
type UnsupportedError struct {
	Store string   // "the Docker data root", "the containers-storage root", "the containerd root"
	Found []string // what keeps its images, e.g. "the zfs storage driver"
	Fix   string   // what to change
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s keeps its images with %s, which dockerinit cannot boot from; %s",
		e.Store, strings.Join(e.Found, ", "), e.Fix)
}

// unsupportedFix is what to tell users of a Docker graph driver dockerinit cannot boot from.
const unsupportedFix = "dockerinit boots Docker's btrfs and overlay2 storage drivers and its containerd image store: " +
	"set {\"storage-driver\": \"overlay2\"} (or btrfs on a btrfs file system) in /etc/docker/daemon.json, restart Docker and pull or build the image again"

// PlatformError says that a multi-platform image holds nothing for this machine's platform, or
// holds it only in name (only other platforms were pulled): it cannot boot here, and Images
// leaves it out, as `docker images` shows what runs here.
type PlatformError struct{ Reason string }

func (e *PlatformError) Error() string { return e.Reason }

// NotFoundError is returned by Resolve when no image matches.
type NotFoundError struct {
	Ref    string
	Store  string  // the store's Kind
	Images []Image // the store's images, ID and Names only
}

func (e *NotFoundError) Error() string {
	if len(e.Images) == 0 {
		return fmt.Sprintf("image %q not found: %s holds no images; build or pull it first", e.Ref, e.Store)
	}
	return fmt.Sprintf("image %q not found; %s holds:%s\npass one of these, or build or pull %q first",
		e.Ref, e.Store, describe(e.Images), e.Ref)
}

// AmbiguousError is returned by Resolve when an ID prefix matches several
// images.
type AmbiguousError struct {
	Ref     string
	Matches []Image // ID and Names only
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("image ID prefix %q matches %d images:%s\ngive more digits or a name",
		e.Ref, len(e.Matches), describe(e.Matches))
}

// LayerMissingError is returned by Resolve when the store lacks what an image needs: a layer's
// record or its folder.
type LayerMissingError struct {
	Ref     string
	ImageID string
	ChainID string
	Path    string // what is missing, relative to the file system's top
	Inspect string // the store tool's command that shows the image, e.g. "docker image inspect desktop"
}

func (e *LayerMissingError) Error() string {
	inspect := e.Inspect
	if inspect == "" {
		inspect = "the store's own tool (docker, podman or ctr)"
	} else {
		inspect = "`" + inspect + "`"
	}
	return fmt.Sprintf("image %q (%s): its layer %s is missing: %s does not exist; "+
		"the image store looks damaged: check the image with %s, and pull or build it again",
		e.Ref, shortID(e.ImageID), shortID(e.ChainID), e.Path, inspect)
}

// Open returns the image store in the folder dir (e.g. "var/lib/docker") of the file system whose
// top is the folder top of this machine ("/" on the build host, the mounted root file system in
// the initramfs). What the folder holds picks the backend:
//   - a Docker data root: its containerd image store when the containerd beside it (dockerd's
//     own, dir/containerd/daemon, or the system's, dir/../containerd) holds images in the
//     namespace; otherwise its graph driver (btrfs, overlay2);
//   - a containerd root (io.containerd.metadata.v1.bolt), for the namespace;
//   - a containers-storage root (podman, buildah, CRI-O) with the overlay or btrfs driver.
//
// It fails with *UnsupportedError for a store of another driver, and ErrNotStore for a folder
// that holds none. It only reads.
func Open(top, dir string, o Options) (Store, error) {
	dir = path.Clean("/" + filepath.ToSlash(dir))[1:]
	if dir == "" {
		dir = "."
	}
	return open(location{fsys: os.DirFS(top), host: top, dir: dir}, o)
}

func open(l location, o Options) (Store, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	sub := l.sub()
	if fi, err := fs.Stat(sub, "."); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is no folder (%v)", ErrNotStore, l.shown(), err)
	}
	switch {
	case exists(sub, containerdMetaDB):
		return openContainerd(l, o.Namespace)
	case isContainersStorage(sub):
		return openContainersStorage(l)
	case exists(sub, "image") || exists(sub, "containerd") || beside(l, "containerd", containerdMetaDB):
		// A Docker data root; dockerd 26 and later with the system's containerd
		// (var/lib/containerd) keep neither of the two folders in it.
		return openDocker(l, o.Namespace)
	}
	return nil, fmt.Errorf("%w: %s has no image/ folder (a Docker data root), io.containerd.metadata.v1.bolt (a containerd root) "+
		"or overlay-images/ (a containers-storage root); it holds %s. Point it at the store: /var/lib/docker, /var/lib/containerd or /var/lib/containers/storage",
		ErrNotStore, l.shown(), listing(sub))
}

// openDocker opens a Docker data root: its containerd image store when that has images of the
// namespace, otherwise its graph driver store. dockerd runs a containerd of its own even with a
// graph driver, for containers, so a containerd beside the data root does not mean images are
// kept there; one that cannot be read is reported only when there is no graph store either.
func openDocker(l location, ns string) (Store, error) {
	graph := exists(l.sub(), "image")
	var looked []string
	var cErr error
	for _, c := range []string{l.rel("containerd/daemon"), path.Join(l.dir, "..", "containerd")} {
		if !fs.ValidPath(c) {
			continue
		}
		looked = append(looked, "/"+c)
		if !exists(l.fsys, path.Join(c, containerdMetaDB)) {
			continue
		}
		st, err := openContainerd(location{fsys: l.fsys, host: l.host, dir: c}, ns)
		if err == nil {
			var images []Image
			if images, err = st.Images(); err == nil && (len(images) > 0 || !graph) {
				return st, nil
			}
		}
		if err != nil && cErr == nil {
			cErr = fmt.Errorf("Docker's containerd image store: %w", err)
		}
	}
	if !graph && cErr != nil {
		return nil, cErr
	}
	drivers, err := fs.ReadDir(l.sub(), "image")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no image/ folder (a graph driver store) and no containerd image store: looked for %s in %s",
			ErrNotStore, l.shown(), containerdMetaDB, strings.Join(looked, " and "))
	}
	if err != nil {
		return nil, fmt.Errorf("open Docker data root %s: %w", l.shown(), err)
	}
	var found []string
	for _, d := range drivers {
		if !d.IsDir() {
			continue
		}
		// btrfs first (ReadDir sorts): a data root that had both boots what btrfs holds.
		switch d.Name() {
		case "btrfs":
			st, err := openGraph(l, "btrfs", "btrfs/subvolumes")
			if err != nil {
				return nil, err // not a Store holding a nil *graphStore
			}
			return st, nil
		case "overlay2":
			return openOverlay2(l)
		}
		found = append(found, "the "+d.Name()+" storage driver")
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: %s holds no storage driver folder; has Docker ever run on it?", ErrNotStore, l.rel("image"))
	}
	return nil, &UnsupportedError{Store: "the Docker data root " + l.shown(), Found: found, Fix: unsupportedFix}
}

// beside reports whether the folder next to the store's, dir/../sibling, holds name.
func beside(l location, sibling, name string) bool {
	p := path.Join(l.dir, "..", sibling, name)
	return fs.ValidPath(p) && exists(l.fsys, p)
}

// exists reports whether name exists in fsys.
func exists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}

// listing names a few entries of the root of fsys for error messages.
func listing(fsys fs.FS) string {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return "nothing readable: " + err.Error()
	}
	if len(entries) == 0 {
		return "nothing"
	}
	var names []string
	for _, e := range entries[:min(len(entries), 8)] {
		names = append(names, e.Name())
	}
	if len(entries) > 8 {
		names = append(names, "...")
	}
	return strings.Join(names, ", ")
}

// describe lists images one a line, as "desktop:latest, desktop:v1
// (0123456789ab)", for messages read on a console.
func describe(images []Image) string {
	var b strings.Builder
	for _, img := range images {
		names := "<none>"
		if len(img.Names) > 0 {
			names = strings.Join(img.Names, ", ")
		}
		fmt.Fprintf(&b, "\n  %s (%s)", names, shortID(img.ID))
	}
	return b.String()
}

// shortID is the 12 hex digits Docker shows.
func shortID(id string) string {
	hex := strings.TrimPrefix(id, "sha256:")
	return hex[:min(len(hex), 12)]
}

// sortImages orders named images by first name, then unnamed ones, each by ID.
func sortImages(images []Image) {
	slices.SortFunc(images, func(a, b Image) int {
		if c := compareFirstName(a, b); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func compareFirstName(a, b Image) int {
	switch {
	case len(a.Names) == 0 && len(b.Names) == 0:
		return 0
	case len(a.Names) == 0:
		return 1
	case len(b.Names) == 0:
		return -1
	}
	return strings.Compare(a.Names[0], b.Names[0])
}
