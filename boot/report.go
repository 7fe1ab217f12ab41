package boot

// The boot report: what booted and how long each step took, for `dockerinit status`.

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/dockerinit/dockerinit/bootstate"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/status"
)

func (s *Sequence) writeReport() error {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	r := &s.report
	r.Image, r.ImageID, r.ImageNames, r.Created = s.p.Image, s.img.ID, s.img.Names, s.img.Created
	r.ChainID, r.Layer, r.RWLayer, r.DockerPath = s.img.ChainID, s.img.Layer, s.p.RWLayer, s.p.DockerPath
	r.Store, r.RootKind, r.Layers = s.store.Kind(), s.img.Root.Kind.String(), len(s.img.Root.Layers)
	if s.counting() {
		r.Images, r.Tries, r.Why, r.PassedOver = s.p.Images, s.p.Tries, s.choice.Why, s.choice.Skipped
		if s.p.Tries > 0 {
			r.CountFile = filepath.Join(runStateDir, bootstate.FileName(s.p.RWLayer))
		}
	}
	r.RootDevice, r.RootSpec, r.Init = s.dev.Path, s.p.Root.Device, s.p.Init
	r.Kernel = unix.ByteSliceToString(uts.Release[:])
	r.SecureBoot = s.secureBoot()
	r.TotalMS = ms(time.Since(s.start)) // the file is written by the last step, before Run's total
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(status.BootJSON), 0o755); err != nil {
		return err
	}
	return os.WriteFile(status.BootJSON, append(data, '\n'), 0o644)
}

// efivars is where efivarfs belongs; the initramfs mounts it only to read SecureBoot.
const efivars = "/sys/firmware/efi/efivars"

// secureBoot reads the firmware's SecureBoot variable: "on", "off", or "" when there is no UEFI
// or no efivarfs (a module: mkbootimg uki bundles it).
func (s *Sequence) secureBoot() string {
	p := filepath.Join(efivars, status.SecureBootVar)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) && unix.Mount("efivarfs", efivars, "efivarfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") == nil {
		data, err = os.ReadFile(p)
		_ = unix.Unmount(efivars, 0)
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
			s.log.Warnf("Secure Boot state: %v", err)
		}
		return ""
	}
	v, err := status.ParseSecureBoot(data)
	if err != nil {
		s.log.Warnf("Secure Boot state: %v", err)
	}
	return v
}
