package imagestore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// ctrdFixture builds a containerd root the way containerd lays it out (checked against a real
// containerd 1.6 root made with `ctr images import`): meta.db and the snapshotters' metadata.db
// written with bbolt, blobs named by their real sha256, a folder per snapshot.
type ctrdFixture struct {
	t       *testing.T
	top     string                                     // the file system's top
	dir     string                                     // the containerd root in it
	images  map[string]map[string]descriptor           // namespace -> name -> target
	labels  map[string]map[string]map[string]string    // namespace -> blob digest -> label -> value
	snaps   map[string]map[string]map[string][2]string // namespace -> snapshotter -> chain ID -> {backend key, parent chain ID}
	backend map[string]map[string]backendSnapshot      // snapshotter -> backend key -> record
	nextID  uint64
}

const ctrdDir = "var/lib/containerd"

func newCtrdFixture(t *testing.T) *ctrdFixture {
	f := &ctrdFixture{t: t, top: t.TempDir(), dir: ctrdDir,
		images: map[string]map[string]descriptor{}, labels: map[string]map[string]map[string]string{},
		snaps: map[string]map[string]map[string][2]string{}, backend: map[string]map[string]backendSnapshot{}}
	f.mkdir(contentBlobs)
	return f
}

// path gives a path of the containerd root on the host.
func (f *ctrdFixture) path(p string) string {
	return filepath.Join(f.top, f.dir, filepath.FromSlash(p))
}

