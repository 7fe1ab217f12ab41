// Package password owns the rescue shell's password hashes: SHA-crypt, the "$6$" (SHA-512) and
// "$5$" (SHA-256) strings of /etc/shadow that `openssl passwd -6` and `mkpasswd -m sha-512` print.
//
// SHA-crypt because every distribution ships a tool that makes such hashes (a format of our own
// would need a tool of our own), and crypt(3) itself would need cgo. The digest is computed by
// go-crypt's shacrypt, a maintained implementation made for the job; this package checks the
// hash's form first, to say precisely what is wrong with one.
package password

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-crypt/crypt/algorithm/shacrypt"
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
	minRounds = 1000
	maxRounds = 999_999_999
	maxSalt   = 16
)

// digestLen is the length of each scheme's encoded digest.
var digestLen = map[string]int{"5": 43, "6": 86}

// parse checks that h is a SHA-crypt hash of the specification's form: an error says what is
// wrong, where the library would only refuse it.
func parse(h string) error {
	id, rest, ok := strings.Cut(strings.TrimPrefix(h, "$"), "$")
	if !strings.HasPrefix(h, "$") || !ok {
		return &FormatError{Reason: "it does not start with $5$ or $6$"}
	}
	want, ok := digestLen[id]
	if !ok {
		return &FormatError{Reason: fmt.Sprintf("scheme $%s$ is not supported, only $5$ and $6$ (yescrypt $y$ is the default of some mkpasswd versions: pass -m sha-512)", id)}
	}
	if r, after, ok := strings.Cut(rest, "$"); ok && strings.HasPrefix(r, "rounds=") {
		n, err := strconv.Atoi(strings.TrimPrefix(r, "rounds="))
		if err != nil || n < minRounds || n > maxRounds || strconv.Itoa(n) != r[len("rounds="):] {
			return &FormatError{Reason: fmt.Sprintf("%q is not a number of rounds from %d to %d", r, minRounds, maxRounds)}
		}
		rest = after
	}
	salt, digest, ok := strings.Cut(rest, "$")
	switch {
	case !ok:
		return &FormatError{Reason: "no '$' between the salt and the digest"}
	case len(salt) > maxSalt:
		return &FormatError{Reason: fmt.Sprintf("a salt of %d characters, at most %d", len(salt), maxSalt)}
	case strings.ContainsAny(salt, ":\n"):
		return &FormatError{Reason: "the salt contains ':' or a newline"}
	case len(digest) != want || strings.Trim(digest, alphabet) != "":
		return &FormatError{Reason: fmt.Sprintf("the digest is not %d characters of [./0-9A-Za-z]", want)}
	}
	return nil
}

// Check reports whether h is a hash that Verify can check, with a *FormatError if not.
func Check(h string) error {
	if err := parse(h); err != nil {
		return err
	}
	if _, err := shacrypt.Decode(h); err != nil {
		return &FormatError{Reason: err.Error()}
	}
	return nil
}

// Verify checks password against the hash h: nil if it matches, ErrMismatch if not, a
// *FormatError if h is not a SHA-crypt hash.
func Verify(h, password string) error {
	if err := parse(h); err != nil {
		return err
	}
	d, err := shacrypt.Decode(h)
	if err != nil {
		return &FormatError{Reason: err.Error()}
	}
	match, err := d.MatchAdvanced(password)
	if err != nil {
		return &FormatError{Reason: err.Error()}
	}
	if !match {
		return ErrMismatch
	}
	return nil
}

// alphabet is crypt's base 64.
const alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
