package btrfs

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// searchResult encodes one TREE_SEARCH result as the kernel lays it out.
func searchResult(objectID, offset uint64, typ uint32, item []byte) []byte {
	b := make([]byte, searchHeaderSize, searchHeaderSize+len(item))
	binary.NativeEndian.PutUint64(b[8:], objectID)
	binary.NativeEndian.PutUint64(b[16:], offset)
	binary.NativeEndian.PutUint32(b[24:], typ)
	binary.NativeEndian.PutUint32(b[28:], uint32(len(item)))
	return append(b, item...)
}

func rootRef(dirID uint64, name string) []byte {
	b := make([]byte, rootRefSize, rootRefSize+len(name))
	binary.LittleEndian.PutUint64(b, dirID)
	binary.LittleEndian.PutUint16(b[16:], uint16(len(name)))
	return append(b, name...)
}

func TestParseRootRefs(t *testing.T) {
	tests := []struct {
		name     string
		buf      []byte
		n        uint32
		want     []childRef
		wantLast uint64
		wantErr  string
	}{
		{name: "none", n: 0},
		{
			name: "two children",
			buf:  slices.Concat(searchResult(257, 300, rootRefKey, rootRef(256, "machines")), searchResult(257, 301, rootRefKey, rootRef(1000, "srv"))),
			n:    2,
			want: []childRef{{300, 256, "machines"}, {301, 1000, "srv"}}, wantLast: 301,
		},
		{
			name: "other items skipped",
			buf:  slices.Concat(searchResult(258, 5, rootRefKey, rootRef(256, "x")), searchResult(257, 6, 144, rootRef(256, "y"))),
			n:    2, wantLast: 6,
		},
		{name: "header truncated", buf: make([]byte, 31), n: 1, wantErr: "header truncated"},
		{name: "item past buffer", buf: searchResult(257, 300, rootRefKey, rootRef(256, "x"))[:40], n: 1, wantErr: "8 left"},
		{name: "fewer results than n", buf: searchResult(257, 300, rootRefKey, rootRef(256, "x")), n: 2, wantErr: "header truncated"},
		{name: "short item", buf: searchResult(257, 300, rootRefKey, make([]byte, 10)), n: 1, wantErr: "expected at least 18"},
		{name: "name past item", buf: searchResult(257, 300, rootRefKey, rootRef(256, "abc")[:19]), n: 1, wantErr: "name of 3 bytes"},
		{name: "empty name", buf: searchResult(257, 300, rootRefKey, rootRef(256, "")), n: 1, wantErr: "name of 0 bytes"},
		{name: "dot-dot name", buf: searchResult(257, 300, rootRefKey, rootRef(256, "..")), n: 1, wantErr: "not a directory entry"},
		{name: "slash in name", buf: searchResult(257, 300, rootRefKey, rootRef(256, "a/b")), n: 1, wantErr: "not a directory entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, last, err := parseRootRefs(tt.buf, tt.n, 257, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || last != tt.wantLast {
				t.Errorf("got %+v, last %d; want %+v, last %d", got, last, tt.want, tt.wantLast)
			}
		})
	}
}

func TestParseInodePath(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"\x00", "", false},
		{"var/lib/\x00junk", "var/lib", false},
		{"a/\x00", "a", false},
		{"no terminator", "", true},
		{"/abs/\x00", "", true},
		{"a/../b/\x00", "", true},
	}
	for _, tt := range tests {
		got, err := parseInodePath([]byte(tt.in))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseInodePath(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseRootRefs(f *testing.F) {
	f.Add(slices.Concat(searchResult(257, 300, rootRefKey, rootRef(256, "machines")), searchResult(257, 301, 144, nil)), uint32(2))
	f.Add([]byte{}, uint32(1))
	f.Fuzz(func(t *testing.T, buf []byte, n uint32) {
		refs, _, err := parseRootRefs(buf, n%512, 257, nil)
		if err != nil {
			return
		}
		for _, r := range refs {
			if r.name == "" || r.name == "." || r.name == ".." || strings.ContainsAny(r.name, "/\x00") {
				t.Fatalf("accepted name %q", r.name)
			}
		}
	})
}

func FuzzParseInodePath(f *testing.F) {
	f.Add([]byte("var/lib/\x00"))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseInodePath(b)
		if err != nil {
			return
		}
		if strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
			t.Fatalf("accepted path %q", p)
		}
	})
}
