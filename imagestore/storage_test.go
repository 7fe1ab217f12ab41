package imagestore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// fakeStorage builds a containers-storage root the way podman lays it out when it pulls: a
// layer's ID is the hex of its chain ID, an image's the hex of its config's digest.
type fakeStorage struct {
	fs     fstest.MapFS
	driver string
	images []map[string]any
	layers map[string]map[string]any
	// override replaces files after mapFS writes the lists, for damage tests.
	override fstest.MapFS
}

func newFakeStorage(driver string) *fakeStorage {
	return &fakeStorage{driver: driver, layers: map[string]map[string]any{},
		fs: fstest.MapFS{"storage.lock": {Data: make([]byte, 64)}, "userns.lock": {}}}
}

// image adds an image with the given layers and names; it gives its ID and its Root.Layers (for
// btrfs, the top layer).
func (r *fakeStorage) image(diffIDs []string, names ...string) (string, []string) {
	config := fmt.Sprintf(`{"created":"2024-05-06T07:08:09Z","rootfs":{"type":"layers","diff_ids":%s}}`, mustJSON(diffIDs))
	sum := sha256.Sum256([]byte(config))
	id := hex.EncodeToString(sum[:])
	r.fs[r.driver+"-images/"+id+"/="+base64.StdEncoding.EncodeToString([]byte("sha256:"+id))] = &fstest.MapFile{Data: []byte(config)}
	r.fs[r.driver+"-images/"+id+"/manifest"] = &fstest.MapFile{Data: []byte("{}")}
	var chain []string
	for i := range diffIDs {
		l := chainID(diffIDs[:i+1])[7:]
		r.layers[l] = map[string]any{"id": l, "diff-digest": diffIDs[i], "created": "2024-05-06T07:08:10Z"}
		if i > 0 {
			r.layers[l]["parent"] = chain[i-1]
		}
		chain = append(chain, l)
	}
	entry := map[string]any{"id": id, "digest": manifestFor(id), "names": names, "created": "2024-05-06T07:08:11Z",
		"big-data-digests": map[string]string{"sha256:" + id: "sha256:" + id, "manifest-" + manifestFor(id): manifestFor(id)}}
	r.images = append(r.images, entry)
	if len(chain) == 0 {
		return "sha256:" + id, nil
	}
	entry["layer"] = chain[len(chain)-1]
	if r.driver == "btrfs" {
		for _, l := range chain {
			r.fs["btrfs/subvolumes/"+l+"/etc/os-release"] = &fstest.MapFile{Data: []byte("ID=test\n")}
		}
		return "sha256:" + id, []string{chain[len(chain)-1]}
	}
	return "sha256:" + id, overlayLayers(r.fs, "overlay", chain)
}

