package bootparam

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeLegacy feeds /etc/docker-btrfs.json, which an image supplies.
func FuzzDecodeLegacy(f *testing.F) {
	for _, s := range []string{
		`{"docker_image":"desktop","docker_tag":"latest"}`,
		`{"docker_image":"registry:5000/desktop","docker_tag":"1"}`,
		`{"docker_image":"desktop@sha256:00","docker_tag":"latest"}`,
		`{"docker_image":"\u00e9\ud800","docker_tag":null,"docker_image":"x"}`,
		`{"docker_tag":"latest"}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		image, err := DecodeLegacy(data)
		if err != nil {
			if !strings.Contains(err.Error(), LegacyPath) {
				t.Fatalf("error %q does not name %s", err, LegacyPath)
			}
			return
		}
		if image == "" || !utf8.ValidString(image) {
			t.Fatalf("DecodeLegacy(%q) = %q, want a non-empty UTF-8 reference", data, image)
		}
		// What it returns, written back as a docker_image alone, reads the same.
		again, err := json.Marshal(map[string]string{"docker_image": image})
		if err != nil {
			t.Fatal(err)
		}
		if back, err := DecodeLegacy(again); err != nil || back != image {
			t.Fatalf("DecodeLegacy(%s) = %q, %v; want %q back", again, back, err, image)
		}
	})
}

// FuzzDecodeRescue feeds dockerinit.toml to the lenient reader of its [rescue] table, which
// guards the rescue shell even when the boot refuses the file.
func FuzzDecodeRescue(f *testing.F) {
	f.Add([]byte(designExample))
	f.Add([]byte("[rescue]\npassword_hash = \"" + testHash + "\"\n"))
	f.Add([]byte("imagee = \"x\"\n[rescue]\npassword_hash = \"" + testHash + "\"\n[boot]\ntimeout = \"soon\"\n"))
	f.Add([]byte("[rescue]\npassword_hash = \"$5$x$\"\n"))
	f.Add([]byte("rescue = 1\n"))
	f.Add([]byte("[rescue\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRescue(data)
		if err != nil {
			if !strings.Contains(err.Error(), ConfigPath) {
				t.Fatalf("error %q does not name %s", err, ConfigPath)
			}
		} else if verr := r.validate(); verr != nil {
			t.Fatalf("DecodeRescue(%q) = %+v, which does not validate: %v", data, r, verr)
		}
		// A file the boot accepts guards the shell with the same hash: DecodeRescue is only more
		// lenient, never different.
		c, cerr := DecodeConfig(data)
		if cerr != nil {
			return
		}
		if err != nil || r != c.Rescue {
			t.Fatalf("DecodeConfig(%q) has rescue %+v, but DecodeRescue = %+v, %v", data, c.Rescue, r, err)
		}
	})
}

// FuzzSeal feeds the boot loader's command line, which whoever edits the menu writes, against a
// sealed one: the sealed line always wins, and every ignored word is one the kernel got.
func FuzzSeal(f *testing.F) {
	f.Add("root=LABEL=linux rw", "root=LABEL=linux rw init=/bin/sh")
	f.Add(`a="b c"`, `"a=b c" --`)
	f.Fuzz(func(t *testing.T, sealed, actual string) {
		got, ignored := Seal(sealed, actual)
		if sealed == "" {
			if got != actual || ignored != nil {
				t.Fatalf("unsealed: %q, %q", got, ignored)
			}
			return
		}
		if got != sealed {
			t.Fatalf("sealed %q, got %q", sealed, got)
		}
		for _, w := range ignored {
			if !strings.Contains(actual, w) || w == "" {
				t.Fatalf("ignored %q is not a word of %q", w, actual)
			}
		}
	})
}
