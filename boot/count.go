package boot

// Boot counting: a boot entry may list images to try in order (docker_image=new,good) with a
// number of tries (dockerinit.tries=N). The record (package bootstate) lives at the top of the
// root file system, outside the stores; the boot picks the image from it when it resolves the
// image, and takes one try just before it switches root. The booted system marks the boot good
// through what this step leaves in /run: the record's folder bind-mounted at runDir/state, this
// binary at runDir/dockerinit, and a runtime systemd unit ordered after boot-complete.target, so
// that an unmodified image gets it and health checks hook in the systemd way.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bootstate"
	"github.com/dockerinit/dockerinit/imagestore"
)

const (
	runDir       = "/run/dockerinit"
	runStateDir  = runDir + "/state"
	runBinary    = runDir + "/dockerinit"
	markGoodUnit = "dockerinit-mark-good.service"
	// unitDir holds runtime units: systemd reads them at start, and /run moves into the new root.
	unitDir = "/run/systemd/system"
)

// counting reports whether this boot picks from a list or counts tries.
func (s *Sequence) counting() bool { return len(s.p.Images) > 1 || s.p.Tries > 0 }

// countPath is the record's path in the initramfs.
func (s *Sequence) countPath() string {
	return filepath.Join(topLevelDir, bootstate.Dir, bootstate.FileName(s.p.RWLayer))
}

// pickImage chooses the image of the list to boot and resolves it in store.
func (s *Sequence) pickImage(store imagestore.Store) (imagestore.Image, error) {
	if !s.counting() {
		return store.Resolve(s.p.Image)
	}
	if _, err := rwLayerPath(topLevelDir, bootstate.Dir, s.storeDirsOf(store)...); err != nil {
		return imagestore.Image{}, fmt.Errorf("the boot counting record's folder /%s: %w", bootstate.Dir, err)
	}
	rec := bootstate.Record{}
	if s.p.Tries > 0 {
		var err error
		rec, err = bootstate.Load(s.countPath())
		if de := (*bootstate.DamagedError)(nil); errors.As(err, &de) {
			s.log.Warnf("%v", err)
		} else if err != nil {
			return imagestore.Image{}, err
		}
	}
	found := map[string]imagestore.Image{}
	c, err := rec.Pick(s.p.Images, s.p.Tries, func(ref string) (string, error) {
		img, err := store.Resolve(ref)
		if err != nil {
			s.log.Debugf("image %s of the list: %v", ref, err)
		}
		found[ref] = img
		return img.ID, err
	})
	if err != nil {
		return imagestore.Image{}, err
	}
	for _, why := range c.Skipped {
		s.log.Warnf("%s: booting %s instead", why, c.Ref)
	}
	s.log.Infof("booting %s (%s) from the list %s", c.Ref, c.Why, strings.Join(s.p.Images, ","))
	s.p.Image, s.choice, s.count = c.Ref, c, rec
	return found[c.Ref], nil
}

// countTry takes one try of the image about to boot, durably, and leaves the booted system what
// it needs to read the record and to mark the boot good.
func (s *Sequence) countTry() error {
	if s.p.Tries == 0 {
		return nil
	}
	// Saved even without a try: picking settled the last boot's try and forgot unlisted images.
	s.count.Try(s.choice)
	if err := bootstate.Save(s.countPath(), s.count); err != nil {
		// Booting on uncounted could loop on a broken image for ever.
		return fmt.Errorf("record the boot try of %s: %w; the boot stops rather than boot uncounted", s.p.Image, err)
	}
	if err := s.mount(filepath.Dir(s.countPath()), runStateDir, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if err := copyFile("/proc/self/exe", runBinary, 0o755); err != nil {
		return fmt.Errorf("leave dockerinit in %s for marking the boot good: %w", runDir, err)
	}
	if !s.choice.Counted {
		return nil
	}
	return writeMarkGoodUnit()
}

// writeMarkGoodUnit adds the runtime unit that marks the boot good once boot-complete.target is
// reached (systemd's boot counting target: health checks order themselves before it).
func writeMarkGoodUnit() error {
	unit := `[Unit]
Description=Mark this boot good for dockerinit's boot counting
Documentation=https://github.com/dockerinit/dockerinit#updating-and-rolling-back
Requires=boot-complete.target
After=boot-complete.target

[Service]
Type=oneshot
RemainAfterExit=yes
StandardOutput=journal+console
ExecStart=` + runBinary + ` mark-good
`
	wants := filepath.Join(unitDir, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(unitDir, markGoodUnit), []byte(unit), 0o644); err != nil {
		return err
	}
	link := filepath.Join(wants, markGoodUnit)
	_ = os.Remove(link) // a retried step
	return os.Symlink("../"+markGoodUnit, link)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
