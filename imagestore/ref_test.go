package imagestore

import (
	_ "crypto/sha512" // go-digest accepts sha384 and sha512 digests only when this is linked, as it is in dockerd
	"strings"
	"testing"

	"github.com/distribution/reference"
)

var (
	hex64  = strings.Repeat("0123456789abcdef", 4)
	hex96  = strings.Repeat("0123456789abcdef", 6)
	hex128 = strings.Repeat("0123456789abcdef", 8)
)

// refTests are what parseDockerRef must give; FuzzParseDockerRef also
// checks each of them against github.com/distribution/reference.
var refTests = []struct {
	in, canonical, familiar string
	err                     string // substring of the error; empty when in parses
}{
	{"sample_image", "docker.io/library/sample_image:latest", "sample_image:latest", ""},
	{"desktop:v1", "docker.io/library/desktop:v1", "desktop:v1", ""},
	{"docker.io/desktop", "docker.io/library/desktop:latest", "desktop:latest", ""},
	{"index.docker.io/desktop", "docker.io/library/desktop:latest", "desktop:latest", ""},
	{"docker.io/library/desktop", "docker.io/library/desktop:latest", "desktop:latest", ""},
	{"docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest", ""},
	{"team/server:1.2.3-rc_1", "docker.io/team/server:1.2.3-rc_1", "team/server:1.2.3-rc_1", ""},
	{"localhost/a", "localhost/a:latest", "localhost/a:latest", ""},
	{"localhost:5000/a/b", "localhost:5000/a/b:latest", "localhost:5000/a/b:latest", ""},
	{"localhost:5000", "docker.io/library/localhost:5000", "localhost:5000", ""}, // a tag, without a slash
	{"registry:5000/team/x:1", "registry:5000/team/x:1", "registry:5000/team/x:1", ""},
	{"10.0.0.1:5000/x", "10.0.0.1:5000/x:latest", "10.0.0.1:5000/x:latest", ""},
	{"[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest", ""},
	{"[2001:DB8::1]/x:TAG", "[2001:DB8::1]/x:TAG", "[2001:DB8::1]/x:TAG", ""},
	{"Registry.Example.COM/x", "Registry.Example.COM/x:latest", "Registry.Example.COM/x:latest", ""},
	{"Host/x", "Host/x:latest", "Host/x:latest", ""},    // uppercase makes it a registry
	{"a_b.c/d", "a_b.c/d:latest", "a_b.c/d:latest", ""}, // no host: all of it is the path, with no domain
	{"a.b-c__d---e/f", "a.b-c__d---e/f:latest", "a.b-c__d---e/f:latest", ""},
	{"x:" + strings.Repeat("T", 128), "docker.io/library/x:" + strings.Repeat("T", 128), "x:" + strings.Repeat("T", 128), ""},
	{"x:_", "docker.io/library/x:_", "x:_", ""},
	{"x@sha256:" + hex64, "docker.io/library/x@sha256:" + hex64, "x@sha256:" + hex64, ""},
	{"x:1@sha256:" + hex64, "docker.io/library/x@sha256:" + hex64, "x@sha256:" + hex64, ""}, // the digest pins it; the tag goes
	{"r:5/x:1@sha384:" + hex96, "r:5/x@sha384:" + hex96, "r:5/x@sha384:" + hex96, ""},
	{"x@sha512:" + hex128, "docker.io/library/x@sha512:" + hex128, "x@sha512:" + hex128, ""},
	{"docker.io/" + hex64, "docker.io/library/" + hex64 + ":latest", hex64 + ":latest", ""},
	{hex64 + ":1", "docker.io/library/" + hex64 + ":1", hex64 + ":1", ""},
	{strings.Repeat("a", 247), "docker.io/library/" + strings.Repeat("a", 247) + ":latest", strings.Repeat("a", 247) + ":latest", ""},

	{"", "", "", "empty"},
	{hex64, "", "", "image ID, not a repository name"},
	{"Desktop", "", "", `"Desktop" must be lowercase`},
	{"docker.io/Desktop", "", "", `"Desktop" must be lowercase`},
	{"a_-b/d", "", "", `"a_-b" is not lowercase letters and digits`},
	{"a/b_", "", "", `"b_" is not lowercase`},
	{"a/.b", "", "", `".b" is not lowercase`},
	{"a___b", "", "", `"a___b" is not lowercase`},
	{"a//b", "", "", `"" is not lowercase`},
	{"a/", "", "", `"" is not lowercase`},
	{"x:", "", "", `tag "" is not 1 to 128`},
	{"x:.a", "", "", `tag ".a" is not`},
	{"x:a/b", "", "", `registry "x:a" is not a host name`},
	{"x:" + strings.Repeat("T", 129), "", "", "is not 1 to 128"},
	{"x@", "", "", `digest "" is not sha256:<64 hex>`},
	{"x@sha256:" + strings.ToUpper(hex64), "", "", "in lowercase"},
	{"x@sha256:" + hex64[:63], "", "", "is not sha256:<64 hex>"},
	{"x@md5:" + hex64[:32], "", "", `digest "md5:`},
	{"x@sha256:" + hex64 + "@sha256:" + hex64, "", "", "is not sha256"},
	{"a-.b/c", "", "", `registry "a-.b" is not a host name`},
	{"-a.b/c", "", "", `registry "-a.b" is not a host name`},
	{"a.b:/c", "", "", `registry "a.b:" is not`},
	{"a.b:5x/c", "", "", `registry "a.b:5x" is not`},
	{"[]/c", "", "", `"[]" is not lowercase`}, // no colon, dot or uppercase: a Docker Hub path
	{"[:g]/c", "", "", `registry "[:g]" is not`},
	{"[::1]5000/c", "", "", `registry "[::1]5000" is not`},
	{"é/x", "", "", `"é" is not lowercase`},
	{strings.Repeat("a", 248), "", "", "is 256 characters long; at most 255"},
	{"r.io/" + strings.Repeat("a", 256), "", "", "is 256 characters long"},
}