func (f *ctrdFixture) mkdir(p string) {
	if err := os.MkdirAll(f.path(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// blob adds data to the content store and gives its digest.
func (f *ctrdFixture) blob(data string) string {
	sum := sha256.Sum256([]byte(data))
	d := "sha256:" + hex.EncodeToString(sum[:])
	if err := os.WriteFile(f.path(blobPath(d)), []byte(data), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// manifest adds an OCI config and manifest for an image of arch with the layers diffIDs and
// gives the manifest's descriptor and the config's digest.
func (f *ctrdFixture) manifest(created, arch string, diffIDs []string) (descriptor, string) {
	config := f.blob(fmt.Sprintf(`{"architecture":%q,"os":"linux","created":%q,"config":{"Cmd":["/sbin/init"]},"rootfs":{"type":"layers","diff_ids":%s}}`,
		arch, created, mustJSON(diffIDs)))
	var layers []string
	for _, d := range diffIDs {
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":1}`, d))
	}
	m := f.blob(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":1},"layers":[%s]}`,
		mediaOCIManifest, mediaOCIConfig, config, strings.Join(layers, ",")))
	return descriptor{MediaType: mediaOCIManifest, Digest: m}, config
}

// index adds an OCI index of the entries.
func (f *ctrdFixture) index(entries ...descriptor) descriptor {
	return descriptor{MediaType: mediaOCIIndex, Digest: f.blob(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":%s}`, mediaOCIIndex, mustJSON(entries)))}
}

func (f *ctrdFixture) tag(ns, name string, target descriptor) {
	if f.images[ns] == nil {
		f.images[ns] = map[string]descriptor{}
	}
	f.images[ns][name] = target
}

// unpack records the layers diffIDs as unpacked in namespace ns with the snapshotter sn, as
// containerd's unpacker does: a committed snapshot per layer, keyed by chain ID, a folder for
// each, and the config's gc.ref.snapshot label. It gives the folders, the uppermost first.
func (f *ctrdFixture) unpack(ns, sn, config string, diffIDs []string) []string {
	if f.snaps[ns] == nil {
		f.snaps[ns] = map[string]map[string][2]string{}
	}
	if f.snaps[ns][sn] == nil {
		f.snaps[ns][sn] = map[string][2]string{}
	}
	if f.backend[sn] == nil {
		f.backend[sn] = map[string]backendSnapshot{}
	}
	var folders []string
	parent := ""
	for i := range diffIDs {
		chain := chainID(diffIDs[:i+1])
		rec, ok := f.snaps[ns][sn][chain]
		if !ok {
			f.nextID++
			rec = [2]string{fmt.Sprintf("%s/%d/%s", ns, f.nextID+10, chain), parent}
			f.snaps[ns][sn][chain] = rec
			var parentKey string
			if parent != "" {
				parentKey = f.snaps[ns][sn][parent][0]
			}
			f.backend[sn][rec[0]] = backendSnapshot{id: f.nextID, kind: kindCommitted, parent: parentKey}
		}
		folder := fmt.Sprint(f.backend[sn][rec[0]].id)
		if sn == "overlayfs" {
			folder += "/fs"
		}
		folder = "io.containerd.snapshotter.v1." + sn + "/snapshots/" + folder
		f.mkdir(folder)
		folders = append([]string{path.Join(f.dir, folder)}, folders...)
		parent = chain
	}
	f.label(ns, config, gcRefSnapshot+sn, chainID(diffIDs))
	return folders
}

func (f *ctrdFixture) label(ns, blob, key, value string) {
	if f.labels[ns] == nil {
		f.labels[ns] = map[string]map[string]string{}
	}
	if f.labels[ns][blob] == nil {
		f.labels[ns][blob] = map[string]string{}
	}
	f.labels[ns][blob][key] = value
}

// write writes meta.db and the snapshotters' metadata.db.
func (f *ctrdFixture) write() {
	f.t.Helper()
	f.bolt(containerdMetaDB, func(tx *bbolt.Tx) error {
		v1, err := tx.CreateBucket([]byte("v1"))
		if err != nil {
			return err
		}
		if err := v1.Put([]byte("version"), []byte{6}); err != nil {
			return err
		}
		nss := map[string]bool{}
		for ns := range f.images {
			nss[ns] = true
		}
		for ns := range f.snaps {
			nss[ns] = true
		}
		for ns := range nss {
			for name, d := range f.images[ns] {
				target := create(v1, ns, "images", name, "target")
				put(target, "digest", d.Digest)
				put(target, "mediatype", d.MediaType)
				put(target, "size", string(binary.AppendVarint(nil, 1)))
				put(create(v1, ns, "images", name), "createdat", "\x01\x00")
			}
			for blob, labels := range f.labels[ns] {
				put(create(v1, ns, "content", "blob", blob), "size", string(binary.AppendVarint(nil, 1)))
				for k, v := range labels {
					put(create(v1, ns, "content", "blob", blob, "labels"), k, v)
				}
			}
			for sn, recs := range f.snaps[ns] {
				for chain, rec := range recs {
					b := create(v1, ns, "snapshots", sn, chain)
					put(b, "name", rec[0])
					if rec[1] != "" {
						put(b, "parent", rec[1])
					}
				}
			}
		}
		return nil
	})
	for sn, recs := range f.backend {
		f.bolt("io.containerd.snapshotter.v1."+sn+"/metadata.db", func(tx *bbolt.Tx) error {
			v1, err := tx.CreateBucket([]byte("v1"))
			if err != nil {
				return err
			}
			create(v1, "parents")
			for key, r := range recs {
				b := create(v1, "snapshots", key)
				put(b, "id", string(binary.AppendUvarint(nil, r.id)))
				put(b, "kind", string([]byte{r.kind}))
				if r.parent != "" {
					put(b, "parent", r.parent)
				}
			}
			return nil
		})
	}
}

func (f *ctrdFixture) bolt(name string, fill func(*bbolt.Tx) error) {
	f.mkdir(path.Dir(name))
	db, err := bbolt.Open(f.path(name), 0o644, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := db.Update(fill); err != nil {
		f.t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		f.t.Fatal(err)
	}
}

// create makes the nested buckets names under b.
func create(b *bbolt.Bucket, names ...string) *bbolt.Bucket {
	for _, n := range names {
		var err error
		if b, err = b.CreateBucketIfNotExists([]byte(n)); err != nil {
			panic(err)
		}
	}
	return b
}

func put(b *bbolt.Bucket, k, v string) {
	if err := b.Put([]byte(k), []byte(v)); err != nil {
		panic(err)
	}
}

func (f *ctrdFixture) location() location {
	return location{fsys: os.DirFS(f.top), host: f.top, dir: f.dir}
}

func (f *ctrdFixture) open(ns string, p platform) (*containerdStore, error) {
	return newContainerd(f.location(), ns, p)
}

var amd64 = platform{OS: "linux", Architecture: "amd64"}

// ctrdSample is a containerd root with images in namespace moby (overlayfs), one of them
// multi-platform, and in k8s.io (btrfs).
type ctrdSample struct {
	*ctrdFixture
	sampleID, otherID, multiAMD, multiARM64, multiARMv6, multiARMv7 string
	sampleTarget, multiTarget                                       descriptor
	sampleLayers, otherLayers, multiLayers, k8sLayers               []string
}

func newCtrdSample(t *testing.T) ctrdSample {
	f := newCtrdFixture(t)
	s := ctrdSample{ctrdFixture: f}
	s.sampleTarget, s.sampleID = f.manifest("2024-01-02T03:04:05Z", "amd64", []string{diffA, diffB})
	f.tag("moby", "docker.io/library/sample_image:latest", s.sampleTarget)
	f.tag("moby", "docker.io/library/sample_image@"+s.sampleTarget.Digest, s.sampleTarget)
	f.tag("moby", s.sampleID, s.sampleTarget) // as CRI names an image by its ID
	s.sampleLayers = f.unpack("moby", "overlayfs", s.sampleID, []string{diffA, diffB})

	other, otherID := f.manifest("2023-01-01T00:00:00Z", "amd64", []string{diffC})
	s.otherID = otherID
	// A Docker manifest list around it: another target, the same image.
	list := descriptor{MediaType: mediaDockerList, Digest: f.blob(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":1,"platform":{"architecture":"amd64","os":"linux"}}]}`,
		mediaDockerList, mediaOCIManifest, other.Digest))}
	f.tag("moby", "docker.io/library/other_image:v1", other)
	f.tag("moby", "registry.example:5000/team/other:2", list)
	s.otherLayers = f.unpack("moby", "overlayfs", otherID, []string{diffC})

	layers := []string{diffA, diffD}
	var amd, arm64, armv6, armv7 descriptor
	amd, s.multiAMD = f.manifest("2025-05-06T07:08:09Z", "amd64", layers)
	arm64, s.multiARM64 = f.manifest("2025-05-06T07:08:09Z", "arm64", layers)
	armv6, s.multiARMv6 = f.manifest("2025-05-06T07:08:09Z", "arm", layers)
	armv7, s.multiARMv7 = f.manifest("2025-05-06T07:08:09Z", "arm", layers)
	at := func(d descriptor, os, arch, variant string) descriptor {
		d.Platform = &platform{OS: os, Architecture: arch, Variant: variant}
		return d
	}
	attestation, _ := f.manifest("2025-05-06T07:08:09Z", "unknown", nil)
	s.multiTarget = f.index(at(arm64, "linux", "arm64", "v8"), at(armv6, "linux", "arm", "v6"), at(armv7, "linux", "arm", "v7"),
		at(amd, "linux", "amd64", ""), at(attestation, "unknown", "unknown", ""),
		// pulled for other platforms only: the blob is not there
		descriptor{MediaType: mediaOCIManifest, Digest: "sha256:" + strings.Repeat("5", 64), Platform: &platform{OS: "linux", Architecture: "s390x"}})
	// An index whose entry without a platform names the image index, as an OCI layout's
	// index.json does.
	f.tag("moby", "docker.io/library/multi:1", f.index(s.multiTarget))
	s.multiLayers = f.unpack("moby", "overlayfs", s.multiAMD, layers)

	f.tag("k8s.io", "docker.io/library/sample_image:latest", s.sampleTarget)
	s.k8sLayers = f.unpack("k8s.io", "btrfs", s.sampleID, []string{diffA, diffB})
	return s
}

func TestContainerdResolve(t *testing.T) {
	s := newCtrdSample(t)
	s.write()
	st, err := s.open("moby", amd64)
	if err != nil {
		t.Fatal(err)
	}
	overlay := func(layers []string) Root {
		var rel []string
		for _, l := range layers {
			rel = append(rel, strings.TrimPrefix(l, ctrdDir+"/io.containerd.snapshotter.v1.overlayfs/snapshots/"))
		}
		return Root{Kind: Overlay, Dir: ctrdDir + "/io.containerd.snapshotter.v1.overlayfs/snapshots", Layers: rel}
	}
	sample := Image{ID: s.sampleID, ChainID: chainAB, Names: []string{"sample_image:latest", "sample_image@" + s.sampleTarget.Digest},
		Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Layer: s.sampleLayers[0], Root: overlay(s.sampleLayers)}
	other := Image{ID: s.otherID, ChainID: diffC, Names: []string{"other_image:v1", "registry.example:5000/team/other:2"},
		Created: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), Layer: s.otherLayers[0], Root: overlay(s.otherLayers)}
	multi := Image{ID: s.multiAMD, ChainID: chainID([]string{diffA, diffD}), Names: []string{"multi:1"},
		Created: time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC), Layer: s.multiLayers[0], Root: overlay(s.multiLayers)}
	tests := []struct {
		ref  string
		want Image
	}{
		{"sample_image", sample},
		{"sample_image:latest", sample},
		{"docker.io/library/sample_image:latest", sample},
		{"library/sample_image", sample},
		{"sample_image@" + s.sampleTarget.Digest, sample},
		{s.sampleID, sample},                                // the config digest: the image ID
		{strings.TrimPrefix(s.sampleID, "sha256:"), sample}, // bare
		{strings.TrimPrefix(s.sampleID, "sha256:")[:6], sample},
		{s.sampleTarget.Digest[:13], sample}, // the manifest digest Docker shows as ID
		{"other_image:v1", other},
		{"registry.example:5000/team/other:2", other}, // through a Docker manifest list
		{s.otherID[:11], other},
		{"multi:1", multi}, // through two indexes, to the amd64 manifest
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := st.Resolve(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%q) =\n%+v\nwant\n%+v", tt.ref, got, tt.want)
			}
		})
	}

	images, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Image{multi, other, sample}; !reflect.DeepEqual(images, want) {
		t.Errorf("Images() =\n%+v\nwant\n%+v", images, want)
	}
	if got, want := st.Kind(), "containerd (overlayfs snapshotter, namespace moby)"; got != want {
		t.Errorf("Kind() = %q, want %q", got, want)
	}
	if got := st.Dirs(); !reflect.DeepEqual(got, []string{ctrdDir}) {
		t.Errorf("Dirs() = %q", got)
	}

	// k8s.io unpacked it with btrfs: one subvolume with the whole root.
	k8s, err := s.open("k8s.io", amd64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := k8s.Resolve("sample_image")
	if err != nil {
		t.Fatal(err)
	}
	want := Root{Kind: Snapshot, Dir: ctrdDir + "/io.containerd.snapshotter.v1.btrfs/snapshots", Layers: []string{path.Base(s.k8sLayers[0])}}
	if !reflect.DeepEqual(img.Root, want) || img.Layer != want.Paths()[0] {
		t.Errorf("k8s.io: Root = %+v, Layer %s; want %+v", img.Root, img.Layer, want)
	}
	if got, want := k8s.Kind(), "containerd (btrfs snapshotter, namespace k8s.io)"; got != want {
		t.Errorf("Kind() = %q, want %q", got, want)
	}
}

func TestContainerdPlatform(t *testing.T) {
	s := newCtrdSample(t)
	s.write()
	tests := []struct {
		p       platform
		want    string // image ID
		wantErr string
	}{
		{p: amd64, want: s.multiAMD},
		{p: platform{OS: "linux", Architecture: "x86_64"}, want: s.multiAMD},
		{p: platform{OS: "linux", Architecture: "arm64"}, want: s.multiARM64},
		{p: platform{OS: "linux", Architecture: "aarch64", Variant: "v8"}, want: s.multiARM64},
		{p: platform{OS: "linux", Architecture: "arm", Variant: "v7"}, want: s.multiARMv7},
		{p: platform{OS: "linux", Architecture: "arm"}, want: s.multiARMv7},
		{p: platform{OS: "linux", Architecture: "arm", Variant: "v8"}, want: s.multiARMv7}, // the newest older one
		{p: platform{OS: "linux", Architecture: "arm", Variant: "v6"}, want: s.multiARMv6},
		{p: platform{OS: "linux", Architecture: "arm", Variant: "v5"},
			wantErr: "image docker.io/library/multi:1: it has no manifest for linux/arm/v5, only for linux/arm64/v8, linux/arm/v6, linux/arm/v7, linux/amd64, linux/s390x: build or pull the image for linux/arm/v5"},
		{p: platform{OS: "linux", Architecture: "riscv64"}, wantErr: "it has no manifest for linux/riscv64, only for linux/arm64/v8, linux/arm/v6, linux/arm/v7, linux/amd64, linux/s390x"},
		{p: platform{OS: "linux", Architecture: "s390x"},
			wantErr: "image docker.io/library/multi:1: its manifest for linux/s390x (555555555555) is not in the content store, as only other platforms were pulled: pull it for linux/s390x (docker pull --platform linux/s390x, or ctr -n moby images pull --platform linux/s390x)"},
	}
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			st, err := s.open("moby", tt.p)
			if err != nil {
				t.Fatal(err)
			}
			img, err := st.Resolve("multi:1")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve = %v, want an error containing\n%s", err, tt.wantErr)
				}
				if pe := (*PlatformError)(nil); !errors.As(err, &pe) {
					t.Errorf("Resolve's error is a %T, want a *PlatformError", err)
				}
				// The list leaves it out, and still has the others: one image pulled for
				// another machine once hid the whole store (Docker's store was then not found).
				images, err := st.Images()
				if err != nil {
					t.Fatalf("Images: %v", err)
				}
				if len(images) == 0 {
					t.Error("Images is empty")
				}
				for _, im := range images {
					if slices.Contains(im.Names, "multi:1") {
						t.Errorf("Images lists multi:1, which has nothing for %s", tt.p)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != tt.want {
				t.Errorf("ID = %s, want %s", img.ID, tt.want)
			}
			// Every platform's image has the same layers, unpacked once.
			if img.Layer != s.multiLayers[0] {
				t.Errorf("Layer = %s, want %s", img.Layer, s.multiLayers[0])
			}
		})
	}
}

