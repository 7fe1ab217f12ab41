package modindex

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"virtio-blk", "virtio_blk"},
		{"virtio_blk", "virtio_blk"},
		{"fs-vfat", "fs_vfat"},
		{"usb:v0BDAp8812d[0-1]*-x", "usb:v0BDAp8812d[0-1]*_x"},
		{"", ""},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"fs_vfat", "fs_vfat", true},
		{"fs_vfat", "fs_vfa", false},
		{"fs_vfat", "fs_vfatx", false},
		{"virtio:d00000002v*", "virtio:d00000002v00001AF4", true},
		{"virtio:d00000002v*", "virtio:d00000001v00001AF4", false},
		{"pci:v00008086d*sv*sd*bc01sc06i01*", "pci:v00008086d0000A352sv00001028sd0000085Cbc01sc06i01", true},
		{"pci:v00008086d*sv*sd*bc01sc06i01*", "pci:v00008086d0000A352sv00001028sd0000085Cbc01sc08i02", false},
		{"usb:v0BDAp8812d[0-1]*", "usb:v0BDAp8812d0100", true},
		{"usb:v0BDAp8812d[0-1]*", "usb:v0BDAp8812d2100", false},
		{"usb:v0BDAp8812d[!0-1]*", "usb:v0BDAp8812d2100", true},
		{"a[^b]c", "abc", false},
		{"a[]]c", "a]c", true},
		{"a[b", "a[b", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{`a\*c`, "a*c", true},
		{`a\*c`, "abc", false},
		{"*", "", true},
		{"**a*", "xxa", true},
		{"a*b*c", "a/x/b/y/c", true},
		{"a*b*c", "abab", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestParseAliases(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Alias
		wantErr  string
	}{
		{
			name: "depmod output",
			in:   "# Aliases extracted from modules themselves.\nalias fs-btrfs btrfs\n\nalias pci:v*d*sv*sd*bc01sc06i01* ahci\nalias crypto-crc32c crc32c-generic\n",
			want: []Alias{{"fs_btrfs", "btrfs"}, {"pci:v*d*sv*sd*bc01sc06i01*", "ahci"}, {"crypto_crc32c", "crc32c_generic"}},
		},
		{name: "empty", in: ""},
		{name: "missing module", in: "alias fs-btrfs\n", wantErr: `line 1: expected "alias PATTERN MODULE"`},
		{name: "wrong keyword", in: "alias a b\nsoftdep a pre: b\n", wantErr: "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAliases(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			var buf bytes.Buffer
			if err := FormatAliases(&buf, got); err != nil {
				t.Fatal(err)
			}
			again, err := ParseAliases(&buf)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("round trip: got %v, %v; want %v", again, err, got)
			}
		})
	}
}