func TestParseDockerRef(t *testing.T) {
	for _, tt := range refTests {
		r, err := parseDockerRef(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseDockerRef(%q) error = %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseDockerRef(%q): %v", tt.in, err)
			continue
		}
		if r.String() != tt.canonical || r.Familiar() != tt.familiar {
			t.Errorf("parseDockerRef(%q) = %s, familiar %s; want %s, familiar %s", tt.in, r, r.Familiar(), tt.canonical, tt.familiar)
		}
	}
}

// TestParseDockerRefCombinations checks parseDockerRef against
// distribution/reference on every combination of tricky registries, paths,
// tags and digests, which random fuzzing seldom puts together.
func TestParseDockerRefCombinations(t *testing.T) {
	firsts := []string{"", "a", "a.b", "a_b.c", "a__b", "A", "Ab.c", "localhost", "localhost:5000", "localhost:",
		"docker.io", "index.docker.io", "DOCKER.IO", "a-b.c-d:1", "a-.b", "1.2.3.4:80", "[::1]", "[::1]:5000",
		"[FE80::1]", "[::1]:", "[]", "[g]", "a:b", "a.b:c", hex64}
	paths := []string{"", "x", "x/y", "library/x", "x-y__z.w", "x_", "X", "x//y", "a_b.c"}
	tags := []string{"", ":", ":latest", ":V1.0_rc-2", ":-x", ":.x", ":x/y", ":" + strings.Repeat("t", 129)}
	digests := []string{"", "@", "@sha256:" + hex64, "@sha256:" + hex64[1:], "@sha384:" + hex96, "@sha512:" + hex128,
		"@SHA256:" + hex64, "@sha256:" + strings.ToUpper(hex64), "@sha1:" + hex64[:40], "@sha256+b64:" + hex64}
	for _, first := range firsts {
		for _, p := range paths {
			name := first
			if p != "" {
				name = strings.TrimPrefix(first+"/"+p, "/")
			}
			for _, tag := range tags {
				for _, d := range digests {
					checkAgainstLibrary(t, name+tag+d)
				}
			}
		}
	}
}

// FuzzParseDockerRef holds parseDockerRef to what it replaces: for any
// input, reference.ParseDockerRef must accept and reject the same, and give
// the same canonical and familiar strings.
func FuzzParseDockerRef(f *testing.F) {
	for _, tt := range refTests {
		f.Add(tt.in)
	}
	f.Fuzz(checkAgainstLibrary)
}

func checkAgainstLibrary(t *testing.T, s string) {
	t.Helper()
	want, wantErr := reference.ParseDockerRef(s)
	got, err := parseDockerRef(s)
	switch {
	case wantErr != nil && err == nil:
		t.Fatalf("parseDockerRef(%q) = %s, but distribution/reference rejects it: %v", s, got, wantErr)
	case wantErr == nil && err != nil:
		t.Fatalf("parseDockerRef(%q): %v; but distribution/reference gives %s", s, err, want)
	case err != nil:
		if err.Error() == "" {
			t.Fatalf("parseDockerRef(%q): empty error message", s)
		}
	case got.String() != want.String():
		t.Fatalf("parseDockerRef(%q) = %s, distribution/reference gives %s", s, got, want)
	case got.Familiar() != reference.FamiliarString(want):
		t.Fatalf("parseDockerRef(%q) familiar = %s, distribution/reference gives %s", s, got.Familiar(), reference.FamiliarString(want))
	}
}
