// Package status owns `dockerinit status`: what booted and how long each step took, read back
// from the report the init leaves in /run/dockerinit/boot.json.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// ErrNotBooted is a system without a boot report: dockerinit did not boot it.
var ErrNotBooted = errors.New("this system was not booted by dockerinit (no " + BootJSON + ")")

// Run writes the boot report found under root ("/" in the booted system) to w: a summary, or
// with asJSON the file as it is, for scripts.
func Run(w io.Writer, root string, asJSON bool) error {
	data, err := os.ReadFile(filepath.Join(root, BootJSON))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotBooted
	}
	if err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(data)
		return err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s is not a boot report: %w (--json prints it as it is)", BootJSON, err)
	}
	return Summary(w, r)
}

// Summary writes r for a person: what booted from where, then each step's duration.
func Summary(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{name}, args...)...)
	}
	fmt.Fprintf(tw, "Booted by dockerinit into %s\n", orUnknown(r.Image))
	field("image ID", "%s", orUnknown(r.ImageID))
	if others := otherNames(r); len(others) > 0 {
		field("also named", "%s", strings.Join(others, ", "))
	}
	created := "unknown"
	if !r.Created.IsZero() {
		created = r.Created.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	field("created", "%s", created)
	field("image layer", "%s", orUnknown(r.Layer))
	switch r.RootKind {
	case "overlayfs":
		field("rw layer", "%s (a fresh overlay upper folder over the image's %d layers)", orUnknown(r.RWLayer), r.Layers)
	default:
		field("rw layer", "%s (a fresh snapshot of the image layer)", orUnknown(r.RWLayer))
	}
	root := orUnknown(r.RootDevice)
	if r.RootSpec != "" && r.RootSpec != r.RootDevice {
		root += " (root=" + r.RootSpec + ")"
	}
	field("root device", "%s", root)
	field("image store", "%s (%s)", orUnknown(r.DockerPath), orUnknown(r.Store))
	if r.TopLayer == "" {
		field("top layer", "none")
	} else {
		field("top layer", "%s: %d entries applied", r.TopLayer, r.TopFiles)
	}
	field("init", "%s", orUnknown(r.Init))
	field("kernel", "%s", orUnknown(r.Kernel))
	field("modules", "%d loaded by dockerinit", r.ModulesLoad)
	fmt.Fprintf(tw, "Boot steps (dockerinit started %.3f s after the kernel, took %.1f ms):\n", r.StartedS, r.TotalMS)
	for _, s := range r.Steps {
		fmt.Fprintf(tw, "  %s\t%9.1f ms\n", s.Name, s.MS)
	}
	return tw.Flush()
}

// otherNames are the image's names besides the one it was booted by.
func otherNames(r Report) []string {
	var out []string
	for _, n := range r.ImageNames {
		if n != r.Image {
			out = append(out, n)
		}
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
