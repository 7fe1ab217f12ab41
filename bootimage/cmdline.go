package bootimage

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/bootparam"
)

// Defaults of the original tutorial, used where neither the configuration nor the build host
// says better.
const (
	defaultRoot    = "LABEL=linux"
	defaultRWLayer = "docker_rwlayer"
)

// Cmdline is the kernel command line to boot with: the configuration's values, else what the
// Docker root's mount says (its btrfs label or UUID, its path from the btrfs top level), else the
// tutorial's defaults.
func Cmdline(cfg bootparam.Config, dockerRoot string) string {
	loc := locate(dockerRoot)
	root := first(cfg.Root.Device, loc.device, defaultRoot)
	args := []string{
		"root=" + root,
		"rootflags=" + strings.Join(nonEmpty("subvol="+first(cfg.Root.RWLayer, defaultRWLayer), cfg.Root.Flags), ","),
		"rw",
		"docker_path=" + first(cfg.Root.DockerPath, loc.path, "var/lib/docker"),
	}
	if cfg.TopLayer.Path != "" {
		args = append(args, "toplayer="+first(cfg.TopLayer.Device, root), "toplayer_path="+cfg.TopLayer.Path)
	}
	return strings.Join(args, " ")
}

// RefindEntry is a stanza for refind.conf; dir is where vmlinuz and initramfs.img sit, relative to
// the volume rEFInd loads them from.
func RefindEntry(title, volume, dir, cmdline string) string {
	return fmt.Sprintf("menuentry %q {\n  volume %s\n  loader %s/vmlinuz\n  initrd %s/initramfs.img\n  options %q\n}\n",
		title, volume, dir, dir, cmdline)
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func nonEmpty(vals ...string) []string {
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// location is where a Docker root sits: its btrfs as root= would name it, and its path from the
// btrfs top level (docker_path=).
type location struct{ device, path string }

func locate(dockerRoot string) location {
	if dockerRoot == "" {
		return location{}
	}
	abs, err := filepath.Abs(dockerRoot)
	if err != nil {
		return location{}
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return location{}
	}
	defer f.Close()
	var best struct{ mnt, root, fstype, source string }
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+2 >= len(fields) {
			continue
		}
		mnt := unescape(fields[4])
		if (abs == mnt || strings.HasPrefix(abs, strings.TrimSuffix(mnt, "/")+"/")) && len(mnt) >= len(best.mnt) {
			best.mnt, best.root, best.fstype, best.source = mnt, unescape(fields[3]), fields[sep+1], fields[sep+2]
		}
	}
	if best.fstype != "btrfs" {
		return location{}
	}
	rel, err := filepath.Rel(best.mnt, abs)
	if err != nil {
		return location{}
	}
	loc := location{path: strings.TrimPrefix(path.Join(best.root, filepath.ToSlash(rel)), "/")}
	if dev, err := os.Open(best.source); err == nil {
		defer dev.Close()
		if _, label, uuid, err := blockdev.Probe(dev); err == nil {
			switch {
			case label != "":
				loc.device = "LABEL=" + label
			case uuid != "":
				loc.device = "UUID=" + uuid
			}
		}
	}
	return loc
}

// unescape undoes mountinfo's octal escapes of spaces and the like.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
