package imagestore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"
)

// Diff IDs whose chain IDs were computed outside Go with sha256sum:
//
//	c2=sha256:$(printf '%s %s' $a $b | sha256sum)
//	c3=sha256:$(printf '%s %s' $c2 $c | sha256sum)
var (
	diffA   = "sha256:" + strings.Repeat("a", 64)
	diffB   = "sha256:" + strings.Repeat("b", 64)
	diffC   = "sha256:" + strings.Repeat("c", 64)
	diffD   = "sha256:" + strings.Repeat("d", 64)
	diffE   = "sha256:" + strings.Repeat("e", 64)
	chainAB = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
	chainC3 = "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588"
)

func TestChainID(t *testing.T) {
	tests := []struct {
		diffIDs []string
		want    string
	}{
		{[]string{diffA}, diffA},
		{[]string{diffA, diffB}, chainAB},
		{[]string{diffA, diffB, diffC}, chainC3},
	}
	for _, tt := range tests {
		if got := chainID(tt.diffIDs); got != tt.want {
			t.Errorf("chainID(%d layers) = %s, want %s", len(tt.diffIDs), got, tt.want)
		}
	}
}

// fakeRoot builds a Docker data root of the btrfs graph driver the way
// dockerd lays it out.
type fakeRoot struct {
	fs    fstest.MapFS
	repos map[string]map[string]string
}

func newFakeRoot() *fakeRoot {
	return &fakeRoot{fs: fstest.MapFS{}, repos: map[string]map[string]string{}}
}

// cacheIDFor is the fake's layer folder name for a chain ID.
func cacheIDFor(chain string) string {
	sum := sha256.Sum256([]byte("cache " + chain))
	return hex.EncodeToString(sum[:])
}

// image adds an image with the given layers and names and returns its ID.
func (r *fakeRoot) image(created string, diffIDs []string, names ...string) string {
	config := fmt.Sprintf(`{"architecture":"amd64","config":{"Cmd":["/sbin/init"]},"created":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":%s}}`,
		created, mustJSON(diffIDs))
	id := r.config(config)
	for i := range diffIDs {
		chain := chainID(diffIDs[:i+1])
		dir := "image/btrfs/layerdb/sha256/" + strings.TrimPrefix(chain, "sha256:")
		r.fs[dir+"/cache-id"] = &fstest.MapFile{Data: []byte(cacheIDFor(chain))}
		r.fs[dir+"/diff"] = &fstest.MapFile{Data: []byte(diffIDs[i])}
		r.fs["btrfs/subvolumes/"+cacheIDFor(chain)+"/etc/os-release"] = &fstest.MapFile{Data: []byte("ID=test\n")}
	}
	for _, n := range names {
		r.tag(n, id)
	}
	return id
}

