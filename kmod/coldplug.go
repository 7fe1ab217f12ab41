package kmod

import (
	"fmt"
	"slices"

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
		devs, err := modindex.DeviceModaliases(sysDevices)
		l.plug(devs)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.scanErrs = append(l.scanErrs, fmt.Errorf("coldplug: %w", err))
		}
		l.busy--
		l.idle.Broadcast()
	}()
}

// plug starts loading the modules for the given device modaliases that were not seen before.
func (l *Loader) plug(modaliases []string) {
	l.mu.Lock()
	var fresh []string
	for _, raw := range modaliases {
		if m := modindex.Name(raw); !l.seen[m] {
			l.seen[m] = true
			fresh = append(fresh, m)
			if what := storageKind(m); what != "" && !l.hasDriverLocked(m) {
				l.noDriver = append(l.noDriver, raw+" ("+what+")")
			}
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