// manifestFor is the fake's manifest digest of an image.
func manifestFor(id string) string {
	sum := sha256.Sum256([]byte("manifest " + id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (r *fakeStorage) mapFS() fstest.MapFS {
	var layers []map[string]any
	for _, l := range r.layers {
		layers = append(layers, l)
	}
	slices.SortFunc(layers, func(a, b map[string]any) int { return strings.Compare(a["id"].(string), b["id"].(string)) })
	r.fs[r.driver+"-images/images.json"] = &fstest.MapFile{Data: mustJSON(r.images)}
	r.fs[r.driver+"-layers/layers.json"] = &fstest.MapFile{Data: mustJSON(layers)}
	for p, f := range r.override {
		r.fs[p] = f
	}
	return r.fs
}

// storageSample is a podman store: a local build, an image of the same short name from Docker
// Hub, an official image under two names, one from another registry, one whose name no
// reference parser accepts, and one without a config.
type storageSample struct {
	root                                *fakeStorage
	local, hub, debian, other, odd, raw string
	localLayers, hubLayers, rawLayers   []string
}

func newStorageSample() storageSample {
	r := newFakeStorage("overlay")
	s := storageSample{root: r}
	s.local, s.localLayers = r.image([]string{diffA, diffB, diffC}, "localhost/sample_image:latest")
	s.hub, s.hubLayers = r.image([]string{diffD}, "docker.io/library/sample_image:latest")
	s.debian, _ = r.image([]string{diffA, diffB}, "docker.io/library/debian:12", "quay.io/team/debian:12")
	s.other, _ = r.image([]string{diffA, diffB, diffE}, "registry:5000/team/other:1.0")
	s.odd, _ = r.image([]string{diffE}, "My Image")
	s.raw, s.rawLayers = r.image([]string{diffD, diffE}, "localhost/noconfig:latest")
	for p := range r.fs {
		if strings.HasPrefix(p, "overlay-images/"+s.raw[7:]+"/=") {
			delete(r.fs, p)
		}
	}
	return s
}

func TestStorageResolve(t *testing.T) {
	s := newStorageSample()
	store, err := openTest(s.root.mapFS())
	if err != nil {
		t.Fatal(err)
	}
	if store.Kind() != "containers-storage (overlay driver)" || !slices.Equal(store.Dirs(), []string{"."}) {
		t.Errorf("Kind() = %q, Dirs() = %q", store.Kind(), store.Dirs())
	}
	tests := []struct{ ref, want string }{
		{"sample_image", s.local}, // localhost first, as podman resolves short names
		{"sample_image:latest", s.local},
		{"localhost/sample_image", s.local},
		{"localhost/sample_image:latest", s.local},
		{"docker.io/library/sample_image", s.hub},
		{"docker.io/sample_image:latest", s.hub},
		{"index.docker.io/library/sample_image", s.hub},
		{"debian:12", s.debian},
		{"docker.io/library/debian:12", s.debian},
		{"quay.io/team/debian:12", s.debian},
		{"registry:5000/team/other:1.0", s.other},
		{"My Image", s.odd},
		{"noconfig", s.raw},
		{"sample_image@" + manifestFor(s.local[7:]), s.local},
		{"localhost/sample_image@" + manifestFor(s.local[7:]), s.local},
		{"debian@" + manifestFor(s.debian[7:]), s.debian},
		{"quay.io/team/debian@" + manifestFor(s.debian[7:]), s.debian},
		{s.other, s.other},
		{s.other[7:], s.other},
		{s.other[7:19], s.other},
		{s.hub[:7+6], s.hub},
	}
	for _, tt := range tests {
		img, err := store.Resolve(tt.ref)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.ref, err)
			continue
		}
		if img.ID != tt.want {
			t.Errorf("Resolve(%q) = %s, want %s", tt.ref, img.ID, tt.want)
		}
	}

	for _, tt := range []struct {
		ref  string
		want Image
	}{
		{"sample_image", Image{ID: s.local, Names: []string{"localhost/sample_image:latest"}, ChainID: chainC3,
			Created: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), Layer: "overlay/" + s.localLayers[0],
			Root: Root{Kind: Overlay, Dir: "overlay", Layers: s.localLayers}}},
		{"debian:12", Image{ID: s.debian, Names: []string{"debian:12", "quay.io/team/debian:12"}, ChainID: chainAB,
			Created: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), Layer: "overlay/l/" + shortFor(chainAB[7:]),
			Root: Root{Kind: Overlay, Dir: "overlay", Layers: []string{"l/" + shortFor(chainAB[7:]), "l/" + shortFor(diffA[7:])}}}},
		// Without a config: the images.json time, and the top layer's ID for a chain ID.
		{"noconfig", Image{ID: s.raw, Names: []string{"localhost/noconfig:latest"}, ChainID: chainID([]string{diffD, diffE})[7:],
			Created: time.Date(2024, 5, 6, 7, 8, 11, 0, time.UTC), Layer: "overlay/" + s.rawLayers[0],
			Root: Root{Kind: Overlay, Dir: "overlay", Layers: s.rawLayers}}},
	} {
		img, err := store.Resolve(tt.ref)
		if err != nil || !reflect.DeepEqual(img, tt.want) {
			t.Errorf("Resolve(%q) = %+v, %v\nwant %+v", tt.ref, img, err, tt.want)
		}
	}
	if len(s.localLayers) != 3 || s.localLayers[2] != "l/"+shortFor(diffA[7:]) || s.localLayers[0] != "l/"+shortFor(chainC3[7:]) {
		t.Errorf("the layers are not the uppermost first: %q", s.localLayers)
	}

	images, err := store.Images()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range images {
		got = append(got, strings.Join(img.Names, ","))
	}
	want := []string{"My Image", "debian:12,quay.io/team/debian:12", "localhost/noconfig:latest", "localhost/sample_image:latest",
		"registry:5000/team/other:1.0", "sample_image:latest"}
	if !slices.Equal(got, want) {
		t.Errorf("Images() names = %q, want %q", got, want)
	}

	_, err = store.Resolve("localhost/debian")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "not found; the containers-storage root / holds:\n  My Image (") ||
		!strings.Contains(err.Error(), "\n  debian:12, quay.io/team/debian:12 ("+s.debian[7:19]+")\n") {
		t.Errorf("Resolve(localhost/debian) = %v", err)
	}
}

