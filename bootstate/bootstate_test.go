package bootstate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// inStore is a store holding the named images, each reference naming the image "id-REF".
func inStore(refs ...string) func(string) (string, error) {
	return func(ref string) (string, error) {
		for _, r := range refs {
			if r == ref {
				return "id-" + ref, nil
			}
		}
		return "", fmt.Errorf("image %q not found", ref)
	}
}

// boot is one boot as the initramfs runs it: pick, take the try, save; then what the booted
// system does (mark good, or nothing when its init failed).
func boot(t *testing.T, path string, list []string, tries int, present func(string) (string, error), comesUp bool) Choice {
	t.Helper()
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Pick(list, tries, present)
	if err != nil {
		t.Fatal(err)
	}
	r.Try(c)
	if err := Save(path, r); err != nil {
		t.Fatal(err)
	}
	if comesUp {
		r, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.MarkGood(c.Ref); err != nil && tries > 0 {
			t.Fatal(err)
		}
		if err := Save(path, r); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestFallback(t *testing.T) {
	list := []string{"desktop:new", "desktop:good"}
	store := inStore("desktop:new", "desktop:good")
	for _, tc := range []struct {
		name    string
		tries   int
		present func(string) (string, error)
		comesUp []bool   // for each boot: does the booted image come up (and mark itself good)?
		want    []string // the image each boot picks
		whyLast string
	}{
		{"the new image fails twice, the third boot falls back", 2, store,
			[]bool{false, false, true, true}, []string{"desktop:new", "desktop:new", "desktop:good", "desktop:good"}, "marked good"},
		{"a good new image keeps booting", 2, store,
			[]bool{true, true, true}, []string{"desktop:new", "desktop:new", "desktop:new"}, "marked good"},
		{"an image gone from the store falls back at once", 3, inStore("desktop:good"),
			[]bool{true}, []string{"desktop:good"}, "try 1 of 3"},
		{"without counting only a missing image is passed over", 0, inStore("desktop:good"),
			[]bool{false, false}, []string{"desktop:good", "desktop:good"}, "the first image of the list in the store"},
		{"every image used its tries: the last boots anyway", 1, store,
			[]bool{false, false, false}, []string{"desktop:new", "desktop:good", "desktop:good"}, "every image of the list used its tries: the last one boots anyway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), Dir, FileName("docker_rwlayer"))
			var c Choice
			for i, up := range tc.comesUp {
				c = boot(t, path, list, tc.tries, tc.present, up)
				if c.Ref != tc.want[i] {
					t.Fatalf("boot %d booted %s (%s; passed over %q), want %s", i+1, c.Ref, c.Why, c.Skipped, tc.want[i])
				}
			}
			if c.Why != tc.whyLast {
				t.Errorf("the last boot says why: %q, want %q", c.Why, tc.whyLast)
			}
		})
	}
}

func TestFallbackSaysWhy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	list := []string{"desktop:new", "desktop:good"}
	for range 2 {
		boot(t, path, list, 2, inStore(list...), false)
	}
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Pick(list, 2, inStore(list...))
	if err != nil {
		t.Fatal(err)
	}
	if c.Ref != "desktop:good" || len(c.Skipped) != 1 || c.Skipped[0] != "desktop:new failed 2 boots" {
		t.Errorf("picked %s, passing over %q; want desktop:good, passing over \"desktop:new failed 2 boots\"", c.Ref, c.Skipped)
	}
	if got := r.History[len(r.History)-1].What; !strings.HasPrefix(got, "did not come up") {
		t.Errorf("the history's last event is %q, want the failed try", got)
	}
}

// A tag rebuilt onto another image is a new image to count, even if the old one was marked good.
func TestMovedTagCountedAfresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	list := []string{"desktop:latest", "desktop:good"}
	if c := boot(t, path, list, 2, inStore(list...), true); c.Ref != "desktop:latest" {
		t.Fatalf("first boot picked %s", c.Ref)
	}
	rebuilt := func(ref string) (string, error) {
		id, err := inStore(list...)(ref)
		if ref == "desktop:latest" {
			id = "sha256:0123456789abcdef0123"
		}
		return id, err
	}
	for i, want := range []string{"try 1 of 2", "try 2 of 2"} {
		c := boot(t, path, list, 2, rebuilt, false)
		if c.Ref != "desktop:latest" || c.Why != want {
			t.Fatalf("boot %d of the rebuilt tag: %s (%s), want desktop:latest (%s)", i+1, c.Ref, c.Why, want)
		}
	}
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Pick(list, 2, rebuilt); c.Ref != "desktop:good" {
		t.Errorf("after the rebuilt tag failed its tries the boot picks %s, want desktop:good", c.Ref)
	}
	if !slices.ContainsFunc(r.History, func(e Event) bool { return e.What == "now names image 0123456789ab, not id-desktop:l: counted afresh" }) {
		t.Errorf("the history does not say the tag moved: %+v", r.History)
	}
}

