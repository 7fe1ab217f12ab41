package blockdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Links makes the udev-style links devDir/disk/by-uuid, by-label, by-partuuid and by-partlabel
// for devs (as Scan returns them), each pointing at ../../NAME, so that /dev/disk/by-*/... paths
// in the booted system's fstab and tools work before its udev runs. Names are escaped as udev
// escapes them ("my disk" is by-label/my\x20disk). When devices share a value (the members of a
// multi-device btrfs), the first in devs gets the link, as Find picks it. A link from an earlier
// call is replaced. Links that cannot be made are errors, joined; the others are still made.
func Links(devDir string, devs []Device) error {
	made := map[string]bool{}
	var errs []error
	for _, d := range devs {
		for _, l := range []struct{ dir, value string }{
			{"by-uuid", d.UUID}, {"by-label", d.Label}, {"by-partuuid", d.PartUUID}, {"by-partlabel", d.PartLabel},
		} {
			name := encodeUdev(l.value)
			if name == "" || name == "." || name == ".." {
				continue
			}
			p := filepath.Join(devDir, "disk", l.dir, name)
			if made[p] {
				continue
			}
			made[p] = true
			if err := replaceSymlink(filepath.Join("..", "..", d.Name), p); err != nil {
				errs = append(errs, fmt.Errorf("link %s to %s: %w", p, d.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// replaceSymlink points p at target, replacing whatever link is there in one rename.
func replaceSymlink(target, p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".dockerinit-new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// encodeUdev escapes a label or UUID for a link name as udev does (blkid_encode_string): ASCII
// letters, digits, "#+-.:=@_" and valid UTF-8 beyond ASCII stay; every other byte becomes \xNN.
// unescapeUdev undoes it.
func encodeUdev(s string) string {
	var out []byte
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			if r, n := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || n > 1 {
				out = append(out, s[i:i+n]...)
				i += n
				continue
			}
		}
		if isUdevSafe(c) {
			out = append(out, c)
		} else {
			out = fmt.Appendf(out, `\x%02x`, c)
		}
		i++
	}
	return string(out)
}

func isUdevSafe(c byte) bool {
	switch {
	case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return true
	case c == '#', c == '+', c == '-', c == '.', c == ':', c == '=', c == '@', c == '_':
		return true
	}
	return false
}