func TestStorageBtrfs(t *testing.T) {
	r := newFakeStorage("btrfs")
	id, layers := r.image([]string{diffA, diffB, diffC}, "localhost/desktop:latest")
	gone, goneLayers := r.image([]string{diffD}, "docker.io/library/gone:1")
	m := r.mapFS()
	delete(m, "btrfs/subvolumes/"+goneLayers[0]+"/etc/os-release")
	// A store that had overlay before: btrfs wins, as in a Docker data root.
	m["overlay-images/images.json"] = &fstest.MapFile{Data: []byte("[]")}
	store, err := openTest(m)
	if err != nil {
		t.Fatal(err)
	}
	if store.Kind() != "containers-storage (btrfs driver)" {
		t.Errorf("Kind() = %q", store.Kind())
	}
	img, err := store.Resolve("desktop")
	want := Image{ID: id, Names: []string{"localhost/desktop:latest"}, ChainID: chainC3, Created: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Layer: "btrfs/subvolumes/" + chainC3[7:], Root: Root{Kind: Snapshot, Dir: "btrfs/subvolumes", Layers: []string{chainC3[7:]}}}
	if err != nil || !reflect.DeepEqual(img, want) || layers[0] != chainC3[7:] {
		t.Errorf("Resolve(desktop) = %+v, %v\nwant %+v", img, err, want)
	}
	_, err = store.Resolve("gone:1")
	var lm *LayerMissingError
	if !errors.As(err, &lm) || lm.ImageID != gone || lm.Path != "btrfs/subvolumes/"+diffD[7:] {
		t.Errorf("Resolve(gone:1) = %v, want a LayerMissingError for btrfs/subvolumes/%s", err, diffD[7:])
	}
}

func TestStorageOpen(t *testing.T) {
	dir := func(paths ...string) fstest.MapFS {
		m := fstest.MapFS{"storage.lock": {}}
		for _, p := range paths {
			m[p] = &fstest.MapFile{Mode: fs.ModeDir | 0o700}
		}
		return m
	}
	good := newStorageSample().root.mapFS()
	withFlag := func(flag string) fstest.MapFS {
		m := fstest.MapFS{}
		for p, f := range good {
			m[p] = f
		}
		m["overlay/.has-mount-program"] = &fstest.MapFile{Data: []byte(flag)}
		return m
	}
	moved := fstest.MapFS{}
	for p, f := range good {
		moved["home/u/.local/share/containers/storage/"+p] = f
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		dir  string
		as   any    // pointer to the expected error type, nil for ErrNotStore, "" for no error
		want string // substring of the error
	}{
		{"vfs", dir("vfs-images", "vfs-layers", "vfs"), ".", new(*UnsupportedError),
			`the containers-storage root / keeps its images with the vfs storage driver, which dockerinit cannot boot from; ` +
				`dockerinit boots containers-storage's overlay and btrfs drivers: set driver = "overlay" (or "btrfs" on a btrfs file system) ` +
				"in /etc/containers/storage.conf, run `podman system reset` and pull or build the image again"},
		{"zfs and aufs", dir("zfs-images", "aufs-images"), ".", new(*UnsupportedError), "with the aufs storage driver, the zfs storage driver, which"},
		{"rootless", moved, "home/u/.local/share/containers/storage", new(*UnsupportedError),
			"the containers-storage root /home/u/.local/share/containers/storage keeps its images with a rootless store (in a home folder), which dockerinit cannot boot from; " +
				"rootless stores are not supported: their files belong to the user's subordinate UIDs and GIDs"},
		{"fuse-overlayfs", withFlag("true"), ".", new(*UnsupportedError), "the overlay driver through a mount_program (fuse-overlayfs)"},
		{"no mount program", withFlag("false"), ".", "", ""},
		{"only the lock", dir(), ".", nil, "has no <driver>-images folder (overlay-images, btrfs-images); has podman ever stored an image there? It holds storage.lock"},
		{"images without the lock", fstest.MapFS{"overlay-images/images.json": {Data: []byte("[]")}}, ".", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := open(location{fsys: tt.fsys, dir: tt.dir}, Options{})
			switch {
			case tt.as == "":
				if err != nil {
					t.Fatal(err)
				}
				if _, err := store.Images(); err != nil {
					t.Error(err)
				}
				return
			case err == nil:
				t.Fatal("Open succeeded")
			case tt.as == nil && !errors.Is(err, ErrNotStore):
				t.Errorf("error %v is not ErrNotStore", err)
			case tt.as != nil && !errors.As(err, tt.as):
				t.Errorf("error %v is not a %T", err, tt.as)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n%v\ndoes not contain\n%s", err, tt.want)
			}
		})
	}
}

