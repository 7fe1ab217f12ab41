package boot

// Laying the per-machine top layer over the new root.

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/toplayer"
)

func (s *Sequence) applyTopLayer() error {
	tl := s.p.TopLayer
	if tl.Path == "" {
		s.log.Debugf("no toplayer_path: no top layer")
		return nil
	}
	base := topLevelDir
	sameDevice := tl.Device == "" || tl.Device == s.p.Root.Device
	if !sameDevice {
		dev, err := s.findDevice(tl.Spec)
		if err != nil {
			return s.topLayerMissing(fmt.Errorf("toplayer=%s: %w", tl.Device, err))
		}
		if dev.Path == s.dev.Path {
			sameDevice = true
		} else {
			fstype := tl.FSType
			if fstype == "" {
				fstype = dev.FSType
			}
			s.loadFSModule(fstype, tl.Flags)
			if err := s.mount(dev.Path, topLayerDir, fstype, unix.MS_RDONLY, tl.Flags); err != nil {
				return s.topLayerMissing(err)
			}
			defer s.unmount(topLayerDir)
			base = topLayerDir
		}
	}
	src := filepath.Join(base, path.Clean("/"+tl.Path))
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		dev := tl.Device
		if dev == "" {
			dev = s.p.Root.Device
		}
		return s.topLayerMissing(fmt.Errorf("toplayer_path=%s: no such directory on %s, whose top level holds: %s",
			tl.Path, dev, listDir(base)))
	}
	st, err := toplayer.Apply(src, s.newRoot(), append(s.storeDirs(), filepath.Join(topLevelDir, s.p.RWLayer))...)
	if err != nil {
		return fmt.Errorf("apply top layer %s: %w", tl.Path, err)
	}
	n := st.Files + st.Dirs + st.Symlinks + st.Hardlinks + st.Specials + st.Whiteouts
	s.report.TopLayer, s.report.TopFiles = tl.Path, n
	shown := tl.Path
	if shown == "." { // toplayer_path=/, as bootparam cleans it
		shown = "/"
	}
	s.log.Infof("top layer %s applied: %d entries", shown, n)
	if len(st.Skipped) > 0 {
		s.log.Infof("top layer %s: left out %s (the rw layer and the image store are never copied into the root)", shown, strings.Join(st.Skipped, ", "))
	}
	for _, l := range st.ReplacedLinks {
		name, target, _ := strings.Cut(l, " -> ")
		s.log.Warnf("top layer %s: its directory /%s replaced the image's symlink /%s -> %s, and with it what the image has there; put those files under the link's target (%s) in the top layer instead",
			shown, name, name, target, target)
	}
	return nil
}

// topLayerMissing lets the boot go on without the top layer unless the configuration requires it.
func (s *Sequence) topLayerMissing(err error) error {
	if s.p.TopLayer.Required {
		return fmt.Errorf("%w\nthe top layer is required (required = true under [toplayer] in dockerinit.toml): make that folder, correct toplayer= and toplayer_path=, or rebuild the initramfs with --toplayer-required=false", err)
	}
	s.log.Warnf("%v; booting without the top layer (set toplayer required = true to stop instead)", err)
	return nil
}
