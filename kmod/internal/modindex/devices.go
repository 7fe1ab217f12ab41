package modindex

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// attributeDirs are attribute groups that sysfs puts in device directories, never devices: not
// reading them saves about half the directories of /sys/devices ("power" alone is in every
// device), which counts at boot, where the scan competes with the module loads for the CPU.
var attributeDirs = map[string]bool{
	"power": true, "msi_irqs": true, "holders": true, "slaves": true, "queue": true, "mq": true,
	"statistics": true, "queues": true,
}

// DeviceModaliases returns the distinct contents of every modalias file under dir. Sysfs links
// (subsystem, driver, ...) are not followed, so each device is seen once.
func DeviceModaliases(dir string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // a device that went away while walking
		}
		if d.IsDir() && attributeDirs[d.Name()] {
			return filepath.SkipDir
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
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	return out, nil
}