func TestFreshStorage(t *testing.T) {
	store, err := openTest(fstest.MapFS{"storage.lock": {}, "overlay-images/images.lock": {}, "overlay-layers/layers.lock": {}, "overlay/l": {Mode: fs.ModeDir}})
	if err != nil {
		t.Fatal(err)
	}
	if images, err := store.Images(); err != nil || len(images) != 0 {
		t.Errorf("Images() = %v, %v; want none", images, err)
	}
	_, err = store.Resolve("desktop")
	if want := `image "desktop" not found: the containers-storage root / holds no images; build or pull it first`; err == nil || err.Error() != want {
		t.Errorf("Resolve error = %v, want %q", err, want)
	}
}

// TestStorageDamaged damages a store holding "ok" and "bad", and checks that Open or Resolve(bad)
// says what is wrong, where, and what to do.
func TestStorageDamaged(t *testing.T) {
	top, mid, bottom := chainC3[7:], chainAB[7:], diffA[7:]
	badID, _ := newFakeStorage("overlay").image([]string{diffA, diffB, diffC}) // the ID is the config's digest
	setLayer := func(id, key string, v any) func(r *fakeStorage) {
		return func(r *fakeStorage) { r.layers[id][key] = v }
	}
	file := func(p, data string) func(r *fakeStorage) {
		return func(r *fakeStorage) { r.override = fstest.MapFS{p: {Data: []byte(data)}} }
	}
	tests := []struct {
		name    string
		damage  func(r *fakeStorage)
		openErr string // error from Open, or else
		err     string // error from Resolve("bad")
	}{
		{"garbage images.json", file("overlay-images/images.json", `[{"id":`), `overlay-images/images.json: unexpected end of JSON input; expected [{"id":"<64 hex>"`, ""},
		{"images.json not a list", file("overlay-images/images.json", `{"id":"x"}`), "overlay-images/images.json: json: cannot unmarshal object", ""},
		{"garbage layers.json", file("overlay-layers/layers.json", `[{"id": 1}]`), `overlay-layers/layers.json: json: cannot unmarshal number`, ""},
		{"images.json a fifo", func(r *fakeStorage) {
			r.override = fstest.MapFS{"overlay-images/images.json": {Mode: fs.ModeNamedPipe}}
		},
			"read the store's list: overlay-images/images.json is a named pipe (fifo), not a regular file", ""},
		{"image ID not hex", func(r *fakeStorage) { r.images[1]["id"] = "../../etc" },
			`overlay-images/images.json: image ID "../../etc" is not 64 lowercase hex digits`, ""},
		{"image listed twice", func(r *fakeStorage) { r.images = append(r.images, r.images[0]) }, "overlay-images/images.json lists image ", ""},
		{"layer ID a path", func(r *fakeStorage) { r.layers["x"] = map[string]any{"id": "../x"} },
			`overlay-layers/layers.json: layer ID "../x" is no folder name`, ""},
		{"missing top layer", func(r *fakeStorage) { delete(r.layers, top) }, "",
			"its layer " + top + " is not in overlay-layers/layers.json: the image store looks damaged; check it with `podman images` and pull or build the image again"},
		{"missing parent layer", func(r *fakeStorage) { delete(r.layers, mid) }, "", "its layer " + mid + " is not in overlay-layers/layers.json"},
		{"parents in a loop", setLayer(bottom, "parent", top), "", "the parents of layer " + top + " in overlay-layers/layers.json form a loop"},
		{"incomplete layer", setLayer(mid, "flags", map[string]any{"incomplete": true}), "",
			"its layer " + mid + " is marked incomplete in overlay-layers/layers.json, an interrupted pull or build"},
		{"lower shorter than the chain", file("overlay/"+top+"/lower", "l/"+shortFor(mid)), "",
			"overlay/" + top + "/lower names 1 layers below its top layer, but overlay-layers/layers.json chains 2"},
		{"lower pointing outside", file("overlay/"+top+"/lower", "l/"+shortFor(mid)+":../../etc"), "",
			`overlay/` + top + `/lower names "../../etc", not a short link`},
		{"missing link", func(r *fakeStorage) { delete(r.fs, "overlay/"+top+"/link") }, "",
			"layer folder overlay/" + top + " has no link file (its short name): the image store looks damaged; check it with `podman images`"},
		{"missing layer folder", func(r *fakeStorage) {
			for p := range r.fs {
				if strings.HasPrefix(p, "overlay/"+top+"/") {
					delete(r.fs, p)
				}
			}
		}, "", "its layer " + top[:12] + " is missing: overlay/" + top + " does not exist"},
		{"dangling short link", func(r *fakeStorage) { delete(r.fs, "overlay/"+mid+"/diff/etc/layer1") }, "",
			"is missing: overlay/l/" + shortFor(mid) + " does not exist"},
		{"composefs", file("overlay/"+mid+"/composefs-data/composefs.blob", ""), "",
			"its layer " + mid + " is kept with composefs (overlay/" + mid + "/composefs-data), which dockerinit cannot mount: set use_composefs = \"false\""},
		{"config not matching the ID", func(r *fakeStorage) {
			r.fs["overlay-images/"+badID[7:]+"/="+base64.StdEncoding.EncodeToString([]byte(badID))].Data = []byte(`{}`)
		}, "", "image config overlay-images/" + badID[7:] + "/=" + base64.StdEncoding.EncodeToString([]byte(badID)) + " does not hash to its ID"},
		{"image without layers", func(r *fakeStorage) { delete(r.images[1], "layer") }, "", "has no layers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFakeStorage("overlay")
			r.image([]string{diffD}, "localhost/ok:latest")
			r.image([]string{diffA, diffB, diffC}, "localhost/bad:latest")
			tt.damage(r)
			store, err := openTest(r.mapFS())
			if tt.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.openErr) || !strings.HasSuffix(err.Error(), storageDamaged) {
					t.Fatalf("Open error = %v\nwant one containing %q and ending in the advice", err, tt.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Resolve("ok"); err != nil {
				t.Errorf("the undamaged image no longer resolves: %v", err)
			}
			if _, err := store.Resolve("bad"); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Resolve(bad) error = %v\nwant one containing %q", err, tt.err)
			}
		})
	}
}

