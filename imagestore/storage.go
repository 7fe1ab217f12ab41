package imagestore

import (
	"crypto/sha256"
	"encoding/base64"
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

// storageStore is a containers-storage root (podman, buildah, CRI-O; rootful at
// /var/lib/containers/storage), of one driver:
//
//	storage.lock
//	<driver>-images/images.json      [{"id", "digest", "names", "layer" (the top layer), "created",
//	                                   "big-data-digests", ...}]
//	<driver>-images/<id>/=<base64>   big data, named by base64 of its key: the config's key is
//	                                 "sha256:<id>", the image ID being the config's digest
//	<driver>-layers/layers.json      [{"id", "parent", "flags", ...}]: the layers, chained by parent
//	overlay/<layer>/{diff,link,lower}, overlay/l/<short>   as Docker's overlay2 (overlay2.go)
//	btrfs/subvolumes/<layer>         a subvolume holding the whole root file system
//
// Names are full references ("docker.io/library/x:latest", "localhost/x:latest"), and IDs 64 hex
// digits without "sha256:".
type storageStore struct {
	catalog
	platform platform // the one a manifest list is followed for: this machine's
	driver   string
	images   map[string]storageImage // by image ID, "sha256:<hex>"
	layers   map[string]storageLayer // by layer ID
}

// storageImage is what dockerinit reads of an images.json entry.
type storageImage struct {
	ID             string            `json:"id"`
	Digest         string            `json:"digest"`
	Names          []string          `json:"names"`
	Layer          string            `json:"layer"`
	Created        time.Time         `json:"created"`
	BigDataDigests map[string]string `json:"big-data-digests"`
}

// storageLayer is what dockerinit reads of a layers.json entry.
type storageLayer struct {
	ID     string         `json:"id"`
	Parent string         `json:"parent"`
	Flags  map[string]any `json:"flags"`
}

// storageDamaged is the advice for anything containers-storage itself would never have written.
const storageDamaged = "the image store looks damaged; check it with `podman images` and pull or build the image again"

// storageFix is what to tell users of a driver dockerinit cannot boot from.
const storageFix = "dockerinit boots containers-storage's overlay and btrfs drivers: set driver = \"overlay\" (or \"btrfs\" on a btrfs file system) " +
	"in /etc/containers/storage.conf, run `podman system reset` and pull or build the image again"

// storageListLimit bounds images.json and layers.json: about 1 KiB an entry, so 60,000 of them.
const storageListLimit = 64 << 20

// isContainersStorage reports whether fsys is a containers-storage root: it has the store's lock,
// or a <driver>-images folder (Docker's data root has image/).
func isContainersStorage(fsys fs.FS) bool {
	return exists(fsys, "storage.lock") || len(storageDrivers(fsys)) > 0
}

// storageDrivers names the drivers that have a <driver>-images folder in fsys, sorted.
func storageDrivers(fsys fs.FS) []string {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil
	}
	var drivers []string
	for _, e := range entries {
		if d, ok := strings.CutSuffix(e.Name(), "-images"); ok && d != "" && e.IsDir() {
			drivers = append(drivers, d)
		}
	}
	return drivers
}

// openContainersStorage opens a containers-storage root with the overlay or btrfs driver; btrfs
// wins when both have folders, as in a Docker data root (podman itself refuses to change the
// driver of a store that has images).
func openContainersStorage(l location) (Store, error) {
	storeName := "the containers-storage root " + l.shown()
	if strings.Contains(l.shown()+"/", "/.local/share/containers/") {
		return nil, &UnsupportedError{Store: storeName, Found: []string{"a rootless store (in a home folder)"},
			Fix: "rootless stores are not supported: their files belong to the user's subordinate UIDs and GIDs (/etc/subuid), and their layers " +
				"only mount inside the user namespace podman makes; pull or build the image as root (sudo podman) into /var/lib/containers/storage"}
	}
	fsys := l.sub()
	drivers := storageDrivers(fsys)
	var found []string
	for _, d := range drivers {
		if d == "btrfs" || d == "overlay" {
			return newStorage(l, storeName, d)
		}
		found = append(found, "the "+d+" storage driver")
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: %s has no <driver>-images folder (overlay-images, btrfs-images); has podman ever stored an image there? It holds %s",
			ErrNotStore, storeName, listing(fsys))
	}
	return nil, &UnsupportedError{Store: storeName, Found: found, Fix: storageFix}
}

