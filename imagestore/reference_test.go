package imagestore

import (
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

var referenceTests = []struct {
	in       string
	id       string // ID(); "" for a name
	name     string // Name(); "" when it is no name
	familiar string
	slug     string
	err      string // substring of the error; empty when in parses
}{
	{in: "desktop", name: "docker.io/library/desktop:latest", familiar: "desktop:latest", slug: "desktop-latest"},
	{in: "desktop:2024-06-01", name: "docker.io/library/desktop:2024-06-01", familiar: "desktop:2024-06-01", slug: "desktop-2024-06-01"},
	{in: "docker.io/library/debian:12", name: "docker.io/library/debian:12", familiar: "debian:12", slug: "debian-12"},
	{in: "team/server:1.2.3-rc_1", name: "docker.io/team/server:1.2.3-rc_1", familiar: "team/server:1.2.3-rc_1", slug: "team-server-1.2.3-rc_1"},
	{in: "registry:5000/team/x:1", name: "registry:5000/team/x:1", familiar: "registry:5000/team/x:1", slug: "registry-5000-team-x-1"},
	{in: "registry.example:5000/team/os:1.2", name: "registry.example:5000/team/os:1.2", familiar: "registry.example:5000/team/os:1.2", slug: "registry.example-5000-team-os-1.2"},
	{in: "Registry.Example.COM/x:TAG", name: "Registry.Example.COM/x:TAG", familiar: "Registry.Example.COM/x:TAG", slug: "registry.example.com-x-tag"},
	{in: "[::1]:5000/x", name: "[::1]:5000/x:latest", familiar: "[::1]:5000/x:latest", slug: "1-5000-x-latest"},
	{in: "a--b/c", name: "docker.io/a--b/c:latest", familiar: "a--b/c:latest", slug: "a-b-c-latest"},
	{in: "desktop@sha256:" + hex64, name: "docker.io/library/desktop@sha256:" + hex64, familiar: "desktop@sha256:" + hex64, slug: "desktop-0123456789ab"},
	{in: "r:5/x:1@sha384:" + hex96, name: "r:5/x@sha384:" + hex96, familiar: "r:5/x:1@sha384:" + hex96, slug: "r-5-x-0123456789ab"}, // the menu keeps the typed tag
	{in: "abc", name: "docker.io/library/abc:latest", familiar: "abc:latest", slug: "abc-latest"},                                   // too short for a prefix
	{in: hex64 + "0", name: "docker.io/library/" + hex64 + "0:latest", familiar: hex64 + "0:latest", slug: hex64 + "0-latest"},      // too long for an ID
	{in: "docker.io/" + hex64, name: "docker.io/library/" + hex64 + ":latest", familiar: hex64 + ":latest", slug: hex64 + "-latest"},
	{in: "sha512:abcd", name: "docker.io/library/sha512:abcd", familiar: "sha512:abcd", slug: "sha512-abcd"}, // only sha256: means an ID

	{in: "sha256:" + hex64, id: "sha256:" + hex64, familiar: "image sha256:0123456789ab", slug: "sha256-0123456789ab"},
	{in: hex64, id: "sha256:" + hex64, familiar: "image sha256:0123456789ab", slug: "sha256-0123456789ab"},
	{in: "sha256:abcd12", id: "sha256:abcd12", familiar: "image sha256:abcd12", slug: "sha256-abcd12"},
	{in: "sha256:" + hex64[:40], id: "sha256:" + hex64[:40], familiar: "image sha256:0123456789ab", slug: "sha256-0123456789ab"},
	// Bare hex is a prefix for titles and slugs, and still a name the stores try first.
	{in: "4f1c0e2a", id: "sha256:4f1c0e2a", name: "docker.io/library/4f1c0e2a:latest", familiar: "image sha256:4f1c0e2a", slug: "sha256-4f1c0e2a"},
	{in: "1234", id: "sha256:1234", name: "docker.io/library/1234:latest", familiar: "image sha256:1234", slug: "sha256-1234"},
	{in: hex64[:63], id: "sha256:" + hex64[:63], name: "docker.io/library/" + hex64[:63] + ":latest", familiar: "image sha256:0123456789ab", slug: "sha256-0123456789ab"},

	{in: "", err: `image "": it is empty`},
	{in: "Desktop!", err: `image "Desktop!": repository name component "Desktop!" must be lowercase; expected NAME[:TAG]`},
	{in: "x:.a", err: `tag ".a" is not`},
	{in: "x@sha256:abcd", err: `digest "sha256:abcd" is not sha256:<64 hex>`},
	{in: "sha256:", err: `image "sha256:" is not an image ID: expected sha256: and 4 to 64 lowercase hex digits`},
	{in: "sha256:abc", err: "is not an image ID"},
	{in: "sha256:latest", err: "is not an image ID"},
	{in: "sha256:" + hex64 + "0", err: "is not an image ID"},
	{in: "sha256:" + strings.ToUpper(hex64), err: "is not an image ID"},
	{in: "ABCD1234", err: "must be lowercase"},
}

func TestParseReference(t *testing.T) {
	for _, tt := range referenceTests {
		r, err := ParseReference(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseReference(%q) error = %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		name, _ := r.Name()
		if r.String() != tt.in || r.ID() != tt.id || r.IsID() != (tt.id != "") || name != tt.name || r.Familiar() != tt.familiar || r.Slug() != tt.slug {
			t.Errorf("ParseReference(%q) = string %q, ID %q (IsID %v), name %q, familiar %q, slug %q;\nwant ID %q, name %q, familiar %q, slug %q",
				tt.in, r.String(), r.ID(), r.IsID(), name, r.Familiar(), r.Slug(), tt.id, tt.name, tt.familiar, tt.slug)
		}
	}
	if r := (Reference{}); r.Familiar() != "" || r.Slug() != "" || r.IsID() {
		t.Errorf("zero Reference: familiar %q, slug %q, IsID %v", r.Familiar(), r.Slug(), r.IsID())
	}
}

func TestSlugCap(t *testing.T) {
	long := strings.Repeat("a", 200) + "/" + strings.Repeat("b", 54) // 255, the longest path
	r, err := ParseReference(long + ":" + strings.Repeat("t", 128))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Slug()
	if len(s) != maxSlugLen || !strings.HasPrefix(s, strings.Repeat("a", 200)+"-bbb") || !isSlug(s) {
		t.Errorf("long slug = %q (%d bytes), want %d bytes starting with the name", s, len(s), maxSlugLen)
	}
	r2, _ := ParseReference(long + ":" + strings.Repeat("t", 127) + "u")
	if r2.Slug() == s {
		t.Errorf("two long references share the slug %q", s)
	}
}

// FuzzParseReference checks that any accepted reference has a non-empty Familiar and a
// file-name-safe Slug, that names are what parseDockerRef accepts, and that names keep the
// title and file name bootloader made of them with distribution/reference and a regexp.
func FuzzParseReference(f *testing.F) {
	for _, tt := range referenceTests {
		f.Add(tt.in)
	}
	for _, tt := range refTests {
		f.Add(tt.in)
	}
	f.Fuzz(checkReference)
}

// oldUnsafeSlug is the regexp bootloader made slugs with.
var oldUnsafeSlug = regexp.MustCompile(`[^a-z0-9._]+`)

func oldSlugify(s string) string {
	return strings.Trim(oldUnsafeSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

func isSlug(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > maxSlugLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerAlnum(s[i]) && strings.IndexByte("._-", s[i]) < 0 {
			return false
		}
	}
	return true
}

func checkReference(t *testing.T, s string) {
	r, err := ParseReference(s)
	named, nerr := parseDockerRef(s)
	h, isSHA := strings.CutPrefix(s, "sha256:")
	switch {
	case isSHA:
		if ok := len(h) >= 4 && len(h) <= 64 && isHex(h); ok != (err == nil) {
			t.Fatalf("ParseReference(%q) error %v, yet %q is a valid ID prefix: %v", s, err, h, ok)
		}
	case len(s) == 64 && isHex(s):
		if err != nil {
			t.Fatalf("ParseReference(%q): %v, but it is an image ID", s, err)
		}
	case (err == nil) != (nerr == nil):
		t.Fatalf("ParseReference(%q) error %v, but parseDockerRef's is %v", s, err, nerr)
	}
	if err != nil {
		if !strings.HasPrefix(err.Error(), "image ") {
			t.Fatalf("ParseReference(%q) error %q does not name the image", s, err)
		}
		return
	}
	if r.String() != s {
		t.Fatalf("ParseReference(%q).String() = %q", s, r.String())
	}
	if !isSlug(r.Slug()) || r.Familiar() == "" {
		t.Fatalf("ParseReference(%q): familiar %q, slug %q (not a file name)", s, r.Familiar(), r.Slug())
	}
	name, isName := r.Name()
	if isName != (nerr == nil && !isSHA) || isName && name != named.String() {
		t.Fatalf("ParseReference(%q).Name() = %q, %v; parseDockerRef gives %v, %v", s, name, isName, named, nerr)
	}
	if r.IsID() {
		if !strings.HasPrefix(r.Familiar(), "image sha256:") || !strings.HasPrefix(r.Slug(), "sha256-") {
			t.Fatalf("ParseReference(%q): ID titled %q, slug %q", s, r.Familiar(), r.Slug())
		}
		return
	}
	// A name: bootloader's title and slug before ParseReference.
	old, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatalf("ParseReference(%q) accepted what distribution/reference refuses: %v", s, err)
	}
	wantTitle := reference.FamiliarString(reference.TagNameOnly(old))
	wantSlug := oldSlugify(wantTitle)
	if d, ok := old.(reference.Digested); ok {
		wantSlug = oldSlugify(reference.FamiliarName(old)) + "-" + d.Digest().Encoded()[:12]
	}
	if len(wantSlug) > maxSlugLen {
		wantSlug = r.Slug() // capped; isSlug checked it
	}
	if r.Familiar() != wantTitle || r.Slug() != wantSlug {
		t.Fatalf("ParseReference(%q): familiar %q, slug %q; bootloader gave %q, %q", s, r.Familiar(), r.Slug(), wantTitle, wantSlug)
	}
}
