package bootloader

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dockerinit/dockerinit/blockdev"
)

// Location is where a directory lives, as a boot manager finds it: the file system holding it
// and the directory's path from that file system's root. For btrfs the root is the top level
// (subvolid 5), which is where GRUB and rEFInd's driver start paths from.
type Location struct {
	Volume Volume
	Path   string // absolute slash path from the file system's root
	Mount  string // where that file system is mounted here
	Source string // the mounted device
}

// Locate finds where dir lives from /proc/self/mountinfo, and reads the label and UUID of the
// file system from its device.
func Locate(dir string) (Location, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Location{}, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Location{}, fmt.Errorf("find the file system holding %s: %w", dir, err)
	}
	loc, err := LocateIn(string(info), abs)
	if err != nil {
		return Location{}, err
	}
	dev, err := os.Open(loc.Source)
	if err != nil {
		return loc, fmt.Errorf("%s is on %s (%s), whose label and UUID cannot be read: %w", dir, loc.Source, loc.Volume.FSType, err)
	}
	defer dev.Close()
	if _, loc.Volume.Label, loc.Volume.UUID, err = blockdev.Probe(dev); err != nil {
		return loc, fmt.Errorf("%s is on %s: %w", dir, loc.Source, err)
	}
	return loc, nil
}

// LocateIn finds the mount holding the absolute, symlink-free path abs in a mountinfo table
// (proc(5)): the longest mount point that is a prefix of abs, the last mounted of equals.
func LocateIn(mountinfo, abs string) (Location, error) {
	var (
		best  Location
		found bool
	)
	for _, line := range strings.Split(mountinfo, "\n") {
		// id parent major:minor root mountpoint options [optional fields...] - fstype source superoptions
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		mnt := unescapeMountinfo(f[4])
		rel, ok := under(abs, mnt)
		if !ok || (found && len(mnt) < len(best.Mount)) {
			continue
		}
		root := unescapeMountinfo(f[3])
		found = true
		best = Location{
			Volume: Volume{FSType: f[sep+1]},
			Path:   path.Join("/", root, rel),
			Mount:  mnt,
			Source: unescapeMountinfo(f[sep+2]),
		}
	}
	if !found {
		return Location{}, fmt.Errorf("no mount in the mount table holds %s", abs)
	}
	return best, nil
}

// under returns abs relative to the mount point mnt, if it is in it.
func under(abs, mnt string) (string, bool) {
	if !strings.HasPrefix(mnt, "/") {
		return "", false
	}
	if mnt == "/" {
		return abs, strings.HasPrefix(abs, "/")
	}
	if abs == mnt {
		return "", true
	}
	rest, ok := strings.CutPrefix(abs, mnt+"/")
	return rest, ok
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