func TestPlatformNormalize(t *testing.T) {
	tests := []struct{ in, want platform }{
		{platform{"Linux", "X86_64", ""}, platform{"linux", "amd64", ""}},
		{platform{"linux", "amd64", "v1"}, platform{"linux", "amd64", ""}},
		{platform{"linux", "amd64", "v3"}, platform{"linux", "amd64", "v3"}},
		{platform{"linux", "aarch64", ""}, platform{"linux", "arm64", "v8"}},
		{platform{"linux", "arm64", "8"}, platform{"linux", "arm64", "v8"}},
		{platform{"linux", "armhf", ""}, platform{"linux", "arm", "v7"}},
		{platform{"linux", "armel", ""}, platform{"linux", "arm", "v6"}},
		{platform{"linux", "arm", ""}, platform{"linux", "arm", "v7"}},
		{platform{"linux", "arm", "5"}, platform{"linux", "arm", "v5"}},
		{platform{"linux", "i386", ""}, platform{"linux", "386", ""}},
	}
	for _, tt := range tests {
		if got := tt.in.normalize(); got != tt.want {
			t.Errorf("%+v.normalize() = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if got := hostPlatform(); got.OS != "linux" || got.Architecture == "" {
		t.Errorf("hostPlatform() = %+v", got)
	}
}

func TestContainerdErrors(t *testing.T) {
	tests := []struct {
		name    string
		ns      string
		damage  func(s ctrdSample)
		ref     string
		wantErr string // substring
		wantAs  any    // a pointer to an error type errors.As must find
	}{
		{name: "missing config blob", ref: "sample_image",
			damage:  func(s ctrdSample) { s.remove(blobPath(s.sampleID)) },
			wantErr: "image config: blob var/lib/containerd/io.containerd.content.v1.content/blobs/sha256/CONFIG (application/vnd.oci.image.config.v1+json) is missing from the content store"},
		{name: "missing manifest blob", ref: "sample_image",
			damage: func(s ctrdSample) { s.remove(blobPath(s.sampleTarget.Digest)) },
			wantErr: "(application/vnd.oci.image.manifest.v1+json) is missing from the content store: the image store looks damaged; " +
				"check it with `ctr -n moby images ls` (or `docker image ls`) and pull or import the image again"},
		{name: "blob altered", ref: "sample_image",
			damage:  func(s ctrdSample) { s.writeFile(blobPath(s.sampleID), `{"rootfs":{"diff_ids":[]}}`) },
			wantErr: "does not hash to its digest"},
		{name: "layer folder missing", ref: "sample_image",
			damage: func(s ctrdSample) {
				if err := os.RemoveAll(filepath.Join(s.top, s.sampleLayers[1])); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "its layer ccd722928bd9 is missing: " + "LAYER1" + " does not exist", wantAs: new(*LayerMissingError)},
		{name: "snapshot missing in the snapshotter", ref: "sample_image",
			damage: func(s ctrdSample) {
				delete(s.backend["overlayfs"], s.snaps["moby"]["overlayfs"][diffA][0])
			},
			wantErr: "var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db has no snapshot moby/11/" + diffA},
		{name: "snapshot not committed", ref: "sample_image",
			damage: func(s ctrdSample) {
				k := s.snaps["moby"]["overlayfs"][chainAB][0]
				b := s.backend["overlayfs"][k]
				b.kind = 2
				s.backend["overlayfs"][k] = b
			},
			wantErr: "is not committed (kind 2), so not an unpacked layer"},
		{name: "snapshot record missing in meta.db", ref: "sample_image",
			damage: func(s ctrdSample) {
				delete(s.snaps["moby"]["overlayfs"], chainAB)
			},
			wantErr: "was unpacked with containerd's overlayfs snapshotter, but var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db has no snapshot " + chainAB},
		{name: "snapshotter database missing", ref: "sample_image",
			damage:  func(s ctrdSample) { delete(s.backend, "overlayfs") },
			wantErr: "the overlayfs snapshotter's database var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db is missing"},
		{name: "not unpacked", ref: "sample_image",
			damage: func(s ctrdSample) {
				delete(s.snaps["moby"], "overlayfs")
				delete(s.labels["moby"], s.sampleID)
			},
			wantErr: "is not unpacked: no snapshotter of namespace moby of the containerd root /var/lib/containerd holds its layers (chain ID ccd722928bd9); pull or import it again"},
		{name: "unsupported snapshotter", ref: "sample_image",
			damage: func(s ctrdSample) {
				delete(s.snaps["moby"], "overlayfs")
				delete(s.labels["moby"], s.sampleID)
				s.unpack("moby", "native", s.sampleID, []string{diffA, diffB})
			},
			wantErr: "keeps its images with containerd's native snapshotter, which dockerinit cannot boot from", wantAs: new(*UnsupportedError)},
		{name: "unknown media type", ref: "sample_image",
			damage: func(s ctrdSample) {
				s.tag("moby", "docker.io/library/sample_image:latest",
					descriptor{MediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws", Digest: s.blob(`{"schemaVersion":1,"name":"sample_image"}`)})
			},
			wantErr: `media type "application/vnd.docker.distribution.manifest.v1+prettyjws" is no image index or manifest dockerinit knows`},
		{name: "no layers", ref: "empty",
			damage: func(s ctrdSample) {
				m, _ := s.manifest("2024-01-01T00:00:00Z", "amd64", nil)
				s.tag("moby", "docker.io/library/empty:latest", m)
			},
			wantErr: "has no layers (its rootfs.diff_ids is empty)"},
		{name: "not found", ref: "nothere",
			wantErr: "image \"nothere\" not found; namespace moby of the containerd root /var/lib/containerd holds:\n  multi:1 (", wantAs: new(*NotFoundError)},
		{name: "namespace without images", ns: "default", ref: "sample_image",
			wantErr: "image \"sample_image\" not found: namespace default of the containerd root /var/lib/containerd holds no images; build or pull it first\n" +
				"the containerd root /var/lib/containerd holds images in namespace k8s.io (1 image name), moby (6 image names); pass the image's namespace: --namespace NAME to mkbootimg, dockerinit.namespace=NAME at boot",
			wantAs: new(*NotFoundError)},
		{name: "not a reference", ref: "Bad Name!", wantErr: `"Bad Name!" is not an image reference`},
		{name: "not an ID", ref: "sha256:xyz", wantErr: `"sha256:xyz" is not an image ID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newCtrdSample(t)
			if tt.damage != nil {
				tt.damage(s)
			}
			s.write()
			ns := tt.ns
			if ns == "" {
				ns = "moby"
			}
			st, err := s.open(ns, amd64)
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.Resolve(tt.ref)
			want := strings.NewReplacer("LAYER1", s.sampleLayers[1], "CONFIG", strings.TrimPrefix(s.sampleID, "sha256:")).Replace(tt.wantErr)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Resolve(%q) = %v,\nwant an error containing\n%s", tt.ref, err, want)
			}
			if tt.wantAs != nil && !errors.As(err, tt.wantAs) {
				t.Errorf("error is a %T, want %T", err, tt.wantAs)
			}
		})
	}
}

func (f *ctrdFixture) remove(p string) {
	if err := os.Remove(f.path(p)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *ctrdFixture) writeFile(p, data string) {
	if err := os.WriteFile(f.path(p), []byte(data), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func TestContainerdAmbiguousPrefix(t *testing.T) {
	f := newCtrdFixture(t)
	// Configs that differ only in their date until two IDs share 4 hex digits.
	seen := map[string]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		created := time.Unix(int64(i), 0).UTC().Format(time.RFC3339)
		m, id := f.manifest(created, "amd64", []string{diffA})
		f.tag("moby", fmt.Sprintf("docker.io/library/img%d:latest", i), m)
		if prev, ok := seen[id[7:11]]; ok {
			a, b = prev, id
		}
		seen[id[7:11]] = id
	}
	f.write()
	st, err := f.open("moby", amd64)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Resolve(a[7:11])
	var amb *AmbiguousError
	if !errors.As(err, &amb) || len(amb.Matches) != 2 || !strings.Contains(err.Error(), shortID(a)) || !strings.Contains(err.Error(), shortID(b)) {
		t.Fatalf("Resolve(%s) = %v, want an AmbiguousError naming %s and %s", a[7:11], err, shortID(a), shortID(b))
	}
}

// TestContainerdDamagedDatabase: a truncated or garbled database is an error naming the file,
// never a panic or a fault.
func TestContainerdDamagedDatabase(t *testing.T) {
	garbage := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name    string
		file    string
		damage  func(data []byte) []byte
		wantErr string
	}{
		{"meta.db empty", containerdMetaDB, func([]byte) []byte { return nil },
			"containerd database var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db is empty: the image store looks damaged"},
		{"meta.db garbage", containerdMetaDB, func([]byte) []byte { return garbage },
			"containerd database var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db: invalid database"},
		{"meta.db cut to 100 bytes", containerdMetaDB, func(d []byte) []byte { return d[:100] },
			"containerd database var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"},
		{"meta.db cut to 2 pages", containerdMetaDB, func(d []byte) []byte { return d[:8192] },
			"containerd database var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db is truncated: it is 8192 bytes, its header says"},
		{"meta.db cut in a page", containerdMetaDB, func(d []byte) []byte { return d[:len(d)/2+100] },
			"containerd database var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db is truncated"},
		{"meta.db data pages garbled", containerdMetaDB, func(d []byte) []byte { return append(d[:8192:8192], garbage[:len(d)-8192]...) },
			"containerd database var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"},
		{"snapshotter db cut", "io.containerd.snapshotter.v1.overlayfs/metadata.db", func(d []byte) []byte { return d[:9000] },
			"containerd database var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db is truncated"},
		{"snapshotter db garbage", "io.containerd.snapshotter.v1.overlayfs/metadata.db", func([]byte) []byte { return garbage[:4096] },
			"containerd database var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newCtrdSample(t)
			s.write()
			data, err := os.ReadFile(s.path(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			s.writeFile(tt.file, string(tt.damage(data)))
			st, err := s.open("moby", amd64)
			if err == nil { // a garble bbolt cannot see may still surface as a failed Resolve
				_, err = st.Resolve("sample_image")
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("open = %v, want an error containing\n%s", err, tt.wantErr)
			}
			t.Log(err)
		})
	}

	t.Run("meta.db is a fifo", func(t *testing.T) {
		s := newCtrdSample(t)
		s.write()
		s.remove(containerdMetaDB)
		if err := unix.Mkfifo(s.path(containerdMetaDB), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := s.open("moby", amd64)
		if err == nil || !strings.Contains(err.Error(), "meta.db is not a regular file") {
			t.Fatalf("open = %v", err)
		}
	})
}

// TestContainerdReadOnly: reading leaves the databases' bytes and mtimes as they were, also when
// a running containerd (here: a writer in this process) holds their lock.
func TestContainerdReadOnly(t *testing.T) {
	s := newCtrdSample(t)
	s.write()
	files := []string{containerdMetaDB, "io.containerd.snapshotter.v1.overlayfs/metadata.db", "io.containerd.snapshotter.v1.btrfs/metadata.db"}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	type state struct {
		sum   [32]byte
		mtime time.Time
		mode  fs.FileMode
	}
	stat := func() map[string]state {
		m := map[string]state{}
		for _, f := range files {
			data, err := os.ReadFile(s.path(f))
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(s.path(f))
			if err != nil {
				t.Fatal(err)
			}
			m[f] = state{sha256.Sum256(data), fi.ModTime(), fi.Mode()}
		}
		return m
	}
	for _, f := range files {
		if err := os.Chtimes(s.path(f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	before := stat()
	const copied = ", read from a copy of its database as containerd is running"
	use := func(wantCopy bool) {
		t.Helper()
		for _, ns := range []string{"moby", "k8s.io"} {
			st, err := s.open(ns, amd64)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Resolve("sample_image"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Images(); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(st.Kind(), copied) != wantCopy {
				t.Errorf("Kind() = %q; want a copy read: %v", st.Kind(), wantCopy)
			}
		}
	}
	use(false)
	if after := stat(); !reflect.DeepEqual(before, after) {
		t.Errorf("the databases changed:\nbefore %+v\nafter  %+v", before, after)
	}

	// A writer holds an exclusive flock on each, as containerd does while it runs.
	for _, f := range files {
		db, err := bbolt.Open(s.path(f), 0o644, &bbolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		use(true)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("reading a locked database blocked")
	}
	if after := stat(); !reflect.DeepEqual(before, after) {
		t.Errorf("the databases changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestContainerdNeedsHostPath(t *testing.T) {
	_, err := newContainerd(location{fsys: os.DirFS(t.TempDir()), dir: "."}, "moby", amd64)
	if err == nil || !strings.Contains(err.Error(), "can only be read from a file on this machine") {
		t.Fatalf("err = %v", err)
	}
}

// TestOpenDockerContainerd: a Docker data root whose own containerd holds the images opens as
// that containerd's store.
func TestOpenDockerContainerd(t *testing.T) {
	f := newCtrdFixture(t)
	f.dir = "var/lib/docker/containerd/daemon"
	f.mkdir(contentBlobs)
	m, id := f.manifest("2024-01-02T03:04:05Z", "amd64", []string{diffA})
	f.tag("moby", "docker.io/library/sample_image:latest", m)
	f.unpack("moby", "overlayfs", id, []string{diffA})
	f.write()
	if err := os.MkdirAll(filepath.Join(f.top, "var/lib/docker/image"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := Open(f.top, "/var/lib/docker", Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.Resolve("sample_image")
	if err != nil {
		t.Fatal(err)
	}
	if want := "var/lib/docker/containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs"; img.Layer != want || img.ID != id {
		t.Errorf("Layer = %s, ID = %s; want %s, %s", img.Layer, img.ID, want, id)
	}
}

// FuzzContainerdManifest feeds the index, manifest and config parsers anything: they fail or
// give well-formed digests, and never panic.
func FuzzContainerdManifest(f *testing.F) {
	types := []string{"", mediaOCIIndex, mediaDockerList, mediaOCIManifest, mediaDockerV2, "application/octet-stream"}
	d := "sha256:" + strings.Repeat("a", 64)
	f.Add(uint8(1), []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"`+mediaOCIManifest+`","digest":"`+d+`","platform":{"os":"linux","architecture":"amd64"}},{"mediaType":"`+mediaOCIManifest+`","digest":"`+d+`","platform":{"os":"linux","architecture":"arm","variant":"v6"}}]}`))
	f.Add(uint8(3), []byte(`{"schemaVersion":2,"config":{"mediaType":"`+mediaOCIConfig+`","digest":"`+d+`"},"layers":[]}`))
	f.Add(uint8(0), []byte(`{"mediaType":"`+mediaDockerList+`","manifests":[{"mediaType":"`+mediaDockerV2+`","digest":"`+d+`","platform":{"os":"linux","architecture":"arm64","variant":"8"}}]}`))
	f.Add(uint8(0), []byte(`{"created":"2024-01-02T03:04:05Z","rootfs":{"type":"layers","diff_ids":["`+d+`","`+d+`"]}}`))
	f.Add(uint8(2), []byte(`{"manifests":[{"platform":null},{"digest":"x"}]}`))
	wants := []platform{amd64, {OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		m, err := parseManifest(types[int(kind)%len(types)], data)
		if err == nil {
			if m.isIndex() {
				for _, want := range wants {
					if d, err := m.pick(want); err == nil && (!isImageID(d.Digest) || d.Platform != nil && want.rank(d.Platform.normalize()) == 0) {
						t.Errorf("pick(%s) = %+v", want, d)
					}
				}
			} else if !isImageID(m.Config.Digest) {
				t.Errorf("manifest config digest %q", m.Config.Digest)
			}
		}
		if c, err := parseConfig(data); err == nil && len(c.RootFS.DiffIDs) > 0 {
			if id := chainID(c.RootFS.DiffIDs); !isImageID(id) {
				t.Errorf("chain ID %q", id)
			}
		}
	})
}
