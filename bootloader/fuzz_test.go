package bootloader

import (
	"strings"
	"testing"
)

func FuzzParseRefind(f *testing.F) {
	f.Add("menuentry \"a\" {\n  volume linux\n  loader /v\n  options \"root=x\"\n}\n")
	f.Add("menuentry x {\n submenuentry y {\n }\n}\n")
	f.Add("menuentry \"unterminated {\n")
	f.Fuzz(func(t *testing.T, conf string) {
		entries, err := ParseRefind(conf)
		if err != nil {
			return
		}
		for _, e := range entries {
			if strings.Contains(e.Title+e.Kernel+e.Cmdline, "\n") {
				t.Errorf("ParseRefind(%q) gave an entry spanning lines: %+v", conf, e)
			}
		}
	})
}

func FuzzParseGRUB(f *testing.F) {
	f.Add("menuentry 'a' --id x {\n\tsearch --no-floppy --fs-uuid --set=root 1234\n\tlinux /v 'a b' \"c\\\"d\"\n}\n")
	f.Add("submenu 'x' {\nmenuentry y {\n}\n}\n")
	f.Add("menuentry 'open {\n")
	f.Fuzz(func(t *testing.T, cfg string) {
		_, _ = ParseGRUB(cfg)
	})
}

// FuzzGRUBQuote checks that every word GRUBEntry quotes reads back as itself.
func FuzzGRUBQuote(f *testing.F) {
	f.Add("plain")
	f.Add(`it's "quoted" $x \ {}`)
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\n\r") {
			return
		}
		words, err := grubWords("x " + grubQuote(s))
		if err != nil || len(words) != 2 || words[1] != s {
			t.Errorf("grubQuote(%q) = %s reads back as %q, %v", s, grubQuote(s), words, err)
		}
	})
}

func FuzzParseBLS(f *testing.F) {
	f.Add("title a\nlinux /v\ninitrd /i\noptions root=x\n")
	f.Add("linux\t/v\n# c\n")
	f.Fuzz(func(t *testing.T, conf string) {
		e, err := ParseBLS("id", conf)
		if err == nil && e.Kernel == "" {
			t.Errorf("ParseBLS(%q) accepted an entry without a kernel", conf)
		}
	})
}

// FuzzSetBlock checks that setting a block keeps every other line and is idempotent.
func FuzzSetBlock(f *testing.F) {
	f.Add("timeout 5\n", "menuentry a {\n}\n")
	f.Add("# >>> dockerinit-a\nold\n# <<< dockerinit-a\nkeep\n", "new")
	f.Fuzz(func(t *testing.T, conf, body string) {
		if strings.Contains(body, "dockerinit-a") {
			return // a body holding its own markers is not a block
		}
		once, err := SetBlock(conf, "dockerinit-a", body)
		if err != nil {
			return
		}
		twice, err := SetBlock(once, "dockerinit-a", body)
		if err != nil || twice != once {
			t.Errorf("SetBlock is not idempotent on %q: %q then %q (%v)", conf, once, twice, err)
		}
		if !strings.Contains(conf, blockBegin+"dockerinit-a") && !strings.HasPrefix(once, conf) {
			t.Errorf("SetBlock(%q) changed the user's lines: %q", conf, once)
		}
	})
}

func FuzzLocateIn(f *testing.F) {
	f.Add("30 22 0:30 /@docker /var/lib/docker rw shared:2 - btrfs /dev/sdb2 rw\n", "/var/lib/docker/x")
	f.Add("1 1 0:1 / / rw - ext4 /dev/sda\\040b rw\n", "/")
	f.Fuzz(func(t *testing.T, mountinfo, abs string) {
		loc, err := LocateIn(mountinfo, abs)
		if err == nil && !strings.HasPrefix(loc.Path, "/") {
			t.Errorf("LocateIn(%q, %q).Path = %q, want an absolute path", mountinfo, abs, loc.Path)
		}
	})
}

// FuzzParseBLSName checks that a parsed name writes back to a name that parses the same, and
// that the counter is systemd-boot's: digits right before ".conf".
func FuzzParseBLSName(f *testing.F) {
	for _, s := range []string{"a.conf", "a+3.conf", "a+2-1.conf", "a+b+3-0.conf", "a+1-2-3.conf", "+3.conf", "a+99999999999.conf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		n, ok := ParseBLSName(file)
		if !ok {
			if strings.HasSuffix(file, ".conf") && len(file) > len(".conf") && !strings.ContainsAny(file, "/\x00") {
				t.Errorf("ParseBLSName(%q) refused an entry name", file)
			}
			return
		}
		if n.ID == "" || n.Left < 0 || n.Done < 0 || n.Left > maxCounter || n.Done > maxCounter {
			t.Errorf("ParseBLSName(%q) = %+v", file, n)
		}
		if !n.Counted && n.String() != file {
			t.Errorf("ParseBLSName(%q) = %+v, which writes back as %q", file, n, n.String())
		}
		if back, ok := ParseBLSName(n.String()); !ok || back != n {
			t.Errorf("ParseBLSName(%q) = %+v, written %q, parsed again %+v, %v", file, n, n.String(), back, ok)
		}
	})
}
