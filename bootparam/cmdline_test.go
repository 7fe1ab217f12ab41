package bootparam

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	flag := func(k string) Param { return Param{Key: k} }
	kv := func(k, v string) Param { return Param{Key: k, Value: v, HasValue: true} }
	tests := []struct {
		name string
		in   string
		want Cmdline
	}{
		{"empty", "", Cmdline{}},
		{"only space", " \t\n", Cmdline{}},
		{
			"original tutorial",
			"root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker",
			Cmdline{Params: []Param{
				kv("root", "LABEL=linux"), kv("rootflags", "subvol=docker_rwlayer"), flag("rw"),
				kv("docker_path", "docker"), kv("toplayer", "LABEL=linux"), kv("toplayer_path", "boot_docker"),
			}},
		},
		{"proc cmdline newline", "quiet splash\n", Cmdline{Params: []Param{flag("quiet"), flag("splash")}}},
		{"tabs and runs of space", "a=1\t\t b  c=", Cmdline{Params: []Param{kv("a", "1"), flag("b"), kv("c", "")}}},
		{"quoted value", `a="b c" d`, Cmdline{Params: []Param{kv("a", "b c"), flag("d")}}},
		{"quoted word", `"a=b c" d`, Cmdline{Params: []Param{kv("a", "b c"), flag("d")}}},
		{"quoted flag", `"ro"`, Cmdline{Params: []Param{flag("ro")}}},
		{"quotes inside value kept", `a=b"c d"e`, Cmdline{Params: []Param{kv("a", `b"c d"e`)}}},
		{"unterminated quote eats the rest", `a="b c d`, Cmdline{Params: []Param{kv("a", "b c d")}}},
		{"value with equals", "root=PARTUUID=ab-01", Cmdline{Params: []Param{kv("root", "PARTUUID=ab-01")}}},
		{"empty key dropped", `=x "" y`, Cmdline{Params: []Param{flag("y")}}},
		{
			"stop at lone dashes",
			`root=/dev/sda -- single "x y" systemd.unit=rescue.target`,
			Cmdline{Params: []Param{kv("root", "/dev/sda")}, Init: []string{"single", "x y", "systemd.unit=rescue.target"}},
		},
		{"dashes with value are a param", "--=1 a", Cmdline{Params: []Param{kv("--", "1"), flag("a")}}},
		{"repeated keys kept in order", "a=1 a=2", Cmdline{Params: []Param{kv("a", "1"), kv("a", "2")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseCmdline(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCmdline(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLookupLastWins(t *testing.T) {
	c := ParseCmdline("init=/a quiet init=/b docker_image=x -- init=/c")
	tests := []struct {
		key       string
		want      string
		wantFound bool
	}{
		{"init", "/b", true},
		{"docker_image", "x", true},
		{"quiet", "", true},
		{"root", "", false},
	}
	for _, tt := range tests {
		p, ok := c.Lookup(tt.key)
		if ok != tt.wantFound || p.Value != tt.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.key, p.Value, ok, tt.want, tt.wantFound)
		}
	}
}

func TestCmdlineString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"root=LABEL=linux  rw\n", "root=LABEL=linux rw"},
		{`root="LABEL=my disk" "toplayer_path=boot docker"`, `root="LABEL=my disk" toplayer_path="boot docker"`},
		{`"a b" -- x "y z" "" k="v w"`, `"a b" -- x "y z" "" k="v w"`},
	} {
		if got := ParseCmdline(tc.in).String(); got != tc.want {
			t.Errorf("ParseCmdline(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{
		"root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker",
		`a="b c" "d=e f" -- x "y z"`, `"`, `=`, `""=""`, "--", "a=\"\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCmdline(s)
		for _, p := range c.Params {
			if p.Key == "" {
				t.Errorf("empty key in %q", s)
			}
			if !p.HasValue && p.Value != "" {
				t.Errorf("flag %q has a value in %q", p.Key, s)
			}
			if q, ok := c.Lookup(p.Key); !ok || q.Key != p.Key {
				t.Errorf("Lookup(%q) = %v, %v", p.Key, q, ok)
			}
		}
		// Written back, a command line whose words hold no double quote reads the same.
		quote := func(w string) bool { return strings.Contains(w, `"`) }
		if !slices.ContainsFunc(c.Params, func(p Param) bool { return quote(p.String()) }) && !slices.ContainsFunc(c.Init, quote) {
			if back := ParseCmdline(c.String()); !reflect.DeepEqual(back, c) {
				t.Errorf("ParseCmdline(%q) = %+v; written back as %q it reads %+v", s, c, c.String(), back)
			}
		}
		// Words without quotes or '=' come back unchanged, in order.
		if !strings.ContainsAny(s, `"=`) {
			var keys []string
			for _, p := range c.Params {
				keys = append(keys, p.Key)
			}
			words := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\n\v\f\r", r) })
			wantKeys, wantInit := words, []string(nil)
			if i := slices.Index(words, "--"); i >= 0 {
				wantKeys, wantInit = words[:i], words[i+1:]
			}
			if !slices.Equal(keys, wantKeys) || !slices.Equal(c.Init, wantInit) {
				t.Errorf("ParseCmdline(%q) = %q -- %q, want %q -- %q", s, keys, c.Init, wantKeys, wantInit)
			}
		}
	})
}

func TestSeal(t *testing.T) {
	const uki = `root=LABEL=linux rootflags=subvol=docker_rwlayer rw console=ttyS0 x="a b"`
	for _, tc := range []struct {
		name, sealed, actual, want string
		ignored                    []string
	}{
		{"not sealed", "", "root=/dev/sda init=/bin/sh", "root=/dev/sda init=/bin/sh", nil},
		{"the stub's own line", uki, uki, uki, nil},
		{"the kernel adds a newline", uki, uki + "\n", uki, nil},
		{"an edited entry", uki, uki + " init=/bin/sh dockerinit.rescue", uki, []string{"init=/bin/sh", "dockerinit.rescue"}},
		{"a replaced line", uki, "root=/dev/sdb docker_image=evil rw", uki, []string{"root=/dev/sdb", "docker_image=evil"}},
		{"quoted words compare whole", uki, `x="a b" x="a c"`, uki, []string{`x="a c"`}},
		{"empty kernel line", uki, "", uki, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ignored := Seal(tc.sealed, tc.actual)
			if got != tc.want || !slices.Equal(ignored, tc.ignored) {
				t.Errorf("Seal = %q, %q; want %q, %q", got, ignored, tc.want, tc.ignored)
			}
		})
	}
}