func TestMarkBad(t *testing.T) {
	r := Record{}
	list := []string{"a", "b"}
	c, _ := r.Pick(list, 3, inStore(list...))
	r.Try(c)
	if err := r.MarkBad("a"); err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Pick(list, 3, inStore(list...)); c.Ref != "b" {
		t.Errorf("after marking a bad the next boot picks %s, want b", c.Ref)
	}
	if err := r.MarkGood("nosuch"); err == nil {
		t.Error("marking an image the record does not count succeeded")
	}
}

func TestLoadDamaged(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"truncated", `{"version": 1, "images": {"a": {"tries_l`, "not a record"},
		{"garbage", "\x00\x01garbage", "not a record"},
		{"newer", `{"version": 9}`, "written by a newer dockerinit (format 9; this one reads 1)"},
		{"no version", `{}`, "format 0 is no format of dockerinit's"},
		{"negative tries", `{"version": 1, "images": {"a": {"tries_left": -1}}}`, "negative or missing count"},
		{"null image", `{"version": 1, "images": {"a": null}}`, "negative or missing count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.json")
			if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Load(path)
			var de *DamagedError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want a DamagedError saying %q", err, tc.want)
			}
			if r.Version != Version || len(r.Images) != 0 || r.Current != "" {
				t.Errorf("a damaged record gives %+v, want a fresh one", r)
			}
			// A fresh count from it boots the first image.
			if c, err := r.Pick([]string{"a", "b"}, 2, inStore("a", "b")); err != nil || c.Ref != "a" {
				t.Errorf("Pick on the fresh record: %v, %v", c, err)
			}
		})
	}
}

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), Dir, FileName("machines/desk"))
	if filepath.Base(path) != "machines_desk.json" {
		t.Errorf("FileName(machines/desk) = %s", filepath.Base(path))
	}
	r := Record{Images: map[string]*Image{"a": {TriesLeft: 2, Failures: 1, ID: "sha256:ab"}}, Current: "a"}
	for i := range maxHistory + 5 {
		r.note("a", fmt.Sprint(i))
	}
	if err := Save(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Current != "a" || *got.Images["a"] != (Image{TriesLeft: 2, Failures: 1, ID: "sha256:ab"}) || len(got.History) != maxHistory || got.History[0].What != "5" {
		t.Errorf("round trip: %+v", got)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %q", leftovers)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"version": 1, "images": {"a": {"tries_left": 1}}, "current": "a"}`))
	f.Add([]byte(`{"version": 1, "images": {"a": {"tries_left": 0, "good": true}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "r.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, _ := Load(path) // damaged or not, a usable record
		c, err := r.Pick([]string{"a", "b"}, 2, inStore("a", "b"))
		if err != nil || (c.Ref != "a" && c.Ref != "b") {
			t.Fatalf("Pick after loading %q: %+v, %v", data, c, err)
		}
		r.Try(c)
	})
}

func TestRecount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	list := []string{"a", "b"}
	boot(t, path, list, 1, inStore(list...), false) // a fails its one try
	boot(t, path, list, 1, inStore(list...), true)  // b comes up
	if changed, err := Recount(path, "a"); err != nil || !changed {
		t.Fatalf("Recount(a) = %v, %v; want a changed record", changed, err)
	}
	if c := boot(t, path, list, 1, inStore(list...), true); c.Ref != "a" || c.Why != "try 1 of 1" {
		t.Errorf("after a fresh count of a the boot takes %s (%s), want a (try 1 of 1)", c.Ref, c.Why)
	}
	for _, ref := range []string{"nosuch", "b"} { // uncounted; marked good
		if changed, err := Recount(path, ref); err != nil || changed {
			t.Errorf("Recount(%s) = %v, %v; want no change", ref, changed, err)
		}
	}
}
