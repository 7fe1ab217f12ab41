package kmod

import (
	"fmt"
	"slices"

	"github.com/dockerinit/dockerinit/internal/safego"
	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// Coldplug starts loading the bundled modules whose modules.alias patterns match the modalias of
// a device under sysDevices (/sys/devices at boot), with their dependencies, and returns at once;
// Wait waits for it. Devices that appear later are Watch's. A sysfs tree that cannot be read, or a
// scan that panicked, is in the report's ScanErrors.
func (l *Loader) Coldplug(sysDevices string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sysDevices = sysDevices
	if len(l.devices) == 0 {
		return
	}
	l.busy++
	go func() {
		err := l.coldplug(sysDevices)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.scanErrs = append(l.scanErrs, fmt.Errorf("coldplug: %w", err))
		}
		l.busy--
		l.idle.Broadcast()
	}()
}

// coldplug is Coldplug's scan; a panic in it is returned, so that PID 1 lives and Wait returns.
func (l *Loader) coldplug(sysDevices string) (err error) {
	defer safego.Recover("loading modules for the devices in "+sysDevices, &err)
	devs, err := modindex.DeviceModaliases(sysDevices)
	l.plug(devs)
	return err
}

// plug starts loading the modules for the given device modaliases that were not seen before.
func (l *Loader) plug(modaliases []string) {
	var want []int
	for _, name := range matchAliases(l.devices, l.markSeen(modaliases)) {
		want = append(want, l.index[name])
	}
	l.start(want)
}

// markSeen returns the normalised modaliases not seen before, and notes the storage devices among
// them that no plan module drives. Its Unlock is deferred, as start's is.
func (l *Loader) markSeen(modaliases []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
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
	return fresh
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
