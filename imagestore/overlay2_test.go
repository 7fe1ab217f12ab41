package imagestore

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// shortFor is the fake's short link name of a layer folder: 26 base32 characters, as the drivers
// make them.
func shortFor(id string) string {
	sum := sha256.Sum256([]byte("short " + id))
	return base32.StdEncoding.EncodeToString(sum[:])[:shortLen]
}

// overlayLayers lays out the layer folders ids, the bottom one first, in home the way Docker's
// overlay2 and containers-storage's overlay driver do, and gives the Root.Layers of the top one.
func overlayLayers(m fstest.MapFS, home string, ids []string) []string {
	var lower []string // of the layer being made, uppermost first
	for i, id := range ids {
		short := shortFor(id)
		m[home+"/"+id+"/diff/etc/layer"+fmt.Sprint(i)] = &fstest.MapFile{Data: []byte(id)}
		m[home+"/"+id+"/link"] = &fstest.MapFile{Data: []byte(short)}
		if len(lower) > 0 {
			m[home+"/"+id+"/lower"] = &fstest.MapFile{Data: []byte(strings.Join(lower, ":"))}
			m[home+"/"+id+"/work"] = &fstest.MapFile{Mode: fs.ModeDir | 0o700}
		}
		m[home+"/l/"+short] = &fstest.MapFile{Mode: fs.ModeSymlink, Data: []byte("../" + id + "/diff")}
		lower = append([]string{"l/" + short}, lower...)
	}
	return lower
}

// fakeOverlay2 builds a Docker data root of the overlay2 graph driver the way dockerd lays it out.
type fakeOverlay2 struct {
	fs    fstest.MapFS
	repos map[string]map[string]string
}

func newFakeOverlay2() *fakeOverlay2 {
	return &fakeOverlay2{fs: fstest.MapFS{}, repos: map[string]map[string]string{}}
}

// image adds an image with the given layers and names, and gives its ID and its Root.Layers.
func (r *fakeOverlay2) image(diffIDs []string, names ...string) (string, []string) {
	config := fmt.Sprintf(`{"created":"2024-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":%s}}`, mustJSON(diffIDs))
	sum := sha256.Sum256([]byte(config))
	id := "sha256:" + hex.EncodeToString(sum[:])
	r.fs["image/overlay2/imagedb/content/sha256/"+id[7:]] = &fstest.MapFile{Data: []byte(config)}
	var caches []string
	for i := range diffIDs {
		chain := chainID(diffIDs[:i+1])
		r.fs["image/overlay2/layerdb/sha256/"+chain[7:]+"/cache-id"] = &fstest.MapFile{Data: []byte(cacheIDFor(chain))}
		caches = append(caches, cacheIDFor(chain))
	}
	layers := overlayLayers(r.fs, "overlay2", caches)
	for _, n := range names {
		repo, _, _ := strings.Cut(n, ":")
		if r.repos[repo] == nil {
			r.repos[repo] = map[string]string{}
		}
		r.repos[repo][n] = id
	}
	return id, layers
}

func (r *fakeOverlay2) mapFS() fstest.MapFS {
	r.fs["image/overlay2/repositories.json"] = &fstest.MapFile{Data: mustJSON(map[string]any{"Repositories": r.repos})}
	return r.fs
}