// config stores a raw image config and returns its ID.
func (r *fakeRoot) config(data string) string {
	sum := sha256.Sum256([]byte(data))
	r.fs["image/btrfs/imagedb/content/sha256/"+hex.EncodeToString(sum[:])] = &fstest.MapFile{Data: []byte(data)}
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tag adds a repositories.json entry; repo is the name before ':' or '@'.
func (r *fakeRoot) tag(key, id string) {
	repo, _, _ := strings.Cut(key, "@")
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	if r.repos[repo] == nil {
		r.repos[repo] = map[string]string{}
	}
	r.repos[repo][key] = id
}

func (r *fakeRoot) mapFS() fstest.MapFS {
	r.fs["image/btrfs/repositories.json"] = &fstest.MapFile{Data: mustJSON(map[string]any{"Repositories": r.repos})}
	return r.fs
}

// dir writes the root to a temporary folder and returns it as an fs.FS.
func (r *fakeRoot) dir(t *testing.T) fs.FS {
	t.Helper()
	d := t.TempDir()
	if err := os.CopyFS(d, r.mapFS()); err != nil {
		t.Fatal(err)
	}
	return os.DirFS(d)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

const manifestDigest = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

// sample is a store with several images, tags, a digest reference, an
// unnamed image, an image without layers and two damaged images.
type sample struct {
	root                                        *fakeRoot
	desktop, server, debian, unnamed, scratchID string
	noCache, noSubvol                           string
	desktopLayer                                string
	created                                     time.Time
}

func newSample() sample {
	r := newFakeRoot()
	s := sample{root: r, created: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)}
	s.desktop = r.image("2024-05-06T07:08:09.123456789Z", []string{diffA, diffB, diffC},
		"desktop:latest", "desktop:v1", "desktop@"+manifestDigest)
	s.desktopLayer = "btrfs/subvolumes/" + cacheIDFor(chainC3)
	s.server = r.image("2023-01-01T00:00:00Z", []string{diffD}, "registry:5000/team/server:1.0")
	s.debian = r.image("2022-01-01T00:00:00Z", []string{diffA, diffB}, "debian:12")
	s.unnamed = r.image("2021-01-01T00:00:00Z", []string{diffE})
	s.scratchID = r.image("2020-01-01T00:00:00Z", []string{}, "scratchy:latest")

	s.noCache = r.image("2019-01-01T00:00:00Z", []string{diffE, diffD}, "nocache:latest")
	delete(r.fs, "image/btrfs/layerdb/sha256/"+strings.TrimPrefix(chainID([]string{diffE, diffD}), "sha256:")+"/cache-id")
	s.noSubvol = r.image("2019-01-01T00:00:00Z", []string{diffD, diffE}, "nosubvol:latest")
	chain := chainID([]string{diffD, diffE})
	delete(r.fs, "btrfs/subvolumes/"+cacheIDFor(chain)+"/etc/os-release")
	// The prefix of another image's ID, as a name: names win over prefixes.
	r.tag(strings.TrimPrefix(s.server, "sha256:")[:6]+":latest", s.debian)
	return s
}

func TestResolve(t *testing.T) {
	s := newSample()
	store, err := openTest(s.root.dir(t))
	if err != nil {
		t.Fatal(err)
	}
	if store.Kind() != "Docker's btrfs storage driver" {
		t.Errorf("Kind() = %q", store.Kind())
	}
	serverPrefix := strings.TrimPrefix(s.server, "sha256:")[:6]
	tests := []struct {
		ref  string
		want string // image ID
	}{
		{"desktop", s.desktop},
		{"desktop:latest", s.desktop},
		{"desktop:v1", s.desktop},
		{"docker.io/library/desktop", s.desktop},
		{"docker.io/library/desktop:v1", s.desktop},
		{"docker.io/desktop:latest", s.desktop},
		{"index.docker.io/library/desktop", s.desktop},
		{"desktop@" + manifestDigest, s.desktop},
		{"desktop:whatever@" + manifestDigest, s.desktop},
		{"registry:5000/team/server:1.0", s.server},
		{"debian:12", s.debian},
		{s.desktop, s.desktop},
		{strings.TrimPrefix(s.desktop, "sha256:"), s.desktop},
		{strings.TrimPrefix(s.unnamed, "sha256:")[:12], s.unnamed},
		{s.unnamed[:7+8], s.unnamed},
		{serverPrefix, s.debian}, // the name, not the ID prefix
		{serverPrefix[:5], s.server},
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

	img, err := store.Resolve("desktop")
	if err != nil {
		t.Fatal(err)
	}
	want := Image{
		ID:      s.desktop,
		Names:   []string{"desktop:latest", "desktop:v1", "desktop@" + manifestDigest},
		ChainID: chainC3,
		Created: s.created,
		Layer:   s.desktopLayer,
		Root:    Root{Kind: Snapshot, Dir: "btrfs/subvolumes", Layers: []string{path.Base(s.desktopLayer)}},
	}
	if !reflect.DeepEqual(img, want) {
		t.Errorf("Resolve(desktop)\n got %+v\nwant %+v", img, want)
	}
}

func TestResolveErrors(t *testing.T) {
	s := newSample()
	store, err := openTest(s.root.dir(t))
	if err != nil {
		t.Fatal(err)
	}
	short := func(id string) string { return strings.TrimPrefix(id, "sha256:")[:12] }
	tests := []struct {
		ref  string
		as   any    // pointer to the error type expected, or nil for a plain error
		want string // substring of the message
	}{
		{"desktop:v2", new(*NotFoundError), "image \"desktop:v2\" not found; the Docker data root / holds:\n  "},
		{"desktop:v2", new(*NotFoundError), ")\npass one of these, or build or pull \"desktop:v2\" first"},
		{"desktop:v2", new(*NotFoundError), "\n  desktop:latest, desktop:v1, desktop@" + manifestDigest + " (" + short(s.desktop) + ")\n"},
		{"desktop:v2", new(*NotFoundError), "\n  <none> (" + short(s.unnamed) + ")\n"},
		{"registry:5000/team/server", new(*NotFoundError), "not found"},
		{"ubuntu", new(*NotFoundError), `build or pull "ubuntu" first`},
		{"abc", new(*NotFoundError), "not found"},
		{"0000", new(*NotFoundError), `image "0000" not found`},
		{"sha256:" + strings.Repeat("0", 64), new(*NotFoundError), "not found"},
		{"Desktop", nil, `"Desktop" is not an image reference`},
		{"", nil, "is not an image reference"},
		{"sha256:xyz", nil, `"sha256:xyz" is not an image ID`},
		{"sha256:abc", nil, "4 to 64 lowercase hex digits"},
		{"scratchy", nil, "has no layers (its rootfs.diff_ids is empty)"},
		{"nocache", new(*LayerMissingError), "/cache-id does not exist; the image store looks damaged: check the image with `docker image inspect nocache`"},
		{"nosubvol", new(*LayerMissingError), "its layer " + short(chainID([]string{diffD, diffE})) + " is missing: btrfs/subvolumes/" + cacheIDFor(chainID([]string{diffD, diffE})) + " does not exist"},
	}
	for _, tt := range tests {
		_, err := store.Resolve(tt.ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", tt.ref)
			continue
		}
		if tt.as != nil && !errors.As(err, tt.as) {
			t.Errorf("Resolve(%q) error %v is not a %T", tt.ref, err, tt.as)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%q) error\n%v\ndoes not contain\n%s", tt.ref, err, tt.want)
		}
	}

	var lm *LayerMissingError
	if _, err := store.Resolve("nosubvol"); !errors.As(err, &lm) || lm.Path != "btrfs/subvolumes/"+cacheIDFor(chainID([]string{diffD, diffE})) || lm.ImageID != s.noSubvol {
		t.Errorf("Resolve(nosubvol) = %#v", err)
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	r := newFakeRoot()
	seen := map[string]string{}
	var prefix string
	for i := 0; prefix == ""; i++ {
		id := r.config(fmt.Sprintf(`{"created":"2024-01-01T00:00:00Z","comment":"%d","rootfs":{"type":"layers","diff_ids":[]}}`, i))
		p := strings.TrimPrefix(id, "sha256:")[:4]
		if _, dup := seen[p]; dup {
			prefix = p
			r.tag("first:latest", seen[p])
		}
		seen[p] = id
	}
	store, err := openTest(r.dir(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Resolve(prefix)
	var amb *AmbiguousError
	if !errors.As(err, &amb) {
		t.Fatalf("Resolve(%q) = %v, want *AmbiguousError", prefix, err)
	}
	if len(amb.Matches) != 2 || amb.Matches[0].Names[0] != "first:latest" {
		t.Errorf("Matches = %+v, want the two images, the named one first", amb.Matches)
	}
	if want := fmt.Sprintf("image ID prefix %q matches 2 images:\n  first:latest (%s", prefix, prefix); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestImages(t *testing.T) {
	s := newSample()
	delete(s.root.repos, "nocache") // Images reads every image's layer
	delete(s.root.fs, "image/btrfs/imagedb/content/sha256/"+strings.TrimPrefix(s.noCache, "sha256:"))
	store, err := openTest(s.root.dir(t))
	if err != nil {
		t.Fatal(err)
	}
	images, err := store.Images()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range images {
		got = append(got, fmt.Sprintf("%s %v %s", img.ID, img.Names, img.Layer))
	}
	serverPrefix := strings.TrimPrefix(s.server, "sha256:")[:6]
	want := []string{
		fmt.Sprintf("%s [%s:latest debian:12] btrfs/subvolumes/%s", s.debian, serverPrefix, cacheIDFor(chainAB)),
		fmt.Sprintf("%s [desktop:latest desktop:v1 desktop@%s] %s", s.desktop, manifestDigest, s.desktopLayer),
		fmt.Sprintf("%s [nosubvol:latest] btrfs/subvolumes/%s", s.noSubvol, cacheIDFor(chainID([]string{diffD, diffE}))),
		fmt.Sprintf("%s [registry:5000/team/server:1.0] btrfs/subvolumes/%s", s.server, cacheIDFor(diffD)),
		fmt.Sprintf("%s [scratchy:latest] ", s.scratchID),
		fmt.Sprintf("%s [] btrfs/subvolumes/%s", s.unnamed, cacheIDFor(diffE)),
	}
	if serverPrefix > "debian" { // names sort as strings
		want[0] = fmt.Sprintf("%s [debian:12 %s:latest] btrfs/subvolumes/%s", s.debian, serverPrefix, cacheIDFor(chainAB))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Images()\n got %q\nwant %q", got, want)
	}

	// A damaged image makes the listing fail, naming what is missing.
	s.root.fs["image/btrfs/layerdb/sha256/"+strings.TrimPrefix(diffE, "sha256:")+"/cache-id"] = &fstest.MapFile{Data: []byte("../escape")}
	store, err = openTest(s.root.mapFS())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Images(); err == nil || !strings.Contains(err.Error(), `holds "../escape", not a layer folder name`) {
		t.Errorf("Images() error = %v, want a damaged cache-id", err)
	}
}

func TestDamagedStore(t *testing.T) {
	good := func() *fakeRoot {
		r := newFakeRoot()
		r.image("2024-01-01T00:00:00Z", []string{diffA}, "ok:latest")
		return r
	}
	tests := []struct {
		name    string
		damage  func(r *fakeRoot) fstest.MapFS
		openErr string // error from Open, or else
		err     string // error from Resolve("bad")
	}{
		{
			name: "garbage repositories.json",
			damage: func(r *fakeRoot) fstest.MapFS {
				m := r.mapFS()
				m["image/btrfs/repositories.json"] = &fstest.MapFile{Data: []byte(`{"Repositories":{"ok":`)}
				return m
			},
			openErr: "image/btrfs/repositories.json: unexpected end of JSON input; expected {\"Repositories\"",
		},
		{
			name: "repositories.json maps to a non-ID",
			damage: func(r *fakeRoot) fstest.MapFS {
				r.tag("bad:latest", "sha256:1234")
				return r.mapFS()
			},
			openErr: `"bad:latest" maps to "sha256:1234", not an image ID`,
		},
		{
			name: "repositories.json with an invalid reference",
			damage: func(r *fakeRoot) fstest.MapFS {
				r.repos["Bad"] = map[string]string{"Bad:latest": "sha256:" + strings.Repeat("1", 64)}
				return r.mapFS()
			},
			openErr: `"Bad:latest" is not an image reference`,
		},
		{
			name: "garbage config",
			damage: func(r *fakeRoot) fstest.MapFS {
				r.tag("bad:latest", r.config(`{"rootfs": [`))
				return r.mapFS()
			},
			err: "unexpected end of JSON input: the image store looks damaged",
		},
		{
			name: "config that does not match its ID",
			damage: func(r *fakeRoot) fstest.MapFS {
				id := r.config(`{"created":"2024-01-01T00:00:00Z"}`)
				r.fs["image/btrfs/imagedb/content/sha256/"+strings.TrimPrefix(id, "sha256:")] = &fstest.MapFile{Data: []byte(`{}`)}
				r.tag("bad:latest", id)
				return r.mapFS()
			},
			err: "does not hash to its ID",
		},
		{
			name: "tagged image without config",
			damage: func(r *fakeRoot) fstest.MapFS {
				r.tag("bad:latest", "sha256:"+strings.Repeat("1", 64))
				return r.mapFS()
			},
			err: "image 111111111111 has no config image/btrfs/imagedb/content/sha256/1111",
		},
		{
			name: "malformed diff ID",
			damage: func(r *fakeRoot) fstest.MapFS {
				r.tag("bad:latest", r.config(`{"created":"2024-01-01T00:00:00Z","rootfs":{"diff_ids":["sha256:xyz"]}}`))
				return r.mapFS()
			},
			err: `diff ID "sha256:xyz" is not sha256:<64 hex>`,
		},
		{
			name: "empty cache-id",
			damage: func(r *fakeRoot) fstest.MapFS {
				r.tag("bad:latest", r.image("2024-01-01T00:00:00Z", []string{diffB}))
				r.fs["image/btrfs/layerdb/sha256/"+strings.TrimPrefix(diffB, "sha256:")+"/cache-id"] = &fstest.MapFile{Data: []byte("\n")}
				return r.mapFS()
			},
			err: `holds "", not a layer folder name`,
		},
		{
			name: "layer is a file",
			damage: func(r *fakeRoot) fstest.MapFS {
				r.tag("bad:latest", r.image("2024-01-01T00:00:00Z", []string{diffB}))
				delete(r.fs, "btrfs/subvolumes/"+cacheIDFor(diffB)+"/etc/os-release")
				r.fs["btrfs/subvolumes/"+cacheIDFor(diffB)] = &fstest.MapFile{Data: []byte("x")}
				return r.mapFS()
			},
			err: "is missing: btrfs/subvolumes/" + cacheIDFor(diffB) + " does not exist",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := openTest(tt.damage(good()))
			if tt.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.openErr) {
					t.Fatalf("Open error = %v, want one containing %q", err, tt.openErr)
				}
				if !strings.Contains(err.Error(), "damaged") {
					t.Errorf("Open error %q does not say the store looks damaged", err)
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
				t.Errorf("Resolve(bad) error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	dir := func(paths ...string) fstest.MapFS {
		m := fstest.MapFS{}
		for _, p := range paths {
			m[p] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
		}
		return m
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		as   any // pointer to the expected error type, nil for ErrNotStore
		want string
	}{
		{"zfs", dir("image/zfs/imagedb", "zfs/graph"), new(*UnsupportedError),
			"the Docker data root / keeps its images with the zfs storage driver, which dockerinit cannot boot from; dockerinit boots Docker's btrfs and overlay2"},
		{"containerd without its database", dir("containerd/daemon", "volumes"), nil,
			"has no image/ folder (a graph driver store) and no containerd image store: looked for io.containerd.metadata.v1.bolt/meta.db in /containerd/daemon"},
		{"the parent folder", dir("lib/docker/image/btrfs", "cache", "log"), nil,
			"not an image store: / has no image/ folder (a Docker data root), io.containerd.metadata.v1.bolt (a containerd root) or overlay-images/ (a containers-storage root); it holds cache, lib, log"},
		{"empty folder", fstest.MapFS{}, nil, "it holds nothing."},
		{"image without drivers", fstest.MapFS{"image/readme": {}}, nil, "image holds no storage driver folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openTest(tt.fsys)
			switch {
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

func TestOpenPrefersBtrfs(t *testing.T) {
	r := newFakeRoot()
	id := r.image("2024-01-01T00:00:00Z", []string{diffA}, "ok:latest")
	m := r.mapFS()
	m["image/overlay2/repositories.json"] = &fstest.MapFile{Data: []byte(`{}`)}
	store, err := openTest(m)
	if err != nil {
		t.Fatal(err)
	}
	if img, err := store.Resolve("ok"); err != nil || img.ID != id {
		t.Errorf("Resolve(ok) = %v, %v", img.ID, err)
	}
}

func TestFreshDocker(t *testing.T) {
	m := fstest.MapFS{"image/btrfs/layerdb/tmp": {Mode: fs.ModeDir | 0o700}}
	store, err := openTest(m)
	if err != nil {
		t.Fatal(err)
	}
	if images, err := store.Images(); err != nil || len(images) != 0 {
		t.Errorf("Images() = %v, %v; want none", images, err)
	}
	_, err = store.Resolve("desktop")
	if want := `image "desktop" not found: the Docker data root / holds no images; build or pull it first`; err == nil || err.Error() != want {
		t.Errorf("Resolve error = %v, want %q", err, want)
	}
}

func FuzzOpenResolve(f *testing.F) {
	config := `{"created":"2024-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":["` + diffA + `","` + diffB + `","` + diffC + `"]}}`
	sum := sha256.Sum256([]byte(config))
	id := "sha256:" + hex.EncodeToString(sum[:])
	tagged := []byte(`{"Repositories":{"desktop":{"desktop:latest":"` + id + `"}}}`)
	f.Add(tagged, []byte(config), "x", "desktop", byte(0))
	f.Add([]byte(`{"Repositories":{"desktop":{"desktop@`+manifestDigest+`":"`+id+`"}}}`), []byte(config), "x\n", id[7:15], byte(0))
	f.Add([]byte(`{"Repositories":null}`), []byte(`{"rootfs":{"diff_ids":null}}`), "../x", id, byte(0))
	f.Add([]byte(`[]`), []byte(`{"created":"yesterday"}`), "", "sha256:", byte(0))
	f.Add(tagged, []byte(config), "x", "desktop", byte(0b11))     // repositories.json a device
	f.Add(tagged, []byte(config), "x", "desktop", byte(0b1000))   // the config a fifo
	f.Add(tagged, []byte(config), "x", "desktop", byte(0b010000)) // the cache-ids directories
	// modes picks, two bits each, what repositories.json, the config and the cache-ids are: a
	// regular file, a directory, a fifo or a device, as a hostile disk may have them.
	kinds := []fs.FileMode{0, fs.ModeDir, fs.ModeNamedPipe, fs.ModeDevice | fs.ModeCharDevice}
	f.Fuzz(func(t *testing.T, repos, config []byte, cacheID, ref string, modes byte) {
		mode := func(i int) fs.FileMode { return kinds[modes>>(2*i)&3] }
		sum := sha256.Sum256(config)
		m := fstest.MapFS{
			"image/btrfs/repositories.json":                                    {Data: repos, Mode: mode(0)},
			"image/btrfs/imagedb/content/sha256/" + hex.EncodeToString(sum[:]): {Data: config, Mode: mode(1)},
			"image/btrfs/layerdb/sha256/" + chainC3[7:] + "/cache-id":          {Data: []byte(cacheID), Mode: mode(2)},
			"image/btrfs/layerdb/sha256/" + diffA[7:] + "/cache-id":            {Data: []byte(cacheID), Mode: mode(2)},
			"btrfs/subvolumes/x/etc/hostname":                                  {Data: []byte("x")},
		}
		store, err := openTest(m)
		if err != nil {
			return
		}
		if mode(0) != 0 {
			t.Fatalf("Open read a repositories.json that is not a regular file (%v)", mode(0))
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
		if !isImageID(img.ID) || !isImageID(img.ChainID) || path.Dir(img.Layer) != "btrfs/subvolumes" || !fs.ValidPath(img.Layer) {
			t.Fatalf("Resolve(%q) = %+v", ref, img)
		}
		if fi, err := fs.Stat(m, img.Layer); err != nil || !fi.IsDir() {
			t.Fatalf("Resolve(%q) gave layer %s which is not a folder", ref, img.Layer)
		}
		if mode(1) != 0 || mode(2) != 0 {
			t.Fatalf("Resolve(%q) = %+v from a config (%v) or cache-id (%v) that is not a regular file", ref, img, mode(1), mode(2))
		}
	})
}

// TestHostileMetadata replaces each metadata file of a store on disk with what a hostile or
// damaged disk could hold there, and checks that Open and Resolve refuse it at once, saying what
// was found: read as it was, a link to /dev/zero or a huge sparse file filled the memory and a
// fifo hung the boot.
func TestHostileMetadata(t *testing.T) {
	r := newFakeRoot()
	id := r.image("2024-01-01T00:00:00Z", []string{diffA}, "desktop:latest")
	files := []struct {
		name, path string
		limit      string
	}{
		{"repositories.json", "image/btrfs/repositories.json", "64 MiB"},
		{"image config", "image/btrfs/imagedb/content/sha256/" + strings.TrimPrefix(id, "sha256:"), "16 MiB"},
		{"cache-id", "image/btrfs/layerdb/sha256/" + strings.TrimPrefix(diffA, "sha256:") + "/cache-id", "4 KiB"},
	}
	kinds := []struct {
		name string
		make func(p string) error
		want string // what the error says of the file, after its path
	}{
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }, " is a named pipe (fifo), not a regular file"},
		{"link to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, " is a symbolic link to a character device, not a regular file"},
		{"huge sparse file", func(p string) error { return errors.Join(os.WriteFile(p, nil, 0o644), os.Truncate(p, 1<<40)) },
			" is 1 TiB (1099511627776 bytes), more than the LIMIT such a file may have"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, " is a directory, not a regular file"},
	}
	for _, f := range files {
		for _, k := range kinds {
			t.Run(f.name+" is a "+k.name, func(t *testing.T) {
				dir := t.TempDir()
				if err := os.CopyFS(dir, r.mapFS()); err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(dir, f.path)
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := k.make(p); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() {
					store, err := openTest(os.DirFS(dir))
					if err == nil {
						_, err = store.Resolve("desktop")
					}
					done <- err
				}()
				var err error
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("Open and Resolve hang")
				}
				want := f.path + strings.ReplaceAll(k.want, "LIMIT", f.limit)
				if err == nil || !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), damaged) {
					t.Errorf("error = %v\nwant one containing %q and ending in the advice", err, want)
				}
			})
		}
	}
}

// openTest opens the store whose data root is fsys.
func openTest(fsys fs.FS) (Store, error) { return open(location{fsys: fsys, dir: "."}, Options{}) }

// dockerd keeps a containerd of its own beside a graph driver store, for containers: its
// database, empty of images or unreadable, must not hide the graph store's images.
func TestOpenGraphBesideDockerdsContainerd(t *testing.T) {
	r := newFakeRoot()
	id := r.image("2024-01-01T00:00:00Z", []string{diffA}, "ok:latest")
	m := r.mapFS()
	m["containerd/daemon/"+containerdMetaDB] = &fstest.MapFile{Data: []byte("not a bbolt database")}
	store, err := openTest(m)
	if err != nil {
		t.Fatal(err)
	}
	if img, err := store.Resolve("ok"); err != nil || img.ID != id {
		t.Errorf("Resolve(ok) = %v, %v", img.ID, err)
	}
}
