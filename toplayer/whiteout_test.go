package toplayer

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		kind       kind
		target     string
		wantErrSay string
	}{
		{name: "passwd", kind: entry},
		{name: ".bashrc", kind: entry},
		{name: ".wh", kind: entry},
		{name: "x.wh.y", kind: entry},
		{name: ".wh.motd", kind: whiteout, target: "motd"},
		{name: ".wh..bashrc", kind: whiteout, target: ".bashrc"},
		{name: ".wh..wh..opq", kind: opaque},
		{name: ".wh..wh.plnk", wantErrSay: "reserved"},
		{name: ".wh..wh..opq2", wantErrSay: "reserved"},
		{name: ".wh.", wantErrSay: "not a file name"},
		{name: ".wh..", wantErrSay: "not a file name"},
		{name: ".wh...", wantErrSay: "not a file name"},
	}
	for _, tt := range tests {
		k, target, err := classify(tt.name)
		if tt.wantErrSay != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrSay) || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("classify(%q) = %v, want an error naming it and saying %q", tt.name, err, tt.wantErrSay)
			}
			continue
		}
		if err != nil || k != tt.kind || target != tt.target {
			t.Errorf("classify(%q) = %v, %q, %v; want %v, %q", tt.name, k, target, err, tt.kind, tt.target)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"passwd", ".wh.motd", ".wh..wh..opq", ".wh..wh.plnk", ".wh..", ".wh.a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		k, target, err := classify(name)
		if err != nil {
			return
		}
		switch k {
		case entry:
			if strings.HasPrefix(name, whiteoutPrefix) {
				t.Fatalf("%q taken as a plain entry", name)
			}
		case whiteout:
			if whiteoutPrefix+target != name || target == "" || target == "." || target == ".." || strings.ContainsAny(target, "/\x00") {
				t.Fatalf("%q whites out %q, which is not one entry of the same directory", name, target)
			}
		case opaque:
			if name != opaqueMarker {
				t.Fatalf("%q taken as the opaque marker", name)
			}
		}
	})
}
