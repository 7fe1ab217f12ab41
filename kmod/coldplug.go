package kmod

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// Coldplug loads the bundled modules whose modules.alias patterns match the modalias of a device
// under sysDevices (/sys/devices at boot), with their dependencies, skipping modules that are
// already loaded and those named by modprobe.blacklist= on the command line. Call it again when
// devices appear later: what is loaded stays loaded. root is the initramfs root, "/" at boot.
func Coldplug(sysDevices, root string) (Report, error) {
	kver, err := runningKernel()
	if err != nil {
		return Report{}, err
	}
	return coldplug(sysDevices, root, kver, finitModule)
}

func coldplug(sysDevices, root, kver string, load loadFunc) (Report, error) {
	start := time.Now()
	plan, err := readPlan(root, kver)
	if err != nil || plan == nil {
		return Report{}, err
	}
	aliasPath := filepath.Join(root, "lib/modules", kver, "modules.alias")
	f, err := os.Open(aliasPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Report{}, nil // no bundled module has an alias
	}
	if err != nil {
		return Report{}, fmt.Errorf("coldplug: %w", err)
	}
	aliases, err := modindex.ParseAliases(f)
	f.Close()
	if err != nil {
		return Report{}, fmt.Errorf("coldplug: %s: %w", aliasPath, err)
	}
	devices, err := modaliases(sysDevices)
	if err != nil {
		return Report{}, err
	}
	inPlan := map[string]bool{}
	for _, e := range plan {
		inPlan[e.Name] = true
	}
	skip := blacklist(readCmdline(filepath.Join(root, "proc/cmdline")))
	want := map[string]bool{}
	for _, a := range aliases {
		if want[a.Module] || skip[a.Module] || !inPlan[a.Module] {
			continue
		}
		for _, d := range devices {
			if modindex.Match(a.Pattern, d) {
				want[a.Module] = true
				break
			}
		}
	}
	if len(want) == 0 {
		return Report{}, nil
	}
	rep := run(root, kver, plan, want, load)
	rep.Duration = time.Since(start)
	return rep, nil
}

// modaliases returns the distinct, normalised contents of every modalias file under dir. Sysfs
// links (subsystem, driver, ...) are not followed, so each device is seen once.
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
		if s := modindex.Name(strings.TrimSpace(string(b))); s != "" && !seen[s] {
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