// FuzzContainersStorage feeds arbitrary images.json, layers.json and lower files to a store: it
// gives errors, never a panic, and what it resolves is a chain of short links to folders.
func FuzzContainersStorage(f *testing.F) {
	r := newFakeStorage("overlay")
	id, _ := r.image([]string{diffA, diffB}, "localhost/desktop:latest")
	base := r.mapFS()
	images, layers := base["overlay-images/images.json"].Data, base["overlay-layers/layers.json"].Data
	lower := "l/" + shortFor(diffA[7:])
	f.Add(images, layers, lower, "desktop")
	f.Add(images, layers, lower, id[7:15])
	f.Add(images, []byte(`[{"id":"`+chainAB[7:]+`","parent":"`+chainAB[7:]+`"}]`), lower, "desktop")
	f.Add(images, []byte(`[{"id":"`+chainAB[7:]+`","parent":"x"},{"id":"x","parent":"`+chainAB[7:]+`"}]`), lower+":"+lower, "desktop")
	f.Add([]byte(`[{"id":"`+id[7:]+`","names":["x",""],"layer":"../.."}]`), []byte(`null`), "l/../..", "x")
	f.Add([]byte(`[{"id":"`+id[7:]+`","names":["a@b"],"digest":"sha256:`+strings.Repeat("0", 64)+`"}]`), []byte(`[]`), "", "a@b")
	f.Fuzz(func(t *testing.T, images, layers []byte, lower, ref string) {
		m := fstest.MapFS{}
		for p, file := range base {
			m[p] = file
		}
		m["overlay-images/images.json"] = &fstest.MapFile{Data: images}
		m["overlay-layers/layers.json"] = &fstest.MapFile{Data: layers}
		m["overlay/"+chainAB[7:]+"/lower"] = &fstest.MapFile{Data: []byte(lower)}
		store, err := openTest(m)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if _, err := store.Images(); err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
		img, err := store.Resolve(ref)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if !isImageID(img.ID) || img.Root.Kind != Overlay || img.Root.Dir != "overlay" || len(img.Root.Layers) == 0 {
			t.Fatalf("Resolve(%q) = %+v", ref, img)
		}
		for _, l := range img.Root.Layers {
			if short, ok := strings.CutPrefix(l, "l/"); !ok || !isShortName(short) {
				t.Fatalf("Resolve(%q) gave layer %q", ref, l)
			}
		}
		for _, p := range img.Root.Paths() {
			if fi, err := fs.Stat(m, p); err != nil || !fi.IsDir() {
				t.Fatalf("Resolve(%q) gave layer %s which is not a folder", ref, p)
			}
		}
	})
}