func TestOverlay2Resolve(t *testing.T) {
	r := newFakeOverlay2()
	desktop, desktopLayers := r.image([]string{diffA, diffB, diffC}, "desktop:latest", "desktop:v1")
	debian, debianLayers := r.image([]string{diffA, diffB}, "debian:12")
	base, baseLayers := r.image([]string{diffA})
	store, err := openTest(r.mapFS())
	if err != nil {
		t.Fatal(err)
	}
	if store.Kind() != "Docker's overlay2 storage driver" {
		t.Errorf("Kind() = %q", store.Kind())
	}
	// Layers shared by the images are the same short links.
	if len(desktopLayers) != 3 || !slices.Equal(desktopLayers[1:], debianLayers) || !slices.Equal(debianLayers[1:], baseLayers) {
		t.Fatalf("the fake's layers do not stack: %q %q %q", desktopLayers, debianLayers, baseLayers)
	}
	tests := []struct {
		ref    string
		id     string
		layers []string
	}{
		{"desktop", desktop, desktopLayers},
		{"docker.io/library/desktop:v1", desktop, desktopLayers},
		{"debian:12", debian, debianLayers},
		{base, base, baseLayers},
		{base[7:19], base, baseLayers},
	}
	for _, tt := range tests {
		img, err := store.Resolve(tt.ref)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.ref, err)
			continue
		}
		want := Root{Kind: Overlay, Dir: "overlay2", Layers: tt.layers}
		if img.ID != tt.id || !reflect.DeepEqual(img.Root, want) || img.Layer != "overlay2/"+tt.layers[0] {
			t.Errorf("Resolve(%q) = %s %+v layer %s\nwant %s %+v", tt.ref, img.ID, img.Root, img.Layer, tt.id, want)
		}
	}
	// The store's folder is not the file system's top: every path says so.
	moved := fstest.MapFS{}
	for p, f := range r.mapFS() {
		moved["var/lib/docker/"+p] = f
	}
	st, err := open(location{fsys: moved, dir: "var/lib/docker"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.Resolve("desktop")
	if err != nil {
		t.Fatal(err)
	}
	if img.Root.Dir != "var/lib/docker/overlay2" || img.Root.Paths()[2] != "var/lib/docker/overlay2/"+desktopLayers[2] {
		t.Errorf("Resolve(desktop) in var/lib/docker = %+v", img.Root)
	}
	if fi, err := fs.Stat(moved, img.Root.Paths()[1]+"/etc/layer1"); err != nil || fi.IsDir() {
		t.Errorf("the second layer's short link does not lead to its diff: %v", err)
	}
	images, err := st.Images()
	if err != nil || len(images) != 3 || images[0].Names[0] != "debian:12" || images[2].Root.Dir != "var/lib/docker/overlay2" {
		t.Errorf("Images() = %+v, %v", images, err)
	}
}

// TestOverlay2Damaged damages the layer folders of one image ("bad": three layers, the lower two
// shared with "ok") and checks that Resolve names what is wrong and where.
func TestOverlay2Damaged(t *testing.T) {
	top, mid := cacheIDFor(chainC3), cacheIDFor(chainAB)
	topShort, midShort := shortFor(top), shortFor(mid)
	set := func(p, data string) func(m fstest.MapFS) {
		return func(m fstest.MapFS) { m[p] = &fstest.MapFile{Data: []byte(data)} }
	}
	link := func(p, target string) func(m fstest.MapFS) {
		return func(m fstest.MapFS) { m[p] = &fstest.MapFile{Mode: fs.ModeSymlink, Data: []byte(target)} }
	}
	tests := []struct {
		name   string
		damage func(m fstest.MapFS)
		as     any    // pointer to the error type expected, or nil
		want   string // substring of the message
	}{
		{"missing link", func(m fstest.MapFS) { delete(m, "overlay2/"+top+"/link") }, nil,
			"layer folder overlay2/" + top + " has no link file (its short name): " + damaged},
		{"link with a path", set("overlay2/"+top+"/link", "../../etc"), nil,
			`overlay2/` + top + `/link holds "../../etc", not a short name of 26 capital letters and digits`},
		{"link with a newline", set("overlay2/"+top+"/link", topShort+"\n"), nil, "not a short name"},
		{"empty link", set("overlay2/"+top+"/link", ""), nil, `holds "", not a short name`},
		{"link a directory", func(m fstest.MapFS) {
			delete(m, "overlay2/"+top+"/link")
			m["overlay2/"+top+"/link/x"] = &fstest.MapFile{}
		}, nil, "overlay2/" + top + "/link is a directory, not a regular file: " + damaged},
		{"lower pointing outside", set("overlay2/"+top+"/lower", "l/"+midShort+":../../../etc"), nil,
			`overlay2/` + top + `/lower names "../../../etc", not a short link l/<26 capital letters and digits>`},
		{"lower absolute", set("overlay2/"+top+"/lower", "/etc"), nil, `names "/etc", not a short link`},
		{"lower with ..", set("overlay2/"+top+"/lower", "l/.."), nil, `names "l/..", not a short link`},
		{"empty lower", set("overlay2/"+top+"/lower", ""), nil, `names "", not a short link`},
		{"lower with an empty entry", set("overlay2/"+top+"/lower", "l/"+midShort+"::l/"+shortFor(cacheIDFor(diffA))), nil, `names "", not a short link`},
		{"lower naming a layer twice", set("overlay2/"+top+"/lower", "l/"+midShort+":l/"+midShort), nil,
			"overlay2/" + top + "/lower names l/" + midShort + " twice, or this layer itself"},
		{"lower naming the layer itself", set("overlay2/"+top+"/lower", "l/"+topShort), nil, "twice, or this layer itself"},
		{"short link pointing outside", link("overlay2/l/"+midShort, "/etc"), nil,
			`short link overlay2/l/` + midShort + ` points to "/etc", not ../<layer>/diff`},
		{"short link climbing out", link("overlay2/l/"+midShort, "../../../diff"), nil, `points to "../../../diff"`},
		{"own short link pointing at another layer", link("overlay2/l/"+topShort, "../"+mid+"/diff"), nil,
			`short link overlay2/l/` + topShort + ` points to "../` + mid + `/diff", not ../` + top + `/diff`},
		{"short link a directory", func(m fstest.MapFS) {
			delete(m, "overlay2/l/"+midShort)
			m["overlay2/l/"+midShort+"/x"] = &fstest.MapFile{}
		}, nil, "short link overlay2/l/" + midShort + " is not a symbolic link (its mode is d"},
		{"short link dangling", func(m fstest.MapFS) {
			for p := range m {
				if strings.HasPrefix(p, "overlay2/"+mid+"/diff/") {
					delete(m, p)
				}
			}
		}, new(*LayerMissingError), "its layer " + chainC3[7:19] + " is missing: overlay2/l/" + midShort + " does not exist"},
		{"short link missing", func(m fstest.MapFS) { delete(m, "overlay2/l/"+midShort) }, new(*LayerMissingError),
			"is missing: overlay2/l/" + midShort + " does not exist"},
		{"layer folder missing", func(m fstest.MapFS) {
			for p := range m {
				if strings.HasPrefix(p, "overlay2/"+top+"/") {
					delete(m, p)
				}
			}
		}, new(*LayerMissingError), `image "bad" (` + "%ID%" + `): its layer ` + chainC3[7:19] + ` is missing: overlay2/` + top + ` does not exist`},
	}
	// These damage a layer that "ok" has too.
	shared := map[string]bool{"short link pointing outside": true, "short link climbing out": true, "short link a directory": true,
		"short link dangling": true, "short link missing": true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFakeOverlay2()
			r.image([]string{diffA, diffB}, "ok:latest")
			id, _ := r.image([]string{diffA, diffB, diffC}, "bad:latest")
			m := r.mapFS()
			tt.damage(m)
			store, err := openTest(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Resolve("ok"); err != nil && !shared[tt.name] {
				t.Errorf("the undamaged image no longer resolves: %v", err)
			}
			_, err = store.Resolve("bad")
			want := strings.ReplaceAll(tt.want, "%ID%", id[7:19])
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Resolve(bad) error = %v\nwant one containing %q", err, want)
			}
			if tt.as != nil && !errors.As(err, tt.as) {
				t.Errorf("error %v is not a %T", err, tt.as)
			}
			if lm := (*LayerMissingError)(nil); errors.As(err, &lm) && (lm.Ref != "bad" || lm.ImageID != id || lm.ChainID != chainC3) {
				t.Errorf("LayerMissingError = %+v", lm)
			}
		})
	}
}

