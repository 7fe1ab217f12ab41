package imagestore

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/dockerinit/dockerinit/internal/smallfile"
)

// graphStore is Docker's graph driver image store:
//
//	image/<driver>/repositories.json              reference -> image ID
//	image/<driver>/imagedb/content/sha256/<hex>   image config, hex = sha256 of it
//	image/<driver>/layerdb/sha256/<chain>/cache-id the layer's folder name
//	<layers>/<cache-id>                           the layer
//
// The drivers differ in where layers live and what a layer holds: a btrfs
// layer, btrfs/subvolumes/<cache-id>, is the whole root file system; an
// overlay2 layer holds only its own changes over the layers below it.
type graphStore struct {
	catalog
	driver string
	dir    string // "image/<driver>"
	// root gives where the layers of the top layer with this cache ID are, relative to the
	// data root, without checking that they exist.
	root func(cacheID string) (Root, error)
}

// catalog is what the stores that index images by ID share: the names and IDs Resolve looks a
// reference up in, Resolve and Images themselves, and Dirs.
type catalog struct {
	loc     location
	fsys    fs.FS               // the store's folder
	store   string              // the store as messages name it, e.g. "the Docker data root /var/lib/docker"
	refs    map[string]string   // reference -> image ID: canonical (parseDockerRef), or as written where it does not parse
	names   map[string][]string // image ID -> familiar names, sorted
	ids     []string            // every image ID, sorted
	inspect string              // the store tool's command that shows an image, e.g. "docker image inspect"
	// localFirst looks a name without a registry up under localhost/ before Docker Hub, as podman
	// resolves a short name to a local image.
	localFirst bool
	// image loads an image, its paths relative to the store's folder, without checking that its
	// layers exist.
	image func(id string) (Image, error)
}

// damaged is the advice for anything Docker itself would never have written.
const damaged = "the image store looks damaged; check it with `docker image ls` and pull or build the image again"

// The largest metadata files read, far above what Docker writes, so that a damaged or hostile
// store cannot fill the memory of the initramfs (see smallfile.Read).
const (
	repositoriesLimit = 64 << 20 // about 150 bytes a tag: 400,000 tags
	configLimit       = 16 << 20 // a few KiB, history and labels included
	cacheIDLimit      = 4 << 10  // one folder name, 64 hex digits
)

// openGraph opens the btrfs graph driver's store, whose layers are subvolumes in layers.
func openGraph(l location, driver, layers string) (*graphStore, error) {
	return newGraph(l, driver, func(cacheID string) (Root, error) {
		return Root{Kind: Snapshot, Dir: layers, Layers: []string{cacheID}}, nil
	})
}

// newGraph reads the image index of a graph driver's store; root tells where the driver keeps a
// layer.
func newGraph(l location, driver string, root func(cacheID string) (Root, error)) (*graphStore, error) {
	fsys := l.sub()
	s := &graphStore{driver: driver, dir: "image/" + driver, root: root, catalog: catalog{
		loc: l, fsys: fsys, store: "the Docker data root " + l.shown(), inspect: "docker image inspect", refs: map[string]string{}, names: map[string][]string{}}}
	s.image = s.load
	if err := s.readRepositories(); err != nil {
		return nil, err
	}
	content := s.dir + "/imagedb/content/sha256"
	entries, err := fs.ReadDir(fsys, content)
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // a fresh Docker has no images yet
		return nil, fmt.Errorf("list images in %s: %w", content, err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && isHex(e.Name()) && len(e.Name()) == 64 {
			s.ids = append(s.ids, "sha256:"+e.Name())
		}
	}
	return s, nil
}