// list adds a manifest list image (podman manifest create) naming, for each platform, the
// manifest digest given; it gives the list's ID.
func (r *fakeStorage) list(name string, entries map[string]string) string {
	var manifests []map[string]any
	for _, p := range slices.Sorted(maps.Keys(entries)) {
		os, arch, _ := strings.Cut(p, "/")
		manifests = append(manifests, map[string]any{"mediaType": mediaOCIManifest, "digest": entries[p], "size": 500,
			"platform": map[string]string{"os": os, "architecture": arch}})
	}
	data := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": mediaOCIIndex, "manifests": manifests})
	sum := sha256.Sum256(append([]byte("list "), data...))
	id := hex.EncodeToString(sum[:])
	r.fs[r.driver+"-images/"+id+"/manifest"] = &fstest.MapFile{Data: data}
	r.fs[r.driver+"-images/"+id+"/instances.json"] = &fstest.MapFile{Data: []byte("{}")}
	r.images = append(r.images, map[string]any{"id": id, "names": []string{name}, "created": "2024-05-06T07:08:12Z",
		"big-data-digests": map[string]string{"manifest": "sha256:" + id, "instances.json": "sha256:" + id}})
	return "sha256:" + id
}

// A manifest list boots the store's image for this machine's platform, under the list's name;
// one without it is refused, and left out of Images.
func TestStorageManifestList(t *testing.T) {
	r := newFakeStorage("overlay")
	amd, amdLayers := r.image([]string{diffA, diffB}, "localhost/multi-amd64:latest")
	list := r.list("localhost/multi:latest", map[string]string{"linux/amd64": manifestFor(amd[7:]), "linux/arm64": manifestFor("elsewhere")})
	fsys := r.mapFS()
	for _, tc := range []struct {
		p       platform
		wantErr string
	}{
		{p: amd64},
		{p: platform{OS: "linux", Architecture: "arm64"}.normalize(),
			wantErr: "is a manifest list whose image for linux/arm64/v8 (" + manifestFor("elsewhere")[7:19] + ") is not in the store: pull it (podman pull --platform linux/arm64/v8)"},
		{p: platform{OS: "linux", Architecture: "s390x"}, wantErr: "it has no manifest for linux/s390x, only for linux/amd64, linux/arm64/v8"},
	} {
		t.Run(tc.p.String(), func(t *testing.T) {
			st, err := openTest(fsys)
			if err != nil {
				t.Fatal(err)
			}
			st.(*storageStore).platform = tc.p
			img, err := st.Resolve("multi")
			if tc.wantErr != "" {
				if pe := (*PlatformError)(nil); !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve = %v, want a *PlatformError containing\n%s", err, tc.wantErr)
				}
				images, err := st.Images()
				if err != nil || len(images) != 1 || images[0].ID != amd {
					t.Errorf("Images = %v, %v; want the amd64 image alone", images, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != list || !slices.Equal(img.Names, []string{"localhost/multi:latest"}) || !slices.Equal(img.Root.Layers, amdLayers) {
				t.Errorf("Resolve = %s %q layers %q; want the list %s named as itself, with the amd64 image's layers %q", img.ID, img.Names, img.Root.Layers, list, amdLayers)
			}
		})
	}
}
