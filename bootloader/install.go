package bootloader

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Target is the configuration of a boot manager that Install writes entries into.
type Target struct {
	Kind Kind
	// ESP is the mounted EFI system partition: rEFInd's refind.conf is looked for under it, and
	// systemd-boot's entries go to its loader/entries/.
	ESP string
	// Config is the file to write instead: refind.conf for rEFInd (default: found under ESP),
	// custom.cfg for GRUB (required), refind_linux.conf beside the kernel for refind-linux
	// (required).
	Config string
}

// refindConfs are where rEFInd keeps refind.conf on an ESP: installed by refind-install, or as
// the fallback boot loader.
var refindConfs = []string{"EFI/refind/refind.conf", "EFI/BOOT/refind.conf", "EFI/boot/refind.conf"}

// Path is the file Install writes e to.
func (t Target) Path(e Entry) (string, error) {
	switch t.Kind {
	case Refind:
		if t.Config != "" {
			return t.Config, nil
		}
		if t.ESP == "" {
			return "", errors.New("rEFInd: pass the ESP (--esp DIR) or refind.conf itself (--bootloader-config FILE)")
		}
		for _, c := range refindConfs {
			p := filepath.Join(t.ESP, filepath.FromSlash(c))
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("no refind.conf under the ESP %s (looked for %s): install rEFInd first (refind-install), or pass --bootloader-config FILE",
			t.ESP, strings.Join(refindConfs, ", "))
	case GRUB, RefindLinux:
		if t.Config == "" {
			return "", fmt.Errorf("%s: the file to write is required (--bootloader-config FILE)", t.Kind)
		}
		return t.Config, nil
	case SystemdBoot:
		if t.ESP == "" {
			return "", errors.New("systemd-boot: pass the ESP (--esp DIR)")
		}
		if fi, err := os.Stat(filepath.Join(t.ESP, "loader")); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("no loader/ directory on the ESP %s: is systemd-boot installed there (bootctl install)?", t.ESP)
		}
		return filepath.Join(t.ESP, "loader", "entries", e.ID+".conf"), nil
	}
	return "", fmt.Errorf("unknown boot manager %q: want one of %s", t.Kind, kindList())
}

// Install writes e into the boot manager's configuration and returns the file and whether it
// changed. Everything else in that file stays as it was: a rEFInd or GRUB entry is one marked
// block (replaced in place on the next install of the same image, else appended), a
// refind_linux.conf entry is the line with its title, and a systemd-boot entry is a file of its
// own. The file is replaced atomically, and not written at all when nothing changes.
func Install(t Target, e Entry) (path string, changed bool, err error) {
	if path, err = t.Path(e); err != nil {
		return "", false, err
	}
	text, err := Render(t.Kind, e)
	if err != nil {
		return path, false, err
	}
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old, err = nil, nil
	case err != nil:
		return path, false, err
	}
	if t.Kind == Refind && old == nil {
		return path, false, fmt.Errorf("%s does not exist: install rEFInd first, or name its refind.conf", path)
	}
	var updated string
	switch t.Kind {
	case Refind, GRUB:
		updated, err = SetBlock(string(old), e.ID, text)
	case RefindLinux:
		updated, err = setRefindLinuxLine(string(old), e.Title, text)
	case SystemdBoot:
		updated = text
	}
	if err != nil {
		return path, false, fmt.Errorf("%s: %w", path, err)
	}
	if old != nil && bytes.Equal(old, []byte(updated)) {
		return path, false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return path, false, err
	}
	return path, true, WriteFileAtomic(path, []byte(updated))
}

// setRefindLinuxLine replaces the line of refind_linux.conf titled title, or appends line.
func setRefindLinuxLine(conf, title, line string) (string, error) {
	lines := strings.SplitAfter(conf, "\n")
	for i, l := range lines {
		toks := refindTokens(l)
		if len(toks) == 2 && toks[0] == title {
			lines[i] = line
			return strings.Join(lines, ""), nil
		}
	}
	if conf != "" && !strings.HasSuffix(conf, "\n") {
		conf += "\n"
	}
	return conf + line, nil
}

// WriteFileAtomic replaces path with data so that a reader sees the old file or the new one,
// never a part: a temporary file beside it, synced, then renamed over it. An existing file's
// mode is kept.
func WriteFileAtomic(path string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the rename is durable once the directory is; FAT may not support it
		d.Close()
	}
	return nil
}