// newStorage reads the image and layer lists of the driver's store.
func newStorage(l location, storeName, driver string) (Store, error) {
	fsys := l.sub()
	if driver == "overlay" {
		// The driver writes "true" here when it mounts with a mount_program (fuse-overlayfs),
		// whose layers may keep whiteouts and owners in its own form, not the kernel's.
		flag, err := smallfile.Read(fsys, "overlay/.has-mount-program", linkLimit)
		if err == nil && strings.TrimSpace(string(flag)) == "true" {
			return nil, &UnsupportedError{Store: storeName, Found: []string{"the overlay driver through a mount_program (fuse-overlayfs)"},
				Fix: "dockerinit mounts layers with the kernel's overlayfs: remove mount_program from /etc/containers/storage.conf, " +
					"run `podman system reset` and pull or build the image again"}
		}
	}
	s := &storageStore{platform: hostPlatform(), driver: driver, images: map[string]storageImage{}, layers: map[string]storageLayer{}, catalog: catalog{
		loc: l, fsys: fsys, store: storeName, inspect: "podman image inspect", refs: map[string]string{}, names: map[string][]string{}, localFirst: true}}
	s.image = s.load
	var images []storageImage
	if err := s.readList(driver+"-images/images.json", &images, `[{"id":"<64 hex>","names":["docker.io/library/x:latest"],"layer":"<layer ID>"}]`); err != nil {
		return nil, err
	}
	var layers []storageLayer
	if err := s.readList(driver+"-layers/layers.json", &layers, `[{"id":"<layer ID>","parent":"<layer ID>"}]`); err != nil {
		return nil, err
	}
	for _, ly := range layers {
		if !isName(ly.ID) {
			return nil, fmt.Errorf("%s: layer ID %q is no folder name: %s", l.rel(driver+"-layers/layers.json"), ly.ID, storageDamaged)
		}
		s.layers[ly.ID] = ly
	}
	for _, img := range images {
		if err := s.add(img); err != nil {
			return nil, err
		}
	}
	slices.Sort(s.ids)
	for _, n := range s.names {
		slices.Sort(n)
	}
	return s, nil
}

// readList reads the JSON list p into v; a list that does not exist is empty, as in a store that
// has never held an image. want shows the expected form in messages.
func (s *storageStore) readList(p string, v any, want string) error {
	data, err := smallfile.Read(s.fsys, p, storageListLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the store's list: %w: %s", err, storageDamaged)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w; expected %s: %s", s.loc.rel(p), err, want, storageDamaged)
	}
	return nil
}

// add indexes an images.json entry by ID, by its names, and by each name's repository with the
// digests of its manifests (name@sha256:...), as podman finds images.
func (s *storageStore) add(img storageImage) error {
	list := s.loc.rel(s.driver + "-images/images.json")
	if len(img.ID) != 64 || !isHex(img.ID) {
		return fmt.Errorf("%s: image ID %q is not 64 lowercase hex digits: %s", list, img.ID, storageDamaged)
	}
	id := "sha256:" + img.ID
	if _, dup := s.images[id]; dup {
		return fmt.Errorf("%s lists image %s twice: %s", list, shortID(id), storageDamaged)
	}
	s.images[id] = img
	s.ids = append(s.ids, id)
	digests := []string{img.Digest}
	for key, d := range img.BigDataDigests {
		if strings.HasPrefix(key, "manifest") {
			digests = append(digests, d)
		}
	}
	for _, n := range img.Names {
		named, err := parseDockerRef(n)
		if err != nil { // names are free text to containers-storage: found and shown as written
			s.index(n, n, id)
			continue
		}
		s.index(named.String(), named.Familiar(), id)
		for _, d := range digests {
			if checkDigest(d) == nil {
				s.index(ref{domain: named.domain, path: named.path, digest: d}.String(), "", id)
			}
		}
	}
	return nil
}

// index makes key find the image id, unless an earlier image has it, and shows it as shown if
// that is not empty.
func (s *storageStore) index(key, shown, id string) {
	if _, dup := s.refs[key]; dup {
		return
	}
	s.refs[key] = id
	if shown != "" {
		s.names[id] = append(s.names[id], shown)
	}
}

func (s *storageStore) Kind() string { return "containers-storage (" + s.driver + " driver)" }

// load gives an image and its layers, checking the chain of layer records from its top layer but
// not that the layer folders exist.
func (s *storageStore) load(id string) (Image, error) {
	entry := s.images[id]
	img := Image{ID: id, Names: s.names[id], Created: entry.Created}
	diffIDs, err := s.config(&img)
	if err != nil {
		return Image{}, err
	}
	if entry.Layer == "" {
		inst, err := s.instance(id)
		if err != nil {
			return Image{}, err
		}
		if inst == "" {
			return img, nil
		}
		// The list's name and ID, the platform's image: as containerd names an index's image.
		listed, err := s.load(inst)
		if err != nil {
			return Image{}, err
		}
		listed.ID, listed.Names = img.ID, img.Names
		return listed, nil
	}
	// The chain ID from the config's diff IDs; without a config, the top layer's ID, which for a
	// pulled image is the chain ID's hex.
	img.ChainID = entry.Layer
	if len(diffIDs) > 0 {
		img.ChainID = chainID(diffIDs)
	}
	chain, err := s.chain(id, entry.Layer)
	if err != nil {
		return Image{}, err
	}
	switch s.driver {
	case "btrfs":
		img.Root = Root{Kind: Snapshot, Dir: "btrfs/subvolumes", Layers: []string{entry.Layer}}
	default:
		if img.Root, err = s.overlay(id, img.ChainID, chain); err != nil {
			return Image{}, err
		}
	}
	img.Layer = img.Root.Paths()[0]
	return img, nil
}