func (s *graphStore) readRepositories() error {
	p := s.dir + "/repositories.json"
	data, err := smallfile.Read(s.fsys, p, repositoriesLimit)
	if errors.Is(err, fs.ErrNotExist) { // nothing tagged yet
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the image names: %w: %s", err, damaged)
	}
	var rj struct {
		Repositories map[string]map[string]string
	}
	if err := json.Unmarshal(data, &rj); err != nil {
		return fmt.Errorf("%s: %w; expected {\"Repositories\":{\"name\":{\"name:tag\":\"sha256:<id>\"}}}: %s", p, err, damaged)
	}
	// Sorted, so that when two entries mean the same reference the same one
	// wins every time.
	type entry struct{ key, id string }
	var entries []entry
	for _, tags := range rj.Repositories {
		for key, id := range tags {
			entries = append(entries, entry{key, id})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.id, b.id))
	})
	for _, e := range entries {
		named, err := parseDockerRef(e.key)
		if err != nil {
			return fmt.Errorf("%s: %q is not an image reference (%w): %s", p, e.key, err, damaged)
		}
		if !isImageID(e.id) {
			return fmt.Errorf("%s: %q maps to %q, not an image ID sha256:<64 hex>: %s", p, e.key, e.id, damaged)
		}
		if _, dup := s.refs[named.String()]; !dup {
			s.refs[named.String()] = e.id
			s.names[e.id] = append(s.names[e.id], named.Familiar())
		}
	}
	for _, n := range s.names {
		slices.Sort(n)
	}
	return nil
}

func (s *graphStore) Kind() string { return "Docker's " + s.driver + " storage driver" }

func (c *catalog) Dirs() []string { return []string{c.loc.dir} }