func TestParsePlan(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Entry
		wantErr  string
	}{
		{
			name: "ordered",
			in: "# comment\nforced xor kernel/crypto/xor.ko\nforced ext4 builtin\nforced crc32c_intel kernel/arch/x86/crypto/crc32c-intel.ko\n" +
				"forced btrfs kernel/fs/btrfs/btrfs.ko xor soft:crc32c_intel\noptional vfat kernel/fs/fat/vfat.ko xor soft:ext4\noptional fat_x builtin\n",
			want: []Entry{
				{Forced: true, Name: "xor", Path: "kernel/crypto/xor.ko"},
				{Forced: true, Name: "ext4", Path: Builtin},
				{Forced: true, Name: "crc32c_intel", Path: "kernel/arch/x86/crypto/crc32c-intel.ko"},
				{Forced: true, Name: "btrfs", Path: "kernel/fs/btrfs/btrfs.ko", Deps: []string{"xor"}, Soft: []string{"crc32c_intel"}},
				{Name: "vfat", Path: "kernel/fs/fat/vfat.ko", Deps: []string{"xor"}, Soft: []string{"ext4"}},
				{Name: "fat_x", Path: Builtin},
			},
		},
		{name: "dependency after dependent", in: "forced btrfs kernel/fs/btrfs/btrfs.ko xor\nforced xor kernel/crypto/xor.ko\n", wantErr: "btrfs depends on xor, which is not listed before it"},
		{name: "soft dependency after dependent", in: "optional btrfs kernel/fs/btrfs/btrfs.ko soft:crc32c\noptional crc32c kernel/crypto/crc32c.ko\n", wantErr: "btrfs depends on crc32c, which is not listed before it"},
		{name: "forced on optional", in: "optional xor kernel/crypto/xor.ko\nforced btrfs kernel/fs/btrfs/btrfs.ko xor\n", wantErr: "line 2: forced module btrfs depends on xor, which is optional"},
		{name: "forced on optional soft", in: "optional c c.ko\nforced b b.ko soft:c\n", wantErr: "forced module b depends on c, which is optional"},
		{name: "self dependency", in: "optional a a.ko a\n", wantErr: "a depends on a"},
		{name: "duplicate", in: "optional a a.ko\nforced a b.ko\n", wantErr: "module a listed twice"},
		{name: "no path", in: "forced a\n", wantErr: "line 1"},
		{name: "plan of an older mkbootimg", in: "btrfs kernel/fs/btrfs/btrfs.ko\n", wantErr: `line 1: expected "forced|optional NAME PATH [DEP...]", found "btrfs kernel/fs/btrfs/btrfs.ko"; rebuild the initramfs`},
		{name: "escaping path", in: "forced a ../../etc/shadow\n", wantErr: "leaves the modules directory"},
		{name: "absolute path", in: "optional a /etc/shadow\n", wantErr: "leaves the modules directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePlan(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			var buf bytes.Buffer
			if err := FormatPlan(&buf, "6.1.0-1-amd64", got); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(buf.String(), "# dockerinit load plan for kernel 6.1.0-1-amd64") {
				t.Errorf("plan header missing: %q", buf.String())
			}
			again, err := ParsePlan(&buf)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("round trip: got %v, %v; want %v", again, err, got)
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("pci:v00008086d*sv*sd*bc01sc06i01*", "pci:v00008086d0000A352sv00001028sd0000085Cbc01sc06i01")
	f.Add("usb:v0BDAp8812d[!0-1]*", "usb:v0BDAp8812d2100")
	f.Add(`a[\]-\\]*\`, `a]x\`)
	f.Fuzz(func(t *testing.T, pattern, s string) {
		Match(pattern, s)
		if !strings.ContainsAny(s, `*?[\`) && !Match(s, s) {
			t.Errorf("a pattern without metacharacters must match itself: %q", s)
		}
		if !Match("*", s) {
			t.Errorf("* must match %q", s)
		}
	})
}

func FuzzParseAliases(f *testing.F) {
	f.Add("alias fs-btrfs btrfs\n# c\nalias pci:v*d* ahci\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseAliases(strings.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := FormatAliases(&buf, got); err != nil {
			t.Fatal(err)
		}
		again, err := ParseAliases(&buf)
		if err != nil || len(again) != len(got) {
			t.Fatalf("round trip of %q: %v, %d vs %d entries", in, err, len(again), len(got))
		}
	})
}

func FuzzParsePlan(f *testing.F) {
	f.Add("forced xor kernel/crypto/xor.ko\nforced ext4 builtin\nforced btrfs kernel/fs/btrfs/btrfs.ko xor soft:ext4\noptional vfat kernel/fs/fat/vfat.ko btrfs\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParsePlan(strings.NewReader(in))
		if err != nil {
			return
		}
		pos := map[string]int{}
		for i, e := range got {
			pos[e.Name] = i
		}
		for i, e := range got {
			for _, d := range slices.Concat(e.Deps, e.Soft) {
				j, ok := pos[d]
				if !ok || j >= i {
					t.Fatalf("%s at %d depends on %s at %d (ok=%v)", e.Name, i, d, j, ok)
				}
				if e.Forced && !got[j].Forced {
					t.Fatalf("forced %s depends on optional %s", e.Name, d)
				}
			}
		}
	})
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // "N:line"
		err      string
	}{
		{"blank and comments skipped, text trimmed", "\n# c\n  a b  \n\t#x\nc\n", []string{"3:a b", "5:c"}, ""},
		{"no final newline", "a", []string{"1:a"}, ""},
		{"fn stops the read", "a\nstop\nb\n", []string{"1:a"}, "stop at 2"},
		{"line over 1 MiB", strings.Repeat("x", 1<<20+1), nil, "read f: bufio.Scanner: token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := Lines(strings.NewReader(tc.in), "f", func(n int, line string) error {
				if line == "stop" {
					return fmt.Errorf("stop at %d", n)
				}
				got = append(got, fmt.Sprintf("%d:%s", n, line))
				return nil
			})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("lines %q, want %q", got, tc.want)
			}
		})
	}
}
