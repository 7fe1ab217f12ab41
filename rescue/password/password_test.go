package password

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Hashes made by libxcrypt's crypt(3) (Python's crypt module) and `openssl passwd`.
var vectors = []struct {
	name, hash, password string
}{
	{"sha-512", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!"},
	{"sha-256", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!"},
	{"sha-512 rounds", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.", "Hello world!"},
	{"sha-256 rounds", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA", "Hello world!"},
	{"empty salt and password", "$6$$/chiBau24cE26QQVW3IfIe68Xu5.JQ4E8Ie7lcRLwqxO5cxGuBhqF2HmTL.zWJ9zjChg3yJYFXeGBQ2y3Ba1d1", ""},
	{"password longer than the digest", "$5$x$sP6hKhjQt9DVBiIuN3/tJuT2dVV6XBPWD19TZ9fEUh4", strings.Repeat("a", 200)},
	{"utf-8 and spaces", "$6$rounds=1000$abc$/Aa1sci7O7edCg8SbH6hy8Mrc.YJwuWhN.Gd3hvjjd/cLSkXmWKxNMZUV/gnYzHpoa2j1KW4K0sMsj0P9VzRh1", "päss wörd"},
	{"openssl passwd -6", "$6$saltsalt$YTeBOLnmm3CoeJTzBuijUEtOEWCqrw/nQ8/AeMmON4LGp3k0ZiMjC1OdqzWFUAfDQBvYkOch9BWtQTBcZ1E/p0", "hello"},
	{"openssl passwd -5", "$5$saltsalt$kfE3pS1dKPPHrilLCLWxLECEVLX8Au49cWIQg7GMQ05", "hello"},
}

func TestVerify(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			if err := Check(v.hash); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if err := Verify(v.hash, v.password); err != nil {
				t.Errorf("Verify with the right password: %v", err)
			}
			for _, wrong := range []string{v.password + "x", strings.ToUpper(v.password) + " ", "hello world!"} {
				if wrong == v.password {
					continue
				}
				if err := Verify(v.hash, wrong); !errors.Is(err, ErrMismatch) {
					t.Errorf("Verify(%q) = %v, want ErrMismatch", wrong, err)
				}
			}
		})
	}
}

func TestFormatErrors(t *testing.T) {
	const digest512 = "svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
	tests := []struct {
		hash, want string
	}{
		{"", "does not start with $5$ or $6$"},
		{"hunter2", "does not start with $5$ or $6$"},
		{"$6", "does not start with $5$ or $6$"},
		{"$y$j9T$abc$def", "scheme $y$ is not supported"},
		{"$1$abc$def", "scheme $1$ is not supported"},
		{"$6$saltstring", "no '$' between the salt and the digest"},
		{"$6$rounds=999$salt$" + digest512, `"rounds=999" is not a number of rounds from 1000`},
		{"$6$rounds=1000000000$salt$" + digest512, "rounds from 1000 to 999999999"},
		{"$6$rounds=01000$salt$" + digest512, `"rounds=01000"`},
		{"$6$rounds=x$salt$" + digest512, `"rounds=x"`},
		{"$6$saltstringsaltstring$" + digest512, "a salt of 20 characters, at most 16"},
		{"$6$sa:lt$" + digest512, "contains ':'"},
		{"$6$salt$" + digest512[1:], "not 86 characters"},
		{"$5$salt$" + digest512, "not 43 characters"},
		{"$6$salt$" + digest512[1:] + "!", "of [./0-9A-Za-z]"},
	}
	for _, tt := range tests {
		err := Verify(tt.hash, "Hello world!")
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("Verify(%q) = %v, want a *FormatError", tt.hash, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "openssl passwd -6") {
			t.Errorf("Verify(%q) error %q, want it to contain %q and say how to make a hash", tt.hash, err, tt.want)
		}
		if Check(tt.hash) == nil {
			t.Errorf("Check(%q) = nil, want an error", tt.hash)
		}
	}
}

var roundsRe = regexp.MustCompile(`^\$[56]\$rounds=([0-9]+)\$`)

func FuzzVerify(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.hash, v.password)
	}
	f.Add("$6$rounds=1000$$x", "")
	f.Fuzz(func(t *testing.T, h, pw string) {
		if parse(h) != nil {
			return
		}
		// The number of rounds makes Verify slow, not wrong.
		if m := roundsRe.FindStringSubmatch(h); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > 20000 {
				return
			}
		}
		if err := Verify(h, pw); err != nil && !errors.Is(err, ErrMismatch) {
			t.Fatalf("Verify of a hash that parses: %v", err)
		}
	})
}
