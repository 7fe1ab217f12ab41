// Package imagestore owns reading a Docker data root: it resolves an image
// reference (name:tag, name@digest, image ID or ID prefix) to the image's
// top layer, the file system dockerinit boots. It only reads.
//
// Store is the interface; each Docker storage backend is one
// implementation. Only the btrfs graph driver exists now, where the top
// layer's subvolume holds the whole root file system; overlay2 or a
// containerd snapshotter would add an implementation and be picked by Open.
package imagestore

import (
	"errors"
	"fmt"
	"io/fs"
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
	Layer   string    // the top layer's root file system, slash path relative to the Docker root; empty without layers
}

// Store is the images of one Docker data root.
type Store interface {
	// Driver names the storage backend, e.g. "btrfs".
	Driver() string
	// Resolve finds the image ref names and checks that its top layer
	// exists. ref is a reference as users write it (desktop,
	// desktop:latest, docker.io/library/desktop, registry:5000/team/x:1,
	// x@sha256:<hex>), an image ID (sha256:<hex> or bare hex) or a unique
	// prefix of at least 4 hex digits of one; names are tried first.
	Resolve(ref string) (Image, error)
	// Images lists every image: named ones sorted by first name, then
	// unnamed ones by ID.
	Images() ([]Image, error)
}

// ErrNotDockerRoot is returned by Open for a folder that is not a Docker
// data root at all.
var ErrNotDockerRoot = errors.New("not a Docker data root")

// UnsupportedError is returned by Open for a Docker data root whose images
// live in a store dockerinit cannot boot from.
type UnsupportedError struct {
	Found []string // storage drivers found under image/, or "containerd"
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("the Docker data root keeps its images with %s, but dockerinit boots only images of the btrfs storage driver; "+
		"put the Docker data root on btrfs, set {\"storage-driver\": \"btrfs\"} in /etc/docker/daemon.json, restart Docker and pull or build the image again",
		strings.Join(e.Found, ", "))
}

// NotFoundError is returned by Resolve when no image matches.
type NotFoundError struct {
	Ref    string
	Images []Image // the store's images, ID and Names only
}

func (e *NotFoundError) Error() string {
	if len(e.Images) == 0 {
		return fmt.Sprintf("image %q not found: the Docker data root holds no images; build or pull it first", e.Ref)
	}
	return fmt.Sprintf("image %q not found; the Docker data root holds:%s\npass one of these, or build or pull %q first",
		e.Ref, describe(e.Images), e.Ref)
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

// LayerMissingError is returned by Resolve when the layer store lacks what
// an image needs: its layer's cache-id or the layer's file system.
type LayerMissingError struct {
	Ref     string
	ImageID string
	ChainID string
	Path    string // what is missing, relative to the Docker root
}

func (e *LayerMissingError) Error() string {
	return fmt.Sprintf("image %q (%s): its top layer %s is missing: %s does not exist; "+
		"the image store looks damaged: run `docker image inspect %s`, and pull or build the image again",
		e.Ref, shortID(e.ImageID), shortID(e.ChainID), e.Path, e.Ref)
}

// Open returns the store of the Docker data root docker (e.g.
// os.DirFS("/var/lib/docker")), reading its reference list and image
// index. It fails with *UnsupportedError when the images are kept by
// another storage backend, and ErrNotDockerRoot when docker holds no
// images of any kind.
func Open(docker fs.FS) (Store, error) {
	drivers, err := fs.ReadDir(docker, "image")
	if errors.Is(err, fs.ErrNotExist) {
		if fi, err := fs.Stat(docker, "containerd"); err == nil && fi.IsDir() {
			return nil, &UnsupportedError{Found: []string{"the containerd image store"}}
		}
		return nil, fmt.Errorf("%w: it has no image/ folder (it holds %s); point it at Docker's data root, e.g. /var/lib/docker (docker_path=var/lib/docker)",
			ErrNotDockerRoot, listing(docker))
	}
	if err != nil {
		return nil, fmt.Errorf("open Docker data root: %w", err)
	}
	var found []string
	for _, d := range drivers {
		if !d.IsDir() {
			continue
		}
		if d.Name() == "btrfs" {
			return openGraph(docker, "btrfs", "btrfs/subvolumes")
		}
		found = append(found, "the "+d.Name()+" storage driver")
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: image/ holds no storage driver folder; has Docker ever run on it?", ErrNotDockerRoot)
	}
	return nil, &UnsupportedError{Found: found}
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
