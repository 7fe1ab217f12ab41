package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// plain is an uncompressed newc archive of entries.
func plain(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, entries); err != nil {
		t.Fatal(err)
	}
	return unzst(t, buf.Bytes())
}

func unzst(t testing.TB, b []byte) []byte {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	raw, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// compressors make each format the kernel reads, the way its usual tool does.
var compressors = map[string]func(testing.TB, []byte) []byte{
	"gzip": func(t testing.TB, raw []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		mustWrite(t, w, raw)
		return buf.Bytes()
	},
	"zstd": func(t testing.TB, raw []byte) []byte {
		var buf bytes.Buffer
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, raw)
		return buf.Bytes()
	},
	"xz": func(t testing.TB, raw []byte) []byte {
		var buf bytes.Buffer
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, raw)
		return buf.Bytes()
	},
	"lz4": func(t testing.TB, raw []byte) []byte {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(lz4.LegacyOption(true)); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, raw)
		return buf.Bytes()
	},
}

func mustWrite(t testing.TB, w io.WriteCloser, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// pad is what sits between two segments: zeros up to the next multiple of align.
func pad(n, align int) []byte { return make([]byte, (align-n%align)%align) }

var (
	early = []Entry{File("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("ucode"))}
	main1 = []Entry{File("init", 0o755, []byte("#!/bin/sh\n")), Symlink("bin", "usr/bin")}
	main2 = []Entry{File("etc/extra.conf", 0o644, []byte("x=1\n"))}
)

func TestReadArchives(t *testing.T) {
	type want struct {
		offset      int
		compression string
		paths       string
	}
	e := plain(t, early...)
	m1, m2 := plain(t, main1...), plain(t, main2...)
	const (
		earlyPaths = "kernel kernel/x86 kernel/x86/microcode kernel/x86/microcode/GenuineIntel.bin"
		main1Paths = "bin init"
		main2Paths = "etc etc/extra.conf"
	)
	type readCase struct {
		name string
		data []byte
		want []want
	}
	tests := []readCase{
		{"plain", m1, []want{{0, "none", main1Paths}}},
		{"two plain, 4-byte padding", cat(e, pad(len(e), 4), m1), []want{{0, "none", earlyPaths}, {len(e), "none", main1Paths}}},
		{"two plain, 512-byte padding", cat(e, pad(len(e), 512), m1), []want{{0, "none", earlyPaths}, {len(e) + len(pad(len(e), 512)), "none", main1Paths}}},
		{"two archives in one zstd stream", compressors["zstd"](t, cat(m1, m2)), []want{{0, "zstd", main1Paths}, {0, "zstd", main2Paths}}},
	}
	for _, c := range []string{"gzip", "zstd", "xz", "lz4"} {
		z := compressors[c](t, m1)
		tests = append(tests, readCase{"debian: plain early, then " + c, cat(e, z), []want{{0, "none", earlyPaths}, {len(e), c, main1Paths}}})
		if c == "xz" {
			continue // xz runs to the end of the file
		}
		tests = append(tests, readCase{c + ", padding, then plain", cat(z, pad(len(z), 4), m2), []want{{0, c, main1Paths}, {len(z) + len(pad(len(z), 4)), "none", main2Paths}}})
		z2 := compressors[c](t, m2)
		second := len(z)
		if c == "zstd" || c == "lz4" {
			second = 0 // frames that follow each other are one run of compressed data
		}
		tests = append(tests, readCase{"two " + c + " streams", cat(z, z2), []want{{0, c, main1Paths}, {second, c, main2Paths}}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadArchives(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			var gotW []want
			for _, a := range got {
				var paths []string
				for _, e := range a.Entries {
					paths = append(paths, e.Path)
				}
				gotW = append(gotW, want{a.Offset, a.Compression, strings.Join(paths, " ")})
			}
			if len(gotW) != len(tt.want) {
				t.Fatalf("got %d archives %+v, want %+v", len(gotW), gotW, tt.want)
			}
			for i := range gotW {
				if gotW[i] != tt.want[i] {
					t.Errorf("archive %d: got %+v, want %+v", i+1, gotW[i], tt.want[i])
				}
			}
			entries, err := Read(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if f, err := Find(entries, "init"); err == nil && string(f.Data) != "#!/bin/sh\n" {
				t.Errorf("init reads back as %q", f.Data)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	m := plain(t, main1...)
	z := compressors["zstd"](t, m)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no archive: the file is empty or all zeros"},
		{"zeros", make([]byte, 1024), "no archive: the file is empty or all zeros"},
		{"text", []byte("hello world"), `at byte 0: "hello " is neither a newc cpio archive nor gzip, zstd, xz or lz4 data`},
		{"junk after archive", cat(m, []byte("junk")), `at byte ` + strconv.Itoa(len(m)) + `: "junk" is neither`},
		{"bzip2", []byte("BZh91AY&SY"), "compressed with bzip2, which mkbootimg cannot read"},
		{"lz4 frame format", []byte{0x04, 0x22, 0x4d, 0x18, 0, 0, 0, 0}, "use lz4 -l"},
		{"truncated plain", m[:len(m)-200], "damaged or truncated"},
		{"no trailer", m[:len(m)-124], "ends without a trailer"},
		{"truncated zstd", z[:len(z)-5], "zstd data at byte 0: zstd frame of"},
		{"junk inside zstd", compressors["zstd"](t, cat(m, []byte("junk"))), `zstd data at byte 0: at byte ` + strconv.Itoa(len(m)) + ` of the inflated data: "junk" is neither padding nor a newc archive`},
		{"truncated lz4", func() []byte { l := compressors["lz4"](t, m); return l[:len(l)-5] }(), "it is truncated"},
		{"truncated gzip", func() []byte { g := compressors["gzip"](t, m); return g[:len(g)-5] }(), "gzip data at byte 0: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzRead: any bytes give entries or an error, never a panic (mkbootimg reads users' archives).
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	if err := Write(&buf, sample()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	e, m := plain(f, early...), plain(f, main1...)
	for _, c := range []string{"gzip", "zstd", "xz", "lz4"} {
		f.Add(cat(e, pad(len(e), 512), compressors[c](f, m)))
	}
	f.Add([]byte("070701"))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Add([]byte{0x02, 0x21, 0x4c, 0x18, 0xff, 0xff, 0xff, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadArchives(data)
	})
}
