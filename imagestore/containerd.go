package imagestore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/smallfile"
)

// containerdMetaDB is containerd's metadata database, relative to its root.
const containerdMetaDB = "io.containerd.metadata.v1.bolt/meta.db"

// containerdStore is the images of one namespace of a containerd root (containerd's own, or the
// one dockerd runs for its containerd image store). containerd keeps them in three places:
//
//	io.containerd.metadata.v1.bolt/meta.db (bbolt), in bucket v1/<namespace>:
//	  images/<name>/target/{digest,mediatype}        name (a full reference) -> index or manifest
//	  content/blob/<digest>/labels/containerd.io/gc.ref.snapshot.<snapshotter> = chain ID
//	                                                 on an image config: where it was unpacked
//	  snapshots/<snapshotter>/<chain ID>/name        the snapshot's key in the snapshotter
//	io.containerd.content.v1.content/blobs/sha256/<hex>  index, manifest, config (JSON)
//	io.containerd.snapshotter.v1.<snapshotter>/metadata.db (bbolt):
//	  v1/snapshots/<key>/{id (uvarint), kind, parent (key)}
//	io.containerd.snapshotter.v1.overlayfs/snapshots/<id>/fs   one layer's changes
//	io.containerd.snapshotter.v1.btrfs/snapshots/<id>          a read-only subvolume, the whole root
//
// An image is unpacked once per snapshotter: one committed snapshot per layer, keyed in meta.db
// by the chain ID of the layers up to it. The databases are read once, by Open, and closed; the
// JSON blobs when an image is resolved.
type containerdStore struct {
	// loc is the containerd root. Its files are read through loc.fsys by their paths from the
	// top (loc.rel), not through loc.sub(): fs.Sub's file system has no Stat, so fs.Stat would
	// open the file to stat it, and opening a fifo blocks.
	loc      location
	ns       string
	platform platform
	copied   bool // the databases were read from copies, as a running containerd locks them

	names      []string                              // image names in ns, sorted
	targets    map[string]descriptor                 // image name -> its index or manifest
	refs       map[string]string                     // canonical reference (parseDockerRef) -> image name
	namespaces map[string]int                        // every namespace of the root -> its number of images
	unpacked   map[string]map[string]string          // config digest -> snapshotter -> chain ID, from the gc.ref.snapshot labels
	snapshots  map[string]map[string]string          // snapshotter -> chain ID -> snapshot key, of ns
	backends   map[string]map[string]backendSnapshot // snapshotter -> snapshot key -> record, for btrfs and overlayfs
}

// backendSnapshot is a snapshot as the snapshotter's own database records it.
type backendSnapshot struct {
	id     uint64 // its folder's name
	kind   byte
	parent string // the parent's key; empty for the bottom layer
}

// kindCommitted is containerd's snapshots.KindCommitted, the kind of an unpacked layer.
const kindCommitted = 3

// snapshotterDirs are the snapshotters dockerinit boots, preferred first: a btrfs snapshot holds
// the whole root, so booting it costs one snapshot whatever the image's size.
var snapshotterDirs = []struct{ name, snapshots string }{
	{"btrfs", "io.containerd.snapshotter.v1.btrfs/snapshots"},
	{"overlayfs", "io.containerd.snapshotter.v1.overlayfs/snapshots"},
}

const (
	contentBlobs  = "io.containerd.content.v1.content/blobs/sha256/"
	manifestLimit = 4 << 20 // an index or a manifest: registries refuse larger ones
	// boltCopyLimit bounds the in-memory copy of a database a running containerd locks; the
	// copy is made on the build host only, where a k8s node's meta.db runs to some 100 MiB.
	boltCopyLimit = 2 << 30
	gcRefSnapshot = "containerd.io/gc.ref.snapshot."
)

// The media types of what an image's target and an index may point at.
const (
	mediaOCIIndex     = "application/vnd.oci.image.index.v1+json"
	mediaDockerList   = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaOCIManifest  = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerV2     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaOCIConfig    = "application/vnd.oci.image.config.v1+json"
	mediaDockerConfig = "application/vnd.docker.container.image.v1+json"
	maxIndexNesting   = 4 // an index may name an index; an OCI layout's index.json does
)

// openContainerd opens the images of namespace ns in the containerd root at l, for the
// platform this program runs on.
func openContainerd(l location, ns string) (Store, error) {
	return newContainerd(l, ns, hostPlatform())
}

