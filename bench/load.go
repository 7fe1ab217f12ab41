package bench

import (
	"fmt"
	"strings"
	"time"
)

// Load is the load cases of one run: the same dockerinit initramfs booting the image under one
// load each (a big store, a deep image, a big top layer, a late disk), beside the normal boot,
// all interleaved round by round. It carries its own date and version because `-only load`
// measures it alone and keeps the rest of an earlier full run.
type Load struct {
	Date       time.Time `json:"date"`
	Dockerinit string    `json:"dockerinit"` // git describe of the checkout measured
	// Cases are the normal boot first (Normal set), then the loaded ones.
	Cases []LoadCase `json:"cases"`
	Notes []string   `json:"notes,omitempty"`
}

// LoadCase is one load case and its boots.
type LoadCase struct {
	Name   string `json:"name"`             // "store of 204 images"
	Load   string `json:"load"`             // what the load is and how it was made
	Args   string `json:"args"`             // the kernel arguments that differ from the normal boot's
	Normal bool   `json:"normal,omitempty"` // the reference: no load
	// LateS is how long after QEMU started the disk was hot-plugged; 0: it was there from the start.
	LateS float64 `json:"late_s,omitempty"`
	// HostApplyS is toplayer.Apply of the case's top layer folder on the bench machine itself
	// (no emulation), into the rw layer made before the first round, with a syncfs; 0: not timed.
	HostApplyS float64 `json:"host_apply_s,omitempty"`
	Boots      []Boot  `json:"boots,omitempty"`
	// Failed says why the case did not boot, when it did not: a finding, reported as such.
	Failed string `json:"failed,omitempty"`
}

// The boot.json steps the load table shows one by one.
const (
	StepFindRoot = "find root device"
	StepResolve  = "resolve image"
	StepRWLayer  = "make rw layer"
	StepTopLayer = "apply top layer"
)

var loadSteps = []string{StepFindRoot, StepResolve, StepRWLayer, StepTopLayer}

// StepMS is the median over boots of the named step's duration; false when no boot has it.
func StepMS(boots []Boot, name string) (float64, bool) {
	var xs []float64
	for _, b := range boots {
		for _, s := range b.Steps {
			if s.Name == name {
				xs = append(xs, s.MS)
			}
		}
	}
	return Median(xs), len(xs) > 0
}

// normal is the reference case, nil when there is none.
func (l *Load) normal() *LoadCase {
	for i := range l.Cases {
		if l.Cases[i].Normal {
			return &l.Cases[i]
		}
	}
	return nil
}

// LoadTable is the Markdown table of the load cases: the initramfs time of each against the
// normal boot's, and the steps a load can slow.
func LoadTable(l *Load) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("| case | \"Run /init\" to real init (s) | vs normal |")
	for _, s := range loadSteps {
		p(" %s (ms) |", s)
	}
	b.WriteString("\n|---|--:|--:|" + strings.Repeat("--:|", len(loadSteps)) + "\n")
	var ref float64
	if n := l.normal(); n != nil {
		ref, _ = bootMedians(n.Boots)
	}
	for _, c := range l.Cases {
		p("| %s", c.Name)
		if c.Failed != "" || len(c.Boots) == 0 {
			p(" | did not boot | — |%s\n", strings.Repeat(" — |", len(loadSteps)))
			continue
		}
		var xs []float64
		for _, bt := range c.Boots {
			xs = append(xs, bt.InitramfsS())
		}
		vs := "—"
		if c.Normal {
			vs = "reference"
		} else if med := Median(xs); med > 0 && ref > 0 {
			vs = fmt.Sprintf("%+.2f s (%.2f×)", med-ref, med/ref)
		}
		p(" | %s | %s |", spread(xs, 2), vs)
		for _, s := range loadSteps {
			if ms, ok := StepMS(c.Boots, s); ok {
				p(" %.0f |", ms)
			} else {
				p(" — |")
			}
		}
		p("\n")
	}
	return b.String()
}

// LateText says when the late disk was plugged, seen by the kernel and found by dockerinit, in
// the median boot of each case that had one; "" when none had.
func LateText(l *Load) string {
	var b strings.Builder
	for _, c := range l.Cases {
		if c.LateS <= 0 {
			continue
		}
		bt, ok := MedianBoot(c.Boots)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "- %s: the disk was hot-plugged %.1f s after QEMU started", c.Name, c.LateS)
		if bt.DiskS > 0 {
			fmt.Fprintf(&b, "; the guest kernel saw it at %.2f s", bt.DiskS)
		}
		if bt.RootFoundS > 0 {
			fmt.Fprintf(&b, ", dockerinit found it at %.2f s (it had waited %.2f s for it, from %.2f s after \"Run /init\")",
				bt.RootFoundS, bt.RootWaitS, bt.RootFoundS-bt.RootWaitS-bt.RunInitS)
		}
		fmt.Fprintf(&b, "; the real init started at %.2f s (guest clock of the median boot, which starts with the kernel, after QEMU's firmware).\n", bt.RealInitS)
	}
	return b.String()
}

// loadSection is the Load section of latest.md.
func loadSection(l *Load) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## Load\n\n")
	rounds := 0
	for _, c := range l.Cases {
		rounds = max(rounds, len(c.Boots))
	}
	p("Measured %s with dockerinit %s: the same dockerinit (generic) initramfs boots the image under one load each, "+
		"beside the normal boot, the cases interleaved round by round; median (min–max) of %d boots, guest clock. "+
		"The steps are boot.json's (medians).\n\n", l.Date.UTC().Format("2006-01-02 15:04 UTC"), l.Dockerinit, rounds)
	b.WriteString(LoadTable(l))
	p("\n")
	for _, c := range l.Cases {
		p("- **%s**: %s", c.Name, c.Load)
		if c.Args != "" {
			p(" Kernel arguments: `%s`.", c.Args)
		}
		if c.HostApplyS > 0 {
			p(" The same apply on the bench machine itself, not emulated (toplayer.Apply and a syncfs): %.2f s", c.HostApplyS)
			if ms, ok := StepMS(c.Boots, StepTopLayer); ok {
				p(", %.0f× less than under QEMU", ms/1000/c.HostApplyS)
			}
			p(".")
		}
		if c.Failed != "" {
			p(" **It did not boot:** %s", c.Failed)
		}
		p("\n")
	}
	if late := LateText(l); late != "" {
		p("\n%s", late)
	}
	for _, n := range l.Notes {
		p("\n%s\n", n)
	}
	return b.String()
}

// WithLoad returns prev (an earlier run's results) with its load cases replaced by load: what
// `-only load` writes, so that a load-only run keeps the full run's other figures.
func WithLoad(prev Results, load *Load) Results {
	prev.Load = load
	return prev
}
