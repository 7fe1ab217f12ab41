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

	"github.com/dockerinit/dockerinit/bootstate"
)

// ErrNotBooted is a system without a boot report: dockerinit did not boot it.
var ErrNotBooted = errors.New("this system was not booted by dockerinit (no " + BootJSON + ")")

// Read returns the boot report found under root ("/" in the booted system).
func Read(root string) (Report, error) {
	var r Report
	data, err := os.ReadFile(filepath.Join(root, BootJSON))
	if errors.Is(err, fs.ErrNotExist) {
		return r, ErrNotBooted
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s is not a boot report: %w", BootJSON, err)
	}
	return r, nil
}

// Mark marks the boot described under root good or bad in its boot counting record, and says
// what it did.
func Mark(root string, good bool) (string, error) {
	r, err := Read(root)
	if err != nil {
		return "", err
	}
	if r.CountFile == "" {
		return fmt.Sprintf("this boot of %s is not counted (no dockerinit.tries, or the image is marked good already): nothing to mark", r.Image), nil
	}
	if err := bootstate.Mark(filepath.Join(root, r.CountFile), r.Image, good); err != nil {
		return "", err
	}
	if good {
		return fmt.Sprintf("marked the boot of %s good: it is no longer counted", r.Image), nil
	}
	return fmt.Sprintf("marked the boot of %s bad: the next boot takes the next image of the list", r.Image), nil
}

// Run writes the boot report found under root ("/" in the booted system) to w: a summary, or
// with asJSON the file as it is, for scripts.
func Run(w io.Writer, root string, asJSON bool) error {
	if asJSON {
		data, err := os.ReadFile(filepath.Join(root, BootJSON))
		if errors.Is(err, fs.ErrNotExist) {
			return ErrNotBooted
		}
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	r, err := Read(root)
	if errors.Is(err, ErrNotBooted) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w (--json prints it as it is)", err)
	}
	if err := Summary(w, r); err != nil {
		return err
	}
	if r.CountFile != "" {
		return counts(w, r, filepath.Join(root, r.CountFile))
	}
	return nil
}

// counts writes the boot counting record: each listed image's tries, and the last events.
func counts(w io.Writer, r Report, path string) error {
	rec, err := bootstate.Load(path)
	if err != nil {
		fmt.Fprintf(w, "Boot counting: %v\n", err)
		return nil
	}
	fmt.Fprintf(w, "Boot counting (%d tries an image; record %s):\n", r.Tries, path)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, ref := range r.Images {
		img := rec.Images[ref]
		switch {
		case img == nil:
			fmt.Fprintf(tw, "  %s\tnot tried yet\n", ref)
		case img.Good:
			fmt.Fprintf(tw, "  %s\tmarked good (%d failed boots before)\n", ref, img.Failures)
		default:
			fmt.Fprintf(tw, "  %s\t%d tries left, %d failed boots\n", ref, img.TriesLeft, img.Failures)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rec.History) > 0 {
		fmt.Fprintln(w, "Past boots (oldest first):")
		for _, e := range rec.History[max(0, len(rec.History)-10):] {
			fmt.Fprintf(w, "  %s: %s\n", e.Image, e.What)
		}
	}
	// Asking the store's daemon is mkbootimg's business: PID 1's binary stays small.
	fmt.Fprintln(w, "Pinned images: mkbootimg status (or mkbootimg pins) lists them")
	return nil
}

// Summary writes r for a person: what booted from where, then each step's duration.
func Summary(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{name}, args...)...)
	}
	fmt.Fprintf(tw, "Booted by dockerinit into %s\n", orUnknown(r.Image))
	if len(r.Images) > 0 {
		field("image list", "%s", strings.Join(r.Images, ", "))
		field("why this one", "%s", orUnknown(r.Why))
		for _, p := range r.PassedOver {
			field("passed over", "%s", p)
		}
	}
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
	field("Secure Boot", "%s", orUnknown(r.SecureBoot))
	switch {
	case r.CmdlineSealed && len(r.Ignored) > 0:
		field("command line", "sealed in the UKI; ignored from the boot loader: %s", strings.Join(r.Ignored, " "))
	case r.CmdlineSealed:
		field("command line", "sealed in the UKI")
	default:
		field("command line", "from the boot loader (not sealed)")
	}
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
