package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"260M": 260 << 20, "8G": 8 << 30, "8GiB": 8 << 30, "512k": 512 << 10, "1048576": 1 << 20, "2T": 2 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1M", "1.5G", "0", "99999999999999T"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	f.Add("260M")
	f.Add("8GiB")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSize(s); err == nil && n <= 0 {
			t.Errorf("parseSize(%q) = %d, want a positive size or an error", s, n)
		}
	})
}
