package bootimage

import (
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/bootloader"
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
	c := bootparam.Cmdline{Params: []bootparam.Param{
		value("root", root),
		value("rootflags", strings.Join(nonEmpty("subvol="+first(cfg.Root.RWLayer, defaultRWLayer), cfg.Root.Flags), ",")),
		{Key: "rw"},
		value("docker_path", first(cfg.Root.DockerPath, loc.path, "var/lib/docker")),
	}}
	if cfg.TopLayer.Path != "" {
		c.Params = append(c.Params, value("toplayer", first(cfg.TopLayer.Device, root)), value("toplayer_path", cfg.TopLayer.Path))
	}
	// Written by bootparam, a value holding white space (a label "my disk") is quoted as the
	// kernel reads it.
	return c.String()
}

func value(key, v string) bootparam.Param { return bootparam.Param{Key: key, Value: v, HasValue: true} }

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

// location is where an image store sits: its file system as root= would name it, its type, and
// its path from the file system's top (on btrfs, the top level: docker_path=).
type location struct{ device, fstype, path string }

func locate(dockerRoot string) location {
	if dockerRoot == "" {
		return location{}
	}
	loc, err := bootloader.Locate(dockerRoot)
	if !slices.Contains(bootparam.RootFSTypes, loc.Volume.FSType) {
		return location{}
	}
	l := location{fstype: loc.Volume.FSType, path: strings.TrimPrefix(loc.Path, "/")}
	if err == nil {
		l.device = rootSpec(loc.Volume)
	}
	return l
}

// rootSpec names v for root=: by label, unless the label needs quotes on the command line,
// which rEFInd cannot write, or cannot be written at all (a double quote); then by UUID.
func rootSpec(v bootloader.Volume) string {
	if strings.ContainsAny(v.Label, " \t\"") && v.UUID != "" {
		v.Label = ""
	}
	return v.Spec()
}