// instance follows an image that is a manifest list (podman manifest create, podman build
// --manifest) to the store's image for this machine's platform; "" when the image is no list.
func (s *storageStore) instance(id string) (string, error) {
	p := s.driver + "-images/" + strings.TrimPrefix(id, "sha256:") + "/manifest"
	data, err := smallfile.Read(s.fsys, p, manifestLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read image manifest: %w: %s", err, storageDamaged)
	}
	var head struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(data, &head) != nil || (head.MediaType != mediaOCIIndex && head.MediaType != mediaDockerList) {
		return "", nil // no list: an image without layers, which Resolve refuses as such
	}
	m, err := parseManifest(head.MediaType, data)
	if err != nil {
		return "", fmt.Errorf("manifest list %s: %w: %s", s.loc.rel(p), err, storageDamaged)
	}
	d, err := m.pick(s.platform)
	if err != nil {
		return "", fmt.Errorf("image %s is a manifest list: %w", shortID(id), err)
	}
	for _, other := range s.ids {
		o := s.images[other]
		if o.Layer != "" && (o.Digest == d.Digest || o.BigDataDigests["manifest-"+d.Digest] == d.Digest) {
			return other, nil
		}
	}
	return "", &PlatformError{fmt.Sprintf("image %s is a manifest list whose image for %s (%s) is not in the store: pull it (podman pull --platform %s) or add it (podman manifest add)",
		shortID(id), s.platform, shortID(d.Digest), s.platform)}
}

// config reads the image's config, if the store has it, for the image's creation time and diff
// IDs. An image without one (made by a tool that stored none) keeps the images.json time.
func (s *storageStore) config(img *Image) ([]string, error) {
	hexID := strings.TrimPrefix(img.ID, "sha256:")
	p := s.driver + "-images/" + hexID + "/=" + base64.StdEncoding.EncodeToString([]byte(img.ID))
	data, err := smallfile.Read(s.fsys, p, configLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image config: %w: %s", err, storageDamaged)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != hexID {
		return nil, fmt.Errorf("image config %s does not hash to its ID: %s", s.loc.rel(p), storageDamaged)
	}
	var config struct {
		Created time.Time `json:"created"`
		RootFS  struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(data, &config); err != nil {
		return nil, fmt.Errorf("image config %s: %w: %s", s.loc.rel(p), err, storageDamaged)
	}
	for _, d := range config.RootFS.DiffIDs {
		if !isImageID(d) {
			return nil, fmt.Errorf("image config %s: diff ID %q is not sha256:<64 hex>: %s", s.loc.rel(p), d, storageDamaged)
		}
	}
	if !config.Created.IsZero() {
		img.Created = config.Created
	}
	return config.RootFS.DiffIDs, nil
}

// chain gives the image's layer IDs from top down through their parents, each checked to be in
// layers.json and complete.
func (s *storageStore) chain(id, top string) ([]string, error) {
	list := s.loc.rel(s.driver + "-layers/layers.json")
	var chain []string
	for l := top; l != ""; {
		ly, ok := s.layers[l]
		if !ok {
			return nil, fmt.Errorf("image %s: its layer %s is not in %s: %s", shortID(id), l, list, storageDamaged)
		}
		if len(chain) == len(s.layers) {
			return nil, fmt.Errorf("image %s: the parents of layer %s in %s form a loop: %s", shortID(id), top, list, storageDamaged)
		}
		if ly.Flags["incomplete"] == true {
			return nil, fmt.Errorf("image %s: its layer %s is marked incomplete in %s, an interrupted pull or build; podman removes it on its next run: pull or build the image again",
				shortID(id), l, list)
		}
		chain = append(chain, l)
		l = ly.Parent
	}
	return chain, nil
}

// overlay gives the overlay driver's layers of an image whose chain of layer IDs, from the top,
// is chain, checking that its lower file names as many layers.
func (s *storageStore) overlay(id, chainID string, chain []string) (Root, error) {
	root, err := overlayRoot(s.loc, s.fsys, "overlay", chain[0], storageDamaged)
	if lm := (*LayerMissingError)(nil); errors.As(err, &lm) {
		lm.Ref, lm.ImageID, lm.ChainID = id, id, chainID
	}
	if err != nil {
		return Root{}, err
	}
	if len(root.Layers) != len(chain) {
		return Root{}, fmt.Errorf("image %s: %s names %d layers below its top layer, but %s chains %d: %s", shortID(id),
			s.loc.rel("overlay/"+chain[0]+"/lower"), len(root.Layers)-1, s.loc.rel(s.driver+"-layers/layers.json"), len(chain)-1, storageDamaged)
	}
	for _, l := range chain {
		// containers-storage's composefs keeps a layer's files by digest, with their tree in an
		// EROFS image only its own mount puts together.
		if exists(s.fsys, "overlay/"+l+"/composefs-data") {
			return Root{}, fmt.Errorf("image %s: its layer %s is kept with composefs (%s), which dockerinit cannot mount: "+
				"set use_composefs = \"false\" in /etc/containers/storage.conf, run `podman system reset` and pull or build the image again",
				shortID(id), l, s.loc.rel("overlay/"+l+"/composefs-data"))
		}
	}
	return root, nil
}
