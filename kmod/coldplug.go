package kmod

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// Coldplug starts loading the bundled modules whose modules.alias patterns match the modalias of
// a device under sysDevices (/sys/devices at boot), with their dependencies, and returns at once;
// Wait waits for it. Devices that appear later are Watch's. A sysfs tree that cannot be read is
// in the report's ScanErrors.
func (l *Loader) Coldplug(sysDevices string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sysDevices = sysDevices
	if len(l.devices) == 0 {
		return
	}
	l.busy++
	go func() {
		devs, err := modaliases(sysDevices)
		l.plug(devs)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.scanErrs = append(l.scanErrs, err)
		}
		l.busy--
		l.idle.Broadcast()
	}()
}

// plug starts loading the modules for the given device modaliases that were not seen before.
func (l *Loader) plug(modaliases []string) {
	l.mu.Lock()
	var fresh []string
	for _, m := range modaliases {
		if m = modindex.Name(m); !l.seen[m] {
			l.seen[m] = true
			fresh = append(fresh, m)
		}
	}
	l.mu.Unlock()
	want := matchAliases(l.devices, fresh)
	if len(want) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, name := range want {
		l.startLocked(l.index[name])
	}
}

// matchAliases returns the modules, sorted, with a pattern that matches any of the normalised
// modaliases. Trying every pattern is fast enough: a generic bundle has about a thousand, and a
// PC a few hundred devices.
func matchAliases(aliases []modindex.Alias, modaliases []string) []string {
	var out []string
	for _, m := range modaliases {
		for _, a := range aliases {
			if !slices.Contains(out, a.Module) && modindex.Match(a.Pattern, m) {
				out = append(out, a.Module)
			}
		}
	}
	slices.Sort(out)
	return out
}

// modaliases returns the distinct contents of every modalias file under dir. Sysfs links
// (subsystem, driver, ...) are not followed, so each device is seen once.
func modaliases(dir string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // a device that went away while walking
		}
		if d.Name() != "modalias" || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if s := strings.TrimSpace(string(b)); s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coldplug: walk %s: %w", dir, err)
	}
	return out, nil
}
