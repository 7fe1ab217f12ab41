package bootloader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/internal/atomicfile"
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
		file, err := BLSFile(e)
		if err != nil {
			return "", err
		}
		return filepath.Join(t.ESP, "loader", "entries", file), nil
	}
	return "", fmt.Errorf("unknown boot manager %q: want one of %s", t.Kind, kindList())
}

// Installed is an entry Install wrote: the file it is in, and whether that changed the file.
type Installed struct {
	Entry   Entry
	Path    string
	Changed bool
}

// Install writes entries into the boot manager's configuration. Everything else in each file
// stays as it was: a rEFInd or GRUB entry is one marked block (replaced in place on the next
// install of the same image, else appended), a refind_linux.conf entry is the line with its
// title, and a systemd-boot entry is a file of its own. Each file is replaced atomically, once for
// all the entries it holds, so that a crash leaves all of them old or all new; a file is not
// written at all when nothing in it changes. Either way the temporary files a crashed install
// left beside it are removed.
func Install(t Target, entries ...Entry) ([]Installed, error) {
	var (
		paths  []string // in the order of the entries
		byPath = map[string][]Entry{}
	)
	for _, e := range entries {
		p, err := t.Path(e)
		if err != nil {
			return nil, err
		}
		if byPath[p] == nil {
			paths = append(paths, p)
		}
		byPath[p] = append(byPath[p], e)
	}
	var done []Installed
	for _, p := range paths {
		if t.Kind == SystemdBoot { // a file for each entry: several here are one image given twice
			for _, e := range byPath[p] {
				in, err := installBLS(p, e)
				if err != nil {
					return done, err
				}
				done = append(done, in)
			}
			continue
		}
		in, err := installFile(t, p, byPath[p])
		if err != nil {
			return done, err
		}
		done = append(done, in...)
	}
	return done, nil
}

// installFile sets entries in the file path, in one replacement.
func installFile(t Target, path string, entries []Entry) ([]Installed, error) {
	dir := filepath.Dir(path)
	if t.Kind != Refind {
		if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	noRefind := fmt.Errorf("%s does not exist: install rEFInd first, or name its refind.conf", path)
	unlock, err := atomicfile.LockDir(dir)
	if t.Kind == Refind && errors.Is(err, fs.ErrNotExist) {
		return nil, noRefind
	}
	if err != nil {
		return nil, err
	}
	// Held from the read to the write: a concurrent install's entries are read, never lost.
	defer unlock()
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return nil, err
	}
	if t.Kind == Refind && old == nil {
		return nil, noRefind
	}
	conf := string(old)
	var done []Installed
	for _, e := range entries {
		text, err := Render(t.Kind, e)
		if err != nil {
			return nil, err
		}
		updated := text // systemd-boot: the whole file
		switch t.Kind {
		case Refind, GRUB:
			updated, err = SetBlock(conf, e.ID, text)
		case RefindLinux:
			updated, err = setRefindLinuxLine(conf, e.Title, text)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		done = append(done, Installed{Entry: e, Path: path, Changed: updated != conf})
		conf = updated
	}
	if old != nil && conf == string(old) {
		atomicfile.RemoveStale(path)
		return done, nil
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm() // the user's file keeps its mode
	}
	if err := atomicfile.WriteSet(dir, atomicfile.File{Name: filepath.Base(path), Data: []byte(conf), Mode: mode}); err != nil {
		return nil, err
	}
	return done, nil
}

// installBLS writes the systemd-boot entry e to path, its file in loader/entries/, and makes it
// the only file of e.ID there, whatever boot counter the names of the others carry: an earlier
// install with or without counting, renamed since by systemd-boot (ID+2-1.conf) or
// systemd-bless-boot (ID.conf). So that a crash never leaves the menu without the entry nor
// with two of it, the new text replaces one of the old files in place, atomically, which is
// then renamed to its new name; a further old file, left by a crash, is removed last.
func installBLS(path string, e Entry) (Installed, error) {
	dir, file := filepath.Dir(path), filepath.Base(path)
	text, err := BLSEntry(e)
	if err != nil {
		return Installed{}, err
	}
	old, err := blsFilesOf(dir, e.ID)
	if err != nil {
		return Installed{}, err
	}
	in := Installed{Entry: e, Path: path}
	keep := file // the name to write the text to
	if len(old) > 0 && !slices.Contains(old, file) {
		keep = old[0]
	}
	var others []string
	for _, o := range old {
		if o != keep {
			others = append(others, o)
		}
	}
	if cur, err := os.ReadFile(filepath.Join(dir, keep)); err != nil || string(cur) != text || keep != file || len(others) > 0 {
		in.Changed = true
	}
	if !in.Changed {
		atomicfile.RemoveStale(filepath.Join(dir, keep))
		return in, nil
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return Installed{}, err
	}
	// FAT has no modes: an ESP's files are 0644 (0755) whatever is asked.
	if err := atomicfile.WriteSet(dir, atomicfile.File{Name: keep, Data: []byte(text), Mode: 0o644}); err != nil {
		return Installed{}, err
	}
	if keep != file {
		if err := atomicfile.Rename(filepath.Join(dir, keep), path); err != nil {
			return Installed{}, fmt.Errorf("the entry %s is written as %s but not renamed to %s (run the install again): %w", e.ID, keep, file, err)
		}
	}
	if len(others) > 0 {
		if err := atomicfile.Remove(dir, others...); err != nil {
			return Installed{}, fmt.Errorf("the entry %s is written as %s, but an older copy is left (remove %s by hand): %w", e.ID, file, strings.Join(others, ", "), err)
		}
	}
	return in, nil
}

// blsFilesOf lists the entry files in dir whose ID is id, whatever their boot counters, sorted.
func blsFilesOf(dir, id string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the systemd-boot entries: %w", err)
	}
	var files []string
	for _, de := range des {
		// Case folded, as systemd-boot and FAT compare names.
		if n, ok := ParseBLSName(de.Name()); ok && de.Type().IsRegular() && strings.EqualFold(n.ID, id) {
			files = append(files, de.Name())
		}
	}
	return files, nil // ReadDir sorts
}

// setRefindLinuxLine replaces the line of refind_linux.conf titled title (or the same image's
// title with or without boot counting), or appends line.
func setRefindLinuxLine(conf, title, line string) (string, error) {
	lines := strings.SplitAfter(conf, "\n")
	for i, l := range lines {
		toks := refindTokens(l)
		if len(toks) == 2 && sameImageTitle(toks[0], title) {
			lines[i] = line
			return strings.Join(lines, ""), nil
		}
	}
	if conf != "" && !strings.HasSuffix(conf, "\n") {
		conf += "\n"
	}
	return conf + line, nil
}