// FuzzOverlay2 feeds arbitrary link and lower files and short link targets to an overlay2 store:
// whatever they hold, Resolve gives an error or layers that are short links to folders.
func FuzzOverlay2(f *testing.F) {
	top, mid := cacheIDFor(chainAB), cacheIDFor(diffA)
	f.Add(shortFor(top), "l/"+shortFor(mid), "../"+mid+"/diff", "desktop")
	f.Add(shortFor(top), "l/"+shortFor(mid)+":l/"+shortFor(top), "../"+top+"/diff", "desktop")
	f.Add("../x", "l/../../etc", "/etc", "desktop")
	f.Add(shortFor(top), "", "..", "desktop")
	f.Add(shortFor(top), "l/"+strings.Repeat("A", 26)+":l/", "../x/diff", "sha256:")
	f.Fuzz(func(t *testing.T, link, lower, target, ref string) {
		r := newFakeOverlay2()
		r.image([]string{diffA, diffB}, "desktop:latest")
		m := r.mapFS()
		m["overlay2/"+top+"/link"] = &fstest.MapFile{Data: []byte(link)}
		m["overlay2/"+top+"/lower"] = &fstest.MapFile{Data: []byte(lower)}
		m["overlay2/l/"+strings.Repeat("A", 26)] = &fstest.MapFile{Mode: fs.ModeSymlink, Data: []byte(target)}
		store, err := openTest(m)
		if err != nil {
			t.Fatal(err)
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
		if img.Root.Kind != Overlay || img.Root.Dir != "overlay2" || len(img.Root.Layers) == 0 {
			t.Fatalf("Resolve(%q) = %+v", ref, img)
		}
		for _, l := range img.Root.Layers {
			short, ok := strings.CutPrefix(l, "l/")
			if !ok || !isShortName(short) {
				t.Fatalf("Resolve(%q) gave layer %q", ref, l)
			}
		}
		for _, p := range img.Root.Paths() {
			if fi, err := fs.Stat(m, p); err != nil || !fi.IsDir() {
				t.Fatalf("Resolve(%q) gave layer %s which is not a folder", ref, p)
			}
			target, err := fs.ReadLink(m, p)
			layer, ok := strings.CutSuffix(strings.TrimPrefix(target, "../"), "/diff")
			if err != nil || !ok || !isName(layer) {
				t.Fatalf("Resolve(%q) gave layer %s, a link to %q (%v)", ref, p, target, err)
			}
		}
	})
}