func newContainerd(l location, ns string, p platform) (*containerdStore, error) {
	if l.host == "" {
		return nil, fmt.Errorf("the containerd root %s: its database %s can only be read from a file on this machine, not from an in-memory file system",
			l.shown(), containerdMetaDB)
	}
	s := &containerdStore{loc: l, ns: ns, platform: p.normalize(),
		targets: map[string]descriptor{}, refs: map[string]string{}, namespaces: map[string]int{},
		unpacked: map[string]map[string]string{}, snapshots: map[string]map[string]string{},
		backends: map[string]map[string]backendSnapshot{}}
	if err := s.readBolt(containerdMetaDB, s.readMeta); err != nil {
		return nil, err
	}
	for _, sn := range snapshotterDirs {
		if len(s.snapshots[sn.name]) == 0 {
			continue
		}
		db := path.Join(path.Dir(sn.snapshots), "metadata.db")
		if !exists(l.fsys, l.rel(db)) {
			continue // Resolve says so for an image that needs it
		}
		s.backends[sn.name] = map[string]backendSnapshot{}
		if err := s.readBolt(db, func(tx *bbolt.Tx) error { return s.readSnapshotter(tx, sn.name) }); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// damaged is the advice for what containerd itself would never have written.
func (s *containerdStore) damaged() string {
	return fmt.Sprintf("the image store looks damaged; check it with `ctr -n %s images ls` (or `docker image ls`) and pull or import the image again", s.ns)
}

// readBolt reads the bbolt database name (relative to the containerd root) in one read-only
// transaction. The file is never opened for writing, so its bytes and mtime stay as they are.
//
// A running containerd holds an exclusive flock on its databases, and bbolt has no option to
// skip its own shared flock, so a read-only open would wait for containerd to stop. Then the
// database is read from a private copy in memory (a memfd: nothing is written to any disk and
// nothing is left behind). bbolt writes each transaction's pages before the meta page that
// makes them current, so a copy taken while containerd commits is at worst an older state or,
// rarely, torn: the checks below then report damage, and a second try or stopping containerd
// fixes it. At boot no containerd runs and the file itself is read.
//
// A truncated or garbled file makes bbolt fault on its memory map or panic; both become an
// error naming the file. A file crafted with a cycle among its pages can still make bbolt loop:
// bbolt's own consistency check runs in a goroutine that does not recover, so it is not used.
func (s *containerdStore) readBolt(name string, read func(*bbolt.Tx) error) (err error) {
	shown := s.loc.rel(name)
	fi, err := fs.Stat(s.loc.fsys, shown)
	if err != nil {
		return fmt.Errorf("containerd database %s: %w", shown, err)
	}
	if !fi.Mode().IsRegular() { // opening a fifo would block
		return fmt.Errorf("containerd database %s is not a regular file (%s): %s", shown, fi.Mode().Type(), s.damaged())
	}
	if fi.Size() == 0 { // bbolt would try to initialise an empty file
		return fmt.Errorf("containerd database %s is empty: %s", shown, s.damaged())
	}
	host := filepath.Join(s.loc.host, filepath.FromSlash(s.loc.rel(name)))
	var size int64
	open := func(p string, flag int, _ os.FileMode) (*os.File, error) {
		if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC) != 0 {
			return nil, fmt.Errorf("refusing to open %s for writing", p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			c, err := memCopy(f, boltCopyLimit)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s is locked by a running containerd, and copying it failed: %w; stop containerd (and dockerd) and try again", shown, err)
			}
			s.copied = true
			f = c
		} else if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s for reading: %w", shown, err)
		}
		// bbolt takes the same shared lock again, which flock grants on one open file.
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		size = st.Size()
		return f, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("containerd database %s is damaged: reading it failed (%v): %s", shown, r, s.damaged())
		}
	}()
	// A read past the end of a truncated file faults on bbolt's memory map; this makes the
	// fault a panic of this goroutine, which the deferred recover turns into an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := bbolt.Open(host, 0, &bbolt.Options{ReadOnly: true, OpenFile: open})
	if err != nil {
		return fmt.Errorf("containerd database %s: %w: %s", shown, err, s.damaged())
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		if tx.Size() > size {
			return fmt.Errorf("containerd database %s is truncated: it is %d bytes, its header says %d: %s", shown, size, tx.Size(), s.damaged())
		}
		if err := read(tx); err != nil {
			return fmt.Errorf("containerd database %s: %w: %s", shown, err, s.damaged())
		}
		return nil
	})
}

