// Package password owns the rescue shell's password hashes: SHA-crypt, the "$6$" (SHA-512) and
// "$5$" (SHA-256) strings of /etc/shadow that `openssl passwd -6` and `mkpasswd -m sha-512` print.
//
// SHA-crypt because it needs only the standard library (crypt(3) itself would need cgo, and the
// x/crypto packages in the module graph have no SHA-crypt), and because every distribution ships a
// tool that makes such hashes: a format of our own would need a tool of our own. The algorithm is
// Ulrich Drepper's public specification "Unix crypt using SHA-256 and SHA-512".
package password

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// ErrMismatch is a password that does not match the hash.
var ErrMismatch = errors.New("wrong password")

// FormatError is a hash that is not a SHA-crypt string dockerinit can check.
type FormatError struct {
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("password hash: %s; expected a SHA-crypt hash \"$6$SALT$...\" as `openssl passwd -6` or `mkpasswd -m sha-512` print it", e.Reason)
}

// The specification's limits on rounds= and the salt.
const (
	defaultRounds = 5000
	minRounds     = 1000
	maxRounds     = 999_999_999
	maxSalt       = 16
)

// scheme is one SHA-crypt variant.
type scheme struct {
	newHash func() hash.Hash
	// order lists the digest's bytes in the order the specification encodes them, in groups of
	// three (most significant first); the last group may be shorter.
	order  []int
	digest int // length of the encoded digest
}

var schemes = map[string]scheme{
	"5": {newHash: sha256.New, digest: 43, order: []int{
		0, 10, 20, 21, 1, 11, 12, 22, 2, 3, 13, 23, 24, 4, 14, 15, 25, 5, 6, 16, 26, 27, 7, 17, 18, 28, 8,
		9, 19, 29, 31, 30}},
	"6": {newHash: sha512.New, digest: 86, order: []int{
		0, 21, 42, 22, 43, 1, 44, 2, 23, 3, 24, 45, 25, 46, 4, 47, 5, 26, 6, 27, 48, 28, 49, 7, 50, 8, 29,
		9, 30, 51, 31, 52, 10, 53, 11, 32, 12, 33, 54, 34, 55, 13, 56, 14, 35, 15, 36, 57, 37, 58, 16, 59,
		17, 38, 18, 39, 60, 40, 61, 19, 62, 20, 41, 63}},
}

// parsed is a hash split into its parts.
type parsed struct {
	scheme scheme
	salt   string
	rounds int
	digest string
}

func parse(h string) (parsed, error) {
	id, rest, ok := strings.Cut(strings.TrimPrefix(h, "$"), "$")
	if !strings.HasPrefix(h, "$") || !ok {
		return parsed{}, &FormatError{Reason: "it does not start with $5$ or $6$"}
	}
	s, ok := schemes[id]
	if !ok {
		return parsed{}, &FormatError{Reason: fmt.Sprintf("scheme $%s$ is not supported, only $5$ and $6$ (yescrypt $y$ is the default of some mkpasswd versions: pass -m sha-512)", id)}
	}
	p := parsed{scheme: s, rounds: defaultRounds}
	if r, after, ok := strings.Cut(rest, "$"); ok && strings.HasPrefix(r, "rounds=") {
		n, err := strconv.Atoi(strings.TrimPrefix(r, "rounds="))
		if err != nil || n < minRounds || n > maxRounds || strconv.Itoa(n) != r[len("rounds="):] {
			return parsed{}, &FormatError{Reason: fmt.Sprintf("%q is not a number of rounds from %d to %d", r, minRounds, maxRounds)}
		}
		p.rounds, rest = n, after
	}
	salt, digest, ok := strings.Cut(rest, "$")
	switch {
	case !ok:
		return parsed{}, &FormatError{Reason: "no '$' between the salt and the digest"}
	case len(salt) > maxSalt:
		return parsed{}, &FormatError{Reason: fmt.Sprintf("a salt of %d characters, at most %d", len(salt), maxSalt)}
	case strings.ContainsAny(salt, ":\n"):
		return parsed{}, &FormatError{Reason: "the salt contains ':' or a newline"}
	case len(digest) != s.digest || strings.Trim(digest, alphabet) != "":
		return parsed{}, &FormatError{Reason: fmt.Sprintf("the digest is not %d characters of [./0-9A-Za-z]", s.digest)}
	}
	p.salt, p.digest = salt, digest
	return p, nil
}

// Check reports whether h is a hash that Verify can check, with a *FormatError if not.
func Check(h string) error {
	_, err := parse(h)
	return err
}

// Verify checks password against the hash h: nil if it matches, ErrMismatch if not, a
// *FormatError if h is not a SHA-crypt hash.
func Verify(h, password string) error {
	p, err := parse(h)
	if err != nil {
		return err
	}
	got := encode(p.scheme.order, sum(p.scheme.newHash, []byte(password), []byte(p.salt), p.rounds))
	if subtle.ConstantTimeCompare([]byte(got), []byte(p.digest)) != 1 {
		return ErrMismatch
	}
	return nil
}

// sum is the specification's digest computation, steps 1 to 21.
func sum(newHash func() hash.Hash, pw, salt []byte, rounds int) []byte {
	b := newHash()
	b.Write(pw)
	b.Write(salt)
	b.Write(pw)
	alt := b.Sum(nil)

	a := newHash()
	a.Write(pw)
	a.Write(salt)
	a.Write(repeat(alt, len(pw)))
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(alt)
		} else {
			a.Write(pw)
		}
	}
	c := a.Sum(nil)

	dp := newHash()
	for range len(pw) {
		dp.Write(pw)
	}
	pseq := repeat(dp.Sum(nil), len(pw))

	ds := newHash()
	for range 16 + int(c[0]) {
		ds.Write(salt)
	}
	sseq := repeat(ds.Sum(nil), len(salt))

	for i := range rounds {
		r := newHash()
		if i%2 != 0 {
			r.Write(pseq)
		} else {
			r.Write(c)
		}
		if i%3 != 0 {
			r.Write(sseq)
		}
		if i%7 != 0 {
			r.Write(pseq)
		}
		if i%2 != 0 {
			r.Write(c)
		} else {
			r.Write(pseq)
		}
		c = r.Sum(c[:0])
	}
	return c
}

// repeat returns n bytes of d repeated.
func repeat(d []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, d[:min(len(d), n-len(out))]...)
	}
	return out
}

const alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// encode writes the digest bytes in order as crypt's base 64: each group of up to three bytes
// (the first the most significant) as 6-bit characters, least significant first.
func encode(order []int, d []byte) string {
	var b strings.Builder
	for i := 0; i < len(order); i += 3 {
		group := order[i:min(i+3, len(order))]
		var w uint32
		for _, k := range group {
			w = w<<8 | uint32(d[k])
		}
		for range len(group) + 1 {
			b.WriteByte(alphabet[w&0x3f])
			w >>= 6
		}
	}
	return b.String()
}