func (c *catalog) Resolve(ref string) (Image, error) {
	id, err := c.lookup(ref)
	if err != nil {
		return Image{}, err
	}
	img, err := c.image(id)
	if lm := (*LayerMissingError)(nil); errors.As(err, &lm) {
		lm.Ref, lm.Inspect = ref, c.inspect+" "+ref
		return Image{}, lm
	}
	if err != nil {
		return Image{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if img.Layer == "" {
		return Image{}, fmt.Errorf("resolve %s: image %s has no layers (its rootfs.diff_ids is empty), so there is no file system to boot; build it FROM a base image",
			ref, shortID(id))
	}
	for _, p := range img.Root.Paths() {
		if fi, err := fs.Stat(c.fsys, p); err != nil || !fi.IsDir() {
			return Image{}, &LayerMissingError{Ref: ref, ImageID: id, ChainID: img.ChainID, Path: c.loc.rel(p), Inspect: c.inspect + " " + ref}
		}
	}
	img.Layer = c.loc.rel(img.Layer)
	img.Root.Dir = c.loc.rel(img.Root.Dir)
	return img, nil
}

func (c *catalog) Images() ([]Image, error) {
	images := make([]Image, 0, len(c.ids))
	for _, id := range c.ids {
		img, err := c.image(id)
		if pe := (*PlatformError)(nil); errors.As(err, &pe) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		img.Layer = c.loc.rel(img.Layer)
		img.Root.Dir = c.loc.rel(img.Root.Dir)
		images = append(images, img)
	}
	sortImages(images)
	return images, nil
}

// lookup finds the image ID ref names: an ID, a name, or an ID prefix. Names win over prefixes.
func (c *catalog) lookup(ref string) (string, error) {
	if h, ok := strings.CutPrefix(ref, "sha256:"); ok {
		return c.byID(ref, h)
	}
	if len(ref) == 64 && isHex(ref) {
		return c.byID(ref, ref)
	}
	named, perr := parseDockerRef(ref)
	if perr == nil && c.localFirst && named.domain == hubDomain &&
		!strings.HasPrefix(ref, hubDomain+"/") && !strings.HasPrefix(ref, legacyHubDomain+"/") {
		if local, err := parseDockerRef("localhost/" + ref); err == nil {
			if id, ok := c.refs[local.String()]; ok {
				return id, nil
			}
		}
	}
	key := ref // a name the store keeps as written, which parseDockerRef refuses
	if perr == nil {
		key = named.String()
	}
	if id, ok := c.refs[key]; ok {
		return id, nil
	}
	if len(ref) >= 4 && isHex(ref) {
		return c.byID(ref, ref)
	}
	if perr != nil {
		return "", fmt.Errorf("%q is not an image reference: %w; expected NAME[:TAG], NAME@sha256:<hex> or an image ID", ref, perr)
	}
	return "", &NotFoundError{Ref: ref, Store: c.store, Images: c.brief(c.ids)}
}

// byID finds the image whose ID is or starts with the hex digits h.
func (c *catalog) byID(ref, h string) (string, error) {
	if len(h) < 4 || len(h) > 64 || !isHex(h) {
		return "", fmt.Errorf("%q is not an image ID: expected sha256: and 4 to 64 lowercase hex digits", ref)
	}
	var matches []string
	for _, id := range c.ids {
		if strings.HasPrefix(id, "sha256:"+h) {
			matches = append(matches, id)
		}
	}
	switch len(matches) {
	case 0:
		return "", &NotFoundError{Ref: ref, Store: c.store, Images: c.brief(c.ids)}
	case 1:
		return matches[0], nil
	}
	return "", &AmbiguousError{Ref: ref, Matches: c.brief(matches)}
}

// brief gives images with only ID and Names, which needs no config reads,
// for error messages.
func (c *catalog) brief(ids []string) []Image {
	images := make([]Image, 0, len(ids))
	for _, id := range ids {
		images = append(images, Image{ID: id, Names: c.names[id]})
	}
	sortImages(images)
	return images
}

// load reads an image's config and finds its top layer, without checking
// that the layer's folder exists.
func (s *graphStore) load(id string) (Image, error) {
	img := Image{ID: id, Names: s.names[id]}
	p := s.dir + "/imagedb/content/sha256/" + strings.TrimPrefix(id, "sha256:")
	data, err := smallfile.Read(s.fsys, p, configLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return Image{}, fmt.Errorf("image %s has no config %s: %s", shortID(id), p, damaged)
	}
	if err != nil {
		return Image{}, fmt.Errorf("read image config: %w: %s", err, damaged)
	}
	if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != id {
		return Image{}, fmt.Errorf("image config %s does not hash to its ID: %s", p, damaged)
	}
	var config struct {
		Created time.Time `json:"created"`
		RootFS  struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(data, &config); err != nil {
		return Image{}, fmt.Errorf("image config %s: %w: %s", p, err, damaged)
	}
	img.Created = config.Created
	for _, d := range config.RootFS.DiffIDs {
		if !isImageID(d) {
			return Image{}, fmt.Errorf("image config %s: diff ID %q is not sha256:<64 hex>: %s", p, d, damaged)
		}
	}
	if len(config.RootFS.DiffIDs) == 0 {
		return img, nil
	}
	img.ChainID = chainID(config.RootFS.DiffIDs)
	cachePath := s.dir + "/layerdb/sha256/" + strings.TrimPrefix(img.ChainID, "sha256:") + "/cache-id"
	cache, err := smallfile.Read(s.fsys, cachePath, cacheIDLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return Image{}, &LayerMissingError{Ref: id, ImageID: id, ChainID: img.ChainID, Path: s.loc.rel(cachePath)}
	}
	if err != nil {
		return Image{}, fmt.Errorf("read layer cache ID: %w: %s", err, damaged)
	}
	cacheID := strings.TrimSpace(string(cache))
	if !isName(cacheID) {
		return Image{}, fmt.Errorf("%s holds %q, not a layer folder name: %s", cachePath, cacheID, damaged)
	}
	if img.Root, err = s.root(cacheID); err != nil {
		if lm := (*LayerMissingError)(nil); errors.As(err, &lm) { // the driver's folder of the layer
			lm.Ref, lm.ImageID, lm.ChainID = id, id, img.ChainID
		}
		return Image{}, err
	}
	img.Layer = img.Root.Paths()[0]
	return img, nil
}

// chainID identifies a stack of layers by their diff IDs, as the OCI image
// spec defines: the first layer's chain ID is its diff ID, and each next is
// sha256 of "<parent chain ID> <diff ID>".
func chainID(diffIDs []string) string {
	chain := diffIDs[0]
	for _, d := range diffIDs[1:] {
		sum := sha256.Sum256([]byte(chain + " " + d))
		chain = "sha256:" + hex.EncodeToString(sum[:])
	}
	return chain
}

// isName reports whether s can name a folder inside another: not empty, ".", ".." or with a '/'.
func isName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

func isImageID(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(h) == 64 && isHex(h)
}

// isHex reports whether s is lowercase hex digits, as Docker writes them.
func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}