// memCopy copies f, of at most limit bytes, into an anonymous in-memory file.
func memCopy(f *os.File, limit int64) (*os.File, error) {
	fd, err := unix.MemfdCreate("dockerinit-"+filepath.Base(f.Name()), unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	c := os.NewFile(uintptr(fd), f.Name()+" (copy)")
	n, err := io.Copy(c, io.LimitReader(f, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("it is larger than the %d MiB a copy may take", limit>>20)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// readMeta reads the namespaces of meta.db and, for ns, the image names, the gc.ref.snapshot
// labels of the content and the snapshot keys.
func (s *containerdStore) readMeta(tx *bbolt.Tx) error {
	v1 := tx.Bucket([]byte("v1"))
	if v1 == nil {
		return errors.New("it has no v1 bucket, so it is no containerd metadata database of a version dockerinit knows")
	}
	err := v1.ForEachBucket(func(ns []byte) error {
		n := 0
		if images := v1.Bucket(ns).Bucket([]byte("images")); images != nil {
			c := images.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				n++
			}
		}
		s.namespaces[string(ns)] = n
		return nil
	})
	if err != nil {
		return err
	}
	nsb := v1.Bucket([]byte(s.ns))
	if nsb == nil {
		return nil
	}
	if err := s.readImages(nsb.Bucket([]byte("images"))); err != nil {
		return err
	}
	if blobs := bucket(nsb, "content", "blob"); blobs != nil {
		err := blobs.ForEachBucket(func(dgst []byte) error {
			labels := bucket(blobs, string(dgst), "labels")
			if labels == nil {
				return nil
			}
			c := labels.Cursor()
			for k, v := c.Seek([]byte(gcRefSnapshot)); k != nil && strings.HasPrefix(string(k), gcRefSnapshot); k, v = c.Next() {
				byName := s.unpacked[string(dgst)]
				if byName == nil {
					byName = map[string]string{}
					s.unpacked[string(dgst)] = byName
				}
				byName[strings.TrimPrefix(string(k), gcRefSnapshot)] = string(v)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	snapshotters := bucket(nsb, "snapshots")
	if snapshotters == nil {
		return nil
	}
	return snapshotters.ForEachBucket(func(sn []byte) error {
		keys := map[string]string{}
		s.snapshots[string(sn)] = keys
		b := snapshotters.Bucket(sn)
		return b.ForEachBucket(func(key []byte) error {
			if name := b.Bucket(key).Get([]byte("name")); len(name) > 0 {
				keys[string(key)] = string(name)
			}
			return nil
		})
	})
}

func (s *containerdStore) readImages(images *bbolt.Bucket) error {
	if images == nil {
		return nil
	}
	err := images.ForEach(func(name, v []byte) error {
		target := bucket(images, string(name), "target")
		if target == nil {
			return fmt.Errorf("image %q has no target bucket", name)
		}
		d := descriptor{MediaType: string(target.Get([]byte("mediatype"))), Digest: string(target.Get([]byte("digest")))}
		if !isImageID(d.Digest) {
			return fmt.Errorf("image %q points at %q, not a digest sha256:<64 hex>", name, d.Digest)
		}
		s.targets[string(name)] = d
		s.names = append(s.names, string(name))
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(s.names) // bbolt's order already; sorted here so that the first of equal references wins every time
	for _, name := range s.names {
		if r, err := parseDockerRef(name); err == nil {
			if _, dup := s.refs[r.String()]; !dup {
				s.refs[r.String()] = name
			}
		}
	}
	return nil
}

// readSnapshotter reads every snapshot of the snapshotter sn's own database.
func (s *containerdStore) readSnapshotter(tx *bbolt.Tx, sn string) error {
	snaps := bucket(tx.Bucket([]byte("v1")), "snapshots")
	if snaps == nil {
		return nil // nothing unpacked yet
	}
	return snaps.ForEachBucket(func(key []byte) error {
		b := snaps.Bucket(key)
		id, n := binary.Uvarint(b.Get([]byte("id")))
		if n <= 0 {
			return fmt.Errorf("snapshot %q has no valid id", key)
		}
		var kind byte
		if k := b.Get([]byte("kind")); len(k) == 1 {
			kind = k[0]
		}
		s.backends[sn][string(key)] = backendSnapshot{id: id, kind: kind, parent: string(b.Get([]byte("parent")))}
		return nil
	})
}

// bucket walks down nested buckets from b; nil when one is missing.
func bucket(b *bbolt.Bucket, names ...string) *bbolt.Bucket {
	for _, n := range names {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(n))
	}
	return b
}

func (s *containerdStore) Kind() string {
	var used []string
	for _, sn := range slices.Sorted(maps.Keys(s.snapshots)) {
		if len(s.snapshots[sn]) > 0 {
			used = append(used, sn)
		}
	}
	k := "containerd (namespace " + s.ns + ")"
	switch len(used) {
	case 0:
	case 1:
		k = fmt.Sprintf("containerd (%s snapshotter, namespace %s)", used[0], s.ns)
	default:
		k = fmt.Sprintf("containerd (%s snapshotters, namespace %s)", strings.Join(used, " and "), s.ns)
	}
	if s.copied {
		k += ", read from a copy of its database as containerd is running"
	}
	return k
}

func (s *containerdStore) Dirs() []string { return []string{s.loc.dir} }

// storeName names the store in messages.
func (s *containerdStore) storeName() string {
	return "namespace " + s.ns + " of the containerd root " + s.loc.shown()
}

func (s *containerdStore) Resolve(ref string) (Image, error) {
	name, err := s.lookup(ref)
	if err != nil {
		return Image{}, err
	}
	img, err := s.load(name)
	if lm := (*LayerMissingError)(nil); errors.As(err, &lm) {
		lm.Ref = ref
		return Image{}, lm
	}
	if err != nil {
		return Image{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if img.Layer == "" {
		return Image{}, fmt.Errorf("resolve %s: image %s has no layers (its rootfs.diff_ids is empty), so there is no file system to boot; build it FROM a base image",
			ref, shortID(img.ID))
	}
	for _, p := range img.Root.Paths() {
		if fi, err := fs.Stat(s.loc.fsys, s.loc.rel(p)); err != nil || !fi.IsDir() {
			return Image{}, &LayerMissingError{Ref: ref, ImageID: img.ID, ChainID: img.ChainID, Path: s.loc.rel(p)}
		}
	}
	img.Names = namesOf(s.ids(), img.ID)
	img.Layer = s.loc.rel(img.Layer)
	img.Root.Dir = s.loc.rel(img.Root.Dir)
	return img, nil
}

// Images lists the images of the namespace: names whose targets lead to the same config are one
// image.
func (s *containerdStore) Images() ([]Image, error) {
	byID := map[string]int{}
	var images []Image
	for _, name := range s.names {
		img, err := s.load(name)
		if pe := (*PlatformError)(nil); errors.As(err, &pe) {
			continue // one image pulled for another machine must not hide the others
		}
		if err != nil {
			return nil, fmt.Errorf("list images: %s: %w", name, err)
		}
		if i, ok := byID[img.ID]; ok {
			images[i].Names = mergeNames(images[i].Names, img.Names)
			continue
		}
		byID[img.ID] = len(images)
		img.Layer = s.loc.rel(img.Layer)
		img.Root.Dir = s.loc.rel(img.Root.Dir)
		images = append(images, img)
	}
	sortImages(images)
	return images, nil
}

func mergeNames(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// shownName is how an image name appears in Image.Names: Docker's familiar form. The names CRI
// gives an image by its own ID, and the ones dockerd gives untagged images, are no names to
// people.
func shownName(name string) (string, bool) {
	if isImageID(name) || strings.HasPrefix(name, "moby-dangling@") {
		return "", false
	}
	if r, err := parseDockerRef(name); err == nil {
		return r.Familiar(), true
	}
	return name, true
}

// ids gives each image name's image ID: its config's digest, or its target's when the manifest
// cannot be read (Resolve then says why).
func (s *containerdStore) ids() map[string]string {
	ids := make(map[string]string, len(s.names))
	for _, name := range s.names {
		ids[name] = s.targets[name].Digest
		if c, err := s.configOf(name); err == nil {
			ids[name] = c.Digest
		}
	}
	return ids
}

// namesOf gives the shown names of the image id, sorted.
func namesOf(ids map[string]string, id string) []string {
	var names []string
	for name, i := range ids {
		if n, ok := shownName(name); ok && i == id {
			names = append(names, n)
		}
	}
	return mergeNames(names, nil)
}

// brief gives the images of ids, ID and Names only, for messages.
func brief(ids map[string]string, only func(id string) bool) []Image {
	var images []Image
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] && only(id) {
			seen[id] = true
			images = append(images, Image{ID: id, Names: namesOf(ids, id)})
		}
	}
	sortImages(images)
	return images
}

// lookup finds the image name ref means: a name, an image ID (a config digest, or the
// index/manifest digest Docker shows as ID for this store), or a prefix of one.
func (s *containerdStore) lookup(ref string) (string, error) {
	if h, ok := strings.CutPrefix(ref, "sha256:"); ok {
		return s.byID(ref, h)
	}
	if len(ref) == 64 && isHex(ref) {
		return s.byID(ref, ref)
	}
	named, perr := parseDockerRef(ref)
	if perr == nil {
		if name, ok := s.refs[named.String()]; ok {
			return name, nil
		}
	}
	if _, ok := s.targets[ref]; ok { // a stored name no reference parses to
		return ref, nil
	}
	if len(ref) >= 4 && isHex(ref) {
		return s.byID(ref, ref)
	}
	if perr != nil {
		return "", fmt.Errorf("%q is not an image reference: %w; expected NAME[:TAG], NAME@sha256:<hex> or an image ID", ref, perr)
	}
	return "", s.notFound(ref)
}

// byID finds the image whose config or target digest is or starts with the hex digits h.
func (s *containerdStore) byID(ref, h string) (string, error) {
	if len(h) < 4 || len(h) > 64 || !isHex(h) {
		return "", fmt.Errorf("%q is not an image ID: expected sha256: and 4 to 64 lowercase hex digits", ref)
	}
	ids := s.ids()
	matches := map[string]string{} // image ID -> its first name
	for _, name := range s.names {
		id := ids[name]
		if _, ok := matches[id]; !ok && (strings.HasPrefix(id, "sha256:"+h) || strings.HasPrefix(s.targets[name].Digest, "sha256:"+h)) {
			matches[id] = name
		}
	}
	switch len(matches) {
	case 0:
		return "", s.notFound(ref)
	case 1:
		for _, name := range matches {
			return name, nil
		}
	}
	return "", &AmbiguousError{Ref: ref, Matches: brief(ids, func(id string) bool { _, ok := matches[id]; return ok })}
}

// notFound is the error for a reference that names no image of the namespace; when the namespace
// has none, it names the namespaces that have.
func (s *containerdStore) notFound(ref string) error {
	nf := &NotFoundError{Ref: ref, Store: s.storeName(), Images: brief(s.ids(), func(string) bool { return true })}
	if len(s.names) > 0 {
		return nf
	}
	var others []string
	for _, ns := range slices.Sorted(maps.Keys(s.namespaces)) {
		if s.namespaces[ns] > 0 {
			others = append(others, fmt.Sprintf("%s (%d %s)", ns, s.namespaces[ns], plural(s.namespaces[ns], "image name", "image names")))
		}
	}
	if len(others) == 0 {
		return nf
	}
	return fmt.Errorf("%w\nthe containerd root %s holds images in namespace %s; pass the image's namespace: --namespace NAME to mkbootimg, dockerinit.namespace=NAME at boot",
		nf, s.loc.shown(), strings.Join(others, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// load reads an image's manifest and config and finds its top layer's snapshot, without checking
// that its folders exist.
func (s *containerdStore) load(name string) (Image, error) {
	cdesc, err := s.configOf(name)
	if err != nil {
		return Image{}, err
	}
	data, err := s.blob(cdesc, configLimit)
	if err != nil {
		return Image{}, fmt.Errorf("image config: %w", err)
	}
	config, err := parseConfig(data)
	if err != nil {
		return Image{}, fmt.Errorf("image config %s: %w: %s", s.loc.rel(blobPath(cdesc.Digest)), err, s.damaged())
	}
	img := Image{ID: cdesc.Digest, Created: config.Created}
	if n, ok := shownName(name); ok {
		img.Names = []string{n}
	}
	if len(config.RootFS.DiffIDs) == 0 {
		return img, nil
	}
	img.ChainID = chainID(config.RootFS.DiffIDs)
	if img.Root, err = s.root(img.ID, img.ChainID, len(config.RootFS.DiffIDs)); err != nil {
		return Image{}, err
	}
	img.Layer = img.Root.Paths()[0]
	return img, nil
}

// configOf follows the image name's target through an index to the manifest for the platform,
// and gives its config descriptor.
func (s *containerdStore) configOf(name string) (descriptor, error) {
	d := s.targets[name]
	for depth := 0; ; depth++ {
		data, err := s.blob(d, manifestLimit)
		if err != nil {
			return descriptor{}, err
		}
		m, err := parseManifest(d.MediaType, data)
		if err != nil {
			return descriptor{}, fmt.Errorf("%s: %w", s.loc.rel(blobPath(d.Digest)), err)
		}
		if !m.isIndex() {
			return m.Config, nil
		}
		if depth == maxIndexNesting {
			return descriptor{}, fmt.Errorf("%s: indexes nest more than %d deep: %s", s.loc.rel(blobPath(d.Digest)), maxIndexNesting, s.damaged())
		}
		next, err := m.pick(s.platform)
		if err != nil {
			return descriptor{}, fmt.Errorf("image %s: %w", name, err)
		}
		if _, err := fs.Stat(s.loc.fsys, s.loc.rel(blobPath(next.Digest))); errors.Is(err, fs.ErrNotExist) {
			return descriptor{}, &PlatformError{fmt.Sprintf("image %s: its manifest for %s (%s) is not in the content store, as only other platforms were pulled: pull it for %s (docker pull --platform %s, or ctr -n %s images pull --platform %s)",
				name, s.platform, shortID(next.Digest), s.platform, s.platform, s.ns, s.platform)}
		}
		d = next
	}
}

// root finds where a snapshotter keeps the image's layers, given its config digest, top chain
// ID and number of layers: the first of snapshotterDirs that holds the chain.
func (s *containerdStore) root(configID, chain string, layers int) (Root, error) {
	for _, sn := range snapshotterDirs {
		key, ok := s.snapshots[sn.name][chain]
		if !ok {
			continue
		}
		stack, err := s.stack(sn.name, key, layers)
		if err != nil {
			return Root{}, err
		}
		if sn.name == "btrfs" {
			return Root{Kind: Snapshot, Dir: sn.snapshots, Layers: stack[:1]}, nil
		}
		for i, id := range stack {
			stack[i] = id + "/fs"
		}
		return Root{Kind: Overlay, Dir: sn.snapshots, Layers: stack}, nil
	}
	// None of them: say what the config's labels and the other snapshotters tell.
	var others []string
	for sn, keys := range s.snapshots {
		if _, ok := keys[chain]; ok {
			others = append(others, sn)
		}
	}
	for sn, c := range s.unpacked[configID] {
		if c != chain || slices.Contains(others, sn) {
			continue
		}
		if slices.ContainsFunc(snapshotterDirs, func(d struct{ name, snapshots string }) bool { return d.name == sn }) {
			return Root{}, fmt.Errorf("image %s was unpacked with containerd's %s snapshotter, but %s has no snapshot %s: %s",
				shortID(configID), sn, s.loc.rel(containerdMetaDB), chain, s.damaged())
		}
		others = append(others, sn)
	}
	if len(others) > 0 {
		slices.Sort(others)
		return Root{}, &UnsupportedError{Store: s.storeName(), Found: []string{"containerd's " + strings.Join(others, " and ") + " snapshotter"},
			Fix: fmt.Sprintf("dockerinit boots containerd's overlayfs and btrfs snapshotters: unpack the image with one (docker with the containerd image store does, or ctr -n %s images pull --snapshotter overlayfs)", s.ns)}
	}
	return Root{}, fmt.Errorf("image %s is not unpacked: no snapshotter of %s holds its layers (chain ID %s); pull or import it again (docker pull, or ctr -n %s images pull --snapshotter overlayfs)",
		shortID(configID), s.storeName(), shortID(chain), s.ns)
}

// stack gives the folder names of the snapshot key and its parents in the snapshotter sn, the
// uppermost first: exactly layers of them, all committed.
func (s *containerdStore) stack(sn, key string, layers int) ([]string, error) {
	db := s.loc.rel("io.containerd.snapshotter.v1." + sn + "/metadata.db")
	backend, ok := s.backends[sn]
	if !ok {
		return nil, fmt.Errorf("the %s snapshotter's database %s is missing: %s", sn, db, s.damaged())
	}
	var ids []string
	for k := key; k != ""; {
		if len(ids) == layers {
			return nil, fmt.Errorf("%s: snapshot %s has more than the image's %d layers below it: %s", db, key, layers, s.damaged())
		}
		b, ok := backend[k]
		if !ok {
			return nil, fmt.Errorf("%s has no snapshot %s: %s", db, k, s.damaged())
		}
		if b.kind != kindCommitted {
			return nil, fmt.Errorf("%s: snapshot %s is not committed (kind %d), so not an unpacked layer: %s", db, k, b.kind, s.damaged())
		}
		ids = append(ids, strconv.FormatUint(b.id, 10))
		k = b.parent
	}
	if len(ids) != layers {
		return nil, fmt.Errorf("%s: snapshot %s stacks %d layers, the image has %d: %s", db, key, len(ids), layers, s.damaged())
	}
	return ids, nil
}

// blobPath is a content blob's path relative to the containerd root.
func blobPath(dgst string) string { return contentBlobs + strings.TrimPrefix(dgst, "sha256:") }

// blob reads the content blob d, of at most limit bytes, and checks it against its digest.
func (s *containerdStore) blob(d descriptor, limit int64) ([]byte, error) {
	if !isImageID(d.Digest) {
		return nil, fmt.Errorf("digest %q is not sha256:<64 hex>: %s", d.Digest, s.damaged())
	}
	p := blobPath(d.Digest)
	data, err := smallfile.Read(s.loc.fsys, s.loc.rel(p), limit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s (%s) is missing from the content store: %s", s.loc.rel(p), d.MediaType, s.damaged())
	}
	if err != nil {
		return nil, fmt.Errorf("read blob: %w: %s", err, s.damaged())
	}
	if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != d.Digest {
		return nil, fmt.Errorf("blob %s does not hash to its digest: %s", s.loc.rel(p), s.damaged())
	}
	return data, nil
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType string    `json:"mediaType"`
	Digest    string    `json:"digest"`
	Platform  *platform `json:"platform,omitempty"`
}

// manifest is an OCI or Docker image manifest, or an index (manifest list).
type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Manifests []descriptor `json:"manifests"`
}

func (m manifest) isIndex() bool {
	return m.MediaType == mediaOCIIndex || m.MediaType == mediaDockerList
}

// parseManifest parses an index or a manifest of the media type mediaType: the descriptor's,
// which containerd records; the blob's own mediaType field, optional in OCI, only when that is
// empty.
func parseManifest(mediaType string, data []byte) (manifest, error) {
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return manifest{}, fmt.Errorf("not a manifest or index: %w", err)
	}
	if mediaType != "" { // the descriptor's, which containerd goes by
		m.MediaType = mediaType
	}
	switch m.MediaType {
	case mediaOCIIndex, mediaDockerList:
		for _, d := range m.Manifests {
			if !isImageID(d.Digest) {
				return manifest{}, fmt.Errorf("index entry digest %q is not sha256:<64 hex>", d.Digest)
			}
		}
	case mediaOCIManifest, mediaDockerV2:
		if !isImageID(m.Config.Digest) {
			return manifest{}, fmt.Errorf("config digest %q is not sha256:<64 hex>", m.Config.Digest)
		}
		switch m.Config.MediaType {
		case mediaOCIConfig, mediaDockerConfig:
		default:
			return manifest{}, fmt.Errorf("its config is %q, not a container image config: it is no container image", m.Config.MediaType)
		}
	default:
		return manifest{}, fmt.Errorf("media type %q is no image index or manifest dockerinit knows (it reads %s, %s, %s and %s)",
			m.MediaType, mediaOCIIndex, mediaDockerList, mediaOCIManifest, mediaDockerV2)
	}
	return m, nil
}

// imageConfig is the part of an image config dockerinit reads.
type imageConfig struct {
	Created time.Time `json:"created"`
	RootFS  struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func parseConfig(data []byte) (imageConfig, error) {
	var c imageConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return imageConfig{}, err
	}
	for _, d := range c.RootFS.DiffIDs {
		if !isImageID(d) {
			return imageConfig{}, fmt.Errorf("diff ID %q is not sha256:<64 hex>", d)
		}
	}
	return c, nil
}
