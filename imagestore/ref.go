package imagestore

import (
	"errors"
	"fmt"
	"strings"
)

// Image references are parsed here by hand rather than with
// github.com/distribution/reference: PID 1 links this package, and that
// library (with go-digest) compiles its regexps at package init, which cost
// ~28 ms of boot under QEMU TCG before main even runs. parseDockerRef
// accepts exactly what reference.ParseDockerRef accepts and gives the same
// canonical and familiar strings; FuzzParseDockerRef holds it to that.

// ref is an image reference normalised as Docker does: a domain (empty
// only for a name whose first component is no valid host), a path, and
// either a tag or a digest.
type ref struct {
	domain, path, tag, digest string
}

const (
	hubDomain       = "docker.io"
	legacyHubDomain = "index.docker.io"
	officialPrefix  = "library/"
	maxPathLen      = 255 // of the path alone, without the domain
	maxTagLen       = 128
)

// digestHexLen gives the number of hex digits of a digest algorithm Docker
// accepts, or 0. A switch, not a map, so that package init does nothing.
func digestHexLen(alg string) int {
	switch alg {
	case "sha256":
		return 64
	case "sha384":
		return 96
	case "sha512":
		return 128
	}
	return 0
}

// parseDockerRef normalises a reference as users and repositories.json
// write it: "desktop" is docker.io/library/desktop:latest, a name without a
// tag gets :latest, and a name with both a tag and a digest keeps only the
// digest, which is what pins the image.
func parseDockerRef(s string) (ref, error) {
	if s == "" {
		return ref{}, errors.New("it is empty")
	}
	if len(s) == 64 && isHex(s) {
		return ref{}, errors.New("64 hex digits are an image ID, not a repository name")
	}
	var r ref
	name := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		name, r.digest = s[:i], s[i+1:]
		if err := checkDigest(r.digest); err != nil {
			return ref{}, err
		}
	}
	// A colon after the last slash starts the tag; one before it can only
	// be the registry's port.
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, r.tag = name[:i], name[i+1:]
		if err := checkTag(r.tag); err != nil {
			return ref{}, err
		}
	}
	if err := r.splitName(name); err != nil {
		return ref{}, err
	}
	if len(r.path) > maxPathLen {
		return ref{}, fmt.Errorf("repository path %q is %d characters long; at most %d are allowed", r.path, len(r.path), maxPathLen)
	}
	switch {
	case r.digest != "":
		r.tag = ""
	case r.tag == "":
		r.tag = "latest"
	}
	return r, nil
}

// splitName sets domain and path from name. The first component is the
// registry when it is localhost or looks like a host (a dot, a colon or an
// uppercase letter, which a repository path never has); otherwise the
// image is on Docker Hub, where a one-component name is an official image
// under library/.
func (r *ref) splitName(name string) error {
	first, rest, hasSlash := strings.Cut(name, "/")
	r.domain, r.path = hubDomain, name
	switch {
	case !hasSlash:
	case first == legacyHubDomain:
		r.path = rest
	case first == "localhost", strings.ContainsAny(first, ".:"), hasUpper(first):
		r.domain, r.path = first, rest
	}
	if r.domain == hubDomain && !strings.Contains(r.path, "/") {
		r.path = officialPrefix + r.path
	}
	if r.domain != hubDomain && !isHost(r.domain) {
		// Docker then reads the whole name as a path (a_b.c/d names no
		// registry, as '_' is no host character); it must be a valid one.
		if checkPath(name) != nil {
			return fmt.Errorf("registry %q is not a host name, IPv4 address or [IPv6] address with an optional :port", r.domain)
		}
		r.domain, r.path = "", name
		return nil
	}
	return checkPath(r.path)
}

// String gives the canonical form, e.g. docker.io/library/desktop:latest.
func (r ref) String() string {
	return join(r.domain, r.path, r.tag, r.digest)
}

// Familiar gives the form docker image ls shows, e.g. desktop:latest.
func (r ref) Familiar() string {
	if r.domain != hubDomain {
		return r.String()
	}
	p := r.path
	if short, ok := strings.CutPrefix(p, officialPrefix); ok && !strings.Contains(short, "/") {
		p = short
	}
	return join("", p, r.tag, r.digest)
}

func join(domain, path, tag, digest string) string {
	s := path
	if domain != "" {
		s = domain + "/" + path
	}
	if tag != "" {
		s += ":" + tag
	}
	if digest != "" {
		s += "@" + digest
	}
	return s
}

// checkPath checks slash-separated components of lowercase letters and
// digits, joined inside a component by one '.', one or two '_', or dashes.
func checkPath(p string) error {
	for c := range strings.SplitSeq(p, "/") {
		if !isPathComponent(c) {
			if hasUpper(c) {
				return fmt.Errorf("repository name component %q must be lowercase", c)
			}
			return fmt.Errorf("repository name component %q is not lowercase letters and digits joined by '.', '_', '__' or dashes", c)
		}
	}
	return nil
}

func isPathComponent(c string) bool {
	if c == "" || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if isLowerAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !isLowerAlnum(c[j]) {
			j++
		}
		switch sep := c[i:j]; {
		case sep == ".", sep == "_", sep == "__", strings.Trim(sep, "-") == "":
		default:
			return false
		}
		i = j
	}
	return true
}

// isHost reports whether s is a registry: a DNS name or IPv4 address, or
// an IPv6 address in brackets, with an optional :port.
func isHost(s string) bool {
	var port string
	var hasPort bool
	if rest, ok := strings.CutPrefix(s, "["); ok {
		addr, after, ok := strings.Cut(rest, "]")
		if !ok || addr == "" || strings.Trim(addr, "0123456789abcdefABCDEF:") != "" {
			return false
		}
		if after != "" {
			if port, hasPort = strings.CutPrefix(after, ":"); !hasPort {
				return false
			}
		}
	} else {
		var host string
		host, port, hasPort = strings.Cut(s, ":")
		for label := range strings.SplitSeq(host, ".") {
			if !isLabel(label) {
				return false
			}
		}
	}
	return !hasPort || port != "" && strings.Trim(port, "0123456789") == ""
}

// isLabel reports whether s is one DNS label: letters, digits and inner
// dashes.
func isLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func checkTag(tag string) error {
	ok := tag != "" && len(tag) <= maxTagLen && tag[0] != '.' && tag[0] != '-'
	for i := 0; ok && i < len(tag); i++ {
		ok = isAlnum(tag[i]) || strings.IndexByte("_.-", tag[i]) >= 0
	}
	if !ok {
		return fmt.Errorf("tag %q is not 1 to %d letters, digits, '_', '.' or '-' (not starting with '.' or '-')", tag, maxTagLen)
	}
	return nil
}

func checkDigest(d string) error {
	alg, h, _ := strings.Cut(d, ":")
	if n := digestHexLen(alg); n == 0 || len(h) != n || !isHex(h) {
		return fmt.Errorf("digest %q is not sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex> in lowercase", d)
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

func hasUpper(s string) bool {
	return strings.ContainsFunc(s, func(c rune) bool { return 'A' <= c && c <= 'Z' })
}
