package imagestore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Reference is an image as a user types it (docker_image=, mkbootimg --image), classified once:
//
//   - an image ID: sha256:<64 hex>, or the 64 hex digits alone;
//   - an ID prefix: sha256:<4 to 63 hex>, or 4 to 63 lowercase hex digits alone;
//   - a name: anything else parseDockerRef accepts, e.g. desktop, desktop:v1,
//     registry:5000/team/x:1, desktop@sha256:<64 hex>.
//
// The rule for bare hex: 4 to 63 lowercase hex digits, such as 4f1c0e2a, are both a valid
// repository name and an ID prefix. The stores' lookup tries the name first and falls back
// to the prefix; a Reference says both (IsID and Name's ok are true), and Familiar and Slug
// treat it as the prefix, which is what such a string almost always means: "image
// sha256:4f1c0e2a", not "4f1c0e2a:latest". Hex strings of fewer than 4 or more than 64
// digits are names only; "sha256:" always starts an ID, as in lookup, so sha256:latest is
// refused rather than read as the repository sha256.
type Reference struct {
	typed  string // as typed
	hex    string // an ID or ID prefix: its hex digits; "" for a name
	name   ref    // valid when isName
	isName bool
	tag    string // a tag typed before a digest, which name drops but menus keep showing
}

// ParseReference classifies s; see Reference. The error names s and what is expected.
func ParseReference(s string) (Reference, error) {
	r := Reference{typed: s}
	if h, ok := strings.CutPrefix(s, "sha256:"); ok {
		if len(h) < 4 || len(h) > 64 || !isHex(h) {
			return Reference{}, fmt.Errorf("image %q is not an image ID: expected sha256: and 4 to 64 lowercase hex digits", s)
		}
		r.hex = s[len("sha256:"):]
		return r, nil
	}
	if len(s) >= 4 && len(s) <= 64 && isHex(s) {
		r.hex = s
	}
	if len(s) == 64 && r.hex != "" {
		return r, nil // parseDockerRef refuses it as a name
	}
	name, err := parseDockerRef(s)
	if err != nil {
		return Reference{}, fmt.Errorf("image %q: %w; expected NAME[:TAG], NAME@sha256:<64 hex> or an image ID (sha256: and 4 to 64 hex digits)", s, err)
	}
	r.name, r.isName = name, true
	if name.digest != "" {
		// The typed tag, if any: between the last colon after the last slash and the '@'.
		n, _, _ := strings.Cut(s, "@")
		if i := strings.LastIndexByte(n, ':'); i > strings.LastIndexByte(n, '/') {
			r.tag = n[i+1:]
		}
	}
	return r, nil
}

// String gives the reference as typed, which is what the stores look up.
func (r Reference) String() string { return r.typed }

// IsID reports whether r is an image ID or an ID prefix. A bare hex prefix such as 4f1c0e2a
// may also be a name: see Name.
func (r Reference) IsID() bool { return r.hex != "" }

// ID gives "sha256:" and the hex digits of an image ID or ID prefix (fewer than 64 for a
// prefix), or "" for a name.
func (r Reference) ID() string {
	if r.hex == "" {
		return ""
	}
	return "sha256:" + r.hex
}

// Name gives the canonical name r can mean, e.g. docker.io/library/desktop:latest, and
// whether it can mean one: false for image IDs and sha256: prefixes, true for names and for
// bare hex prefixes, which the stores look up as names first.
func (r Reference) Name() (string, bool) {
	if !r.isName {
		return "", false
	}
	return r.name.String(), true
}

// Familiar gives how menus and messages show r: desktop:latest, registry:5000/team/x:1,
// desktop@sha256:<64 hex>, or "image sha256:4f1c0e2a12ab" for an ID or ID prefix, cut to 12
// digits. "" for the zero Reference.
func (r Reference) Familiar() string {
	switch {
	case r.hex != "":
		return "image sha256:" + r.shortHex()
	case !r.isName:
		return ""
	case r.tag != "":
		return r.name.familiarName() + ":" + r.tag + "@" + r.name.digest
	}
	return r.name.Familiar()
}

// Slug gives r as a file name: lowercase letters, digits, '.', '_' and '-', at most
// maxSlugLen bytes. sha256-<12 hex> for an ID or ID prefix; for a name, its familiar form with
// every run of other characters made one '-', and for a digested name the familiar name and
// 12 digits of the digest: desktop-latest, registry.example-5000-team-os-1.2,
// desktop-0123456789ab. Boot entries and their folders are named by it, so these outputs must
// not change. "" for the zero Reference.
func (r Reference) Slug() string {
	switch {
	case r.hex != "":
		return "sha256-" + r.shortHex()
	case !r.isName:
		return ""
	case r.name.digest != "":
		_, h, _ := strings.Cut(r.name.digest, ":")
		return capSlug(slugify(r.name.familiarName()) + "-" + h[:12])
	}
	return capSlug(slugify(r.name.Familiar()))
}

// maxSlugLen keeps "dockerinit-<slug>.conf" within the 255 bytes of a file name.
const maxSlugLen = 255 - len("dockerinit-") - len(".conf")

func (r Reference) shortHex() string { return r.hex[:min(12, len(r.hex))] }

// slugify lowercases s, makes each run of characters other than [a-z0-9._] one '-', and trims
// '-' from both ends, as bootloader did with the regexp [^a-z0-9._]+.
func slugify(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	b.Grow(len(s))
	dash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isLowerAlnum(c) || c == '.' || c == '_' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteByte(c)
			continue
		}
		dash = true
	}
	return b.String()
}

// capSlug shortens a slug too long for a file name, keeping it unique with a hash of it.
func capSlug(s string) string {
	if len(s) <= maxSlugLen {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return strings.TrimRight(s[:maxSlugLen-13], "-") + "-" + hex.EncodeToString(sum[:])[:12]
}

// familiarName gives the familiar name without tag or digest, e.g. desktop, team/x,
// registry:5000/x.
func (r ref) familiarName() string {
	return ref{domain: r.domain, path: r.path}.Familiar()
}
