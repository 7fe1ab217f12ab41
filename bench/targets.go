package bench

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Baseline names the initramfs generator the targets are set against: Debian's own.
const Baseline = "initramfs-tools"

// Ratio is one target: our figure over the comparison's, which must not exceed Max; or, for a
// Limit, our figure itself, which must not exceed Max in Unit.
type Ratio struct {
	Metric string
	Ours   float64
	Theirs float64
	Unit   string
	Max    float64
	// Limit: Max bounds Ours itself, there is nothing to compare with.
	Limit bool
	// Why says, for a target missed or not measured, by how much and why, from the figures.
	Why string
	// Finding is what the figures say about the target itself, missed or met: a floor that
	// already misses it.
	Finding string
}

// Measured reports whether both figures exist (ours alone for a Limit).
func (r Ratio) Measured() bool { return r.Ours > 0 && (r.Limit || r.Theirs > 0) }

// Value is Ours/Theirs, or Ours for a Limit; 0 when not measured.
func (r Ratio) Value() float64 {
	switch {
	case !r.Measured():
		return 0
	case r.Limit:
		return r.Ours
	}
	return r.Ours / r.Theirs
}

// Met reports whether the target was measured and reached.
func (r Ratio) Met() bool { return r.Measured() && r.Value() <= r.Max }

// floor returns the floor's initramfs, nil when it was not built.
func (res Results) floor() *Initrd {
	for i := range res.Initrds {
		if res.Initrds[i].Floor {
			return &res.Initrds[i]
		}
	}
	return nil
}

// goFloor returns the Go floor's initramfs, nil when it was not built.
func (res Results) goFloor() *Initrd {
	for i := range res.Initrds {
		if res.Initrds[i].GoFloor {
			return &res.Initrds[i]
		}
	}
	return nil
}

// overlay returns our initramfs that boots from an overlay store, nil when there is none.
func (res Results) overlay() *Initrd {
	for i := range res.Initrds {
		if res.Initrds[i].Ours && res.Initrds[i].Store != "" {
			return &res.Initrds[i]
		}
	}
	return nil
}

// pair returns our main initramfs (the first one mkbootimg built for the fixture's btrfs store)
// and the baseline's.
func (res Results) pair() (ours, base *Initrd) {
	for i := range res.Initrds {
		in := &res.Initrds[i]
		if in.Ours && in.Store == "" && ours == nil {
			ours = in
		}
		if !in.Ours && in.Name == Baseline {
			base = in
		}
	}
	return ours, base
}

// copyCase returns the top layer case with the given placement.
func (res Results) copyCase(sameFS bool) *CopyCase {
	for i := range res.TopLayer.Cases {
		if res.TopLayer.Cases[i].SameFS == sameFS {
			return &res.TopLayer.Cases[i]
		}
	}
	return nil
}

// Targets are the targets, each with its figures and, where it was missed, why.
func (res Results) Targets() []Ratio {
	ours, base := res.pair()
	var out []Ratio
	floor := res.floor()
	add := func(r Ratio, why func(r Ratio) string) {
		switch {
		case !r.Measured():
			r.Why = "not measured: " + cmp.Or(missingWhat(r, ours, base, floor), "a figure is missing") + " (see the notes)"
		case !r.Met() && r.Limit:
			r.Why = fmt.Sprintf("missed by %.0f%% (%s against at most %s): %s",
				(r.Value()/r.Max-1)*100, figure(r.Ours, r.Unit), figure(r.Max, r.Unit), why(r))
		case !r.Met():
			r.Why = fmt.Sprintf("missed by %.0f%% (%.3f against at most %.2f): %s",
				(r.Value()/r.Max-1)*100, r.Value(), r.Max, why(r))
		}
		out = append(out, r)
	}
	size := Ratio{Metric: "initramfs size", Unit: "MB", Max: 0.2}
	build := Ratio{Metric: "build time", Unit: "s", Max: 0.05}
	boot := Ratio{Metric: `"Run /init" to real init`, Unit: "s", Max: 0.25}
	if ours != nil {
		size.Ours = float64(ours.SizeBytes) / 1e6
		build.Ours = Median(ours.BuildS)
		boot.Ours, _ = bootMedians(ours.Boots)
	}
	if base != nil {
		size.Theirs = float64(base.SizeBytes) / 1e6
		build.Theirs = Median(base.BuildS)
		boot.Theirs, _ = bootMedians(base.Boots)
	}
	add(size, func(Ratio) string { return sizeWhy(ours, base) })
	ukiSize := Ratio{Metric: "UKI size (vs kernel + initramfs apart)", Unit: "MB", Max: 1.05}
	if u := res.UKI; u != nil {
		ukiSize.Ours, ukiSize.Theirs = float64(u.SizeBytes)/1e6, float64(u.KernelBytes+u.InitrdBytes)/1e6
	}
	add(ukiSize, func(Ratio) string { return ukiWhy(res.UKI) })
	add(build, func(Ratio) string { return buildWhy(ours, base) })
	boot.Finding = floorFinding(floor, base, boot.Max)
	add(boot, func(Ratio) string { return bootWhy(ours) })

	vsFloor := Ratio{Metric: `"Run /init" to real init (vs floor)`, Unit: "s", Max: 1.15}
	startup := Ratio{Metric: `"Run /init" to dockerinit's first line (Go start-up)`, Unit: "ms", Max: 50, Limit: true}
	if ours != nil {
		vsFloor.Ours = boot.Ours
		startup.Ours = medianStartupMS(ours)
	}
	if floor != nil {
		vsFloor.Theirs, _ = bootMedians(floor.Boots)
		startup.Finding = startupFinding(floor, res.goFloor(), startup.Max)
	}
	add(vsFloor, func(r Ratio) string { return floorWhy(ours, floor) })
	add(startup, func(Ratio) string { return startupWhy(ours) })

	ov := res.overlay()
	vsBtrfs := Ratio{Metric: `"Run /init" to real init, overlay2 store (vs btrfs)`, Unit: "s", Max: 1.1}
	if ov != nil {
		vsBtrfs.Ours, _ = bootMedians(ov.Boots)
	}
	if ours != nil {
		vsBtrfs.Theirs, _ = bootMedians(ours.Boots)
	}
	add(vsBtrfs, func(Ratio) string { return overlayWhy(ov, ours) })

	for _, c := range []struct {
		sameFS bool
		metric string
		max    float64
	}{
		{false, "top layer apply, across file systems (vs cp -a)", 1.0},
		{true, "top layer apply, same btrfs (vs cp -a)", 0.2},
	} {
		r := Ratio{Metric: c.metric, Unit: "s", Max: c.max}
		cc := res.copyCase(c.sameFS)
		if cc != nil {
			r.Ours, r.Theirs = Median(cc.ApplyS), Median(cc.CpS)
		}
		add(r, func(Ratio) string { return copyWhy(res, c.sameFS) })
	}
	return out
}

func missingWhat(r Ratio, ours, base, floor *Initrd) string {
	switch {
	case r.Ours == 0 && strings.HasSuffix(r.Metric, "(vs kernel + initramfs apart)"):
		return "mkbootimg uki built no UKI"
	case r.Ours == 0 && ours == nil:
		return "no dockerinit initramfs was built"
	case r.Ours == 0 && r.Limit:
		return "the console showed no dockerinit line after \"Run /init\""
	case r.Theirs == 0 && strings.HasSuffix(r.Metric, "(vs floor)") && (floor == nil || len(floor.Boots) == 0):
		return "the floor initramfs was not built or did not boot"
	case r.Ours == 0 && strings.HasSuffix(r.Metric, "(vs btrfs)"):
		return "no initramfs was built from an overlay store, or it did not boot"
	case r.Theirs == 0 && base == nil && !strings.HasSuffix(r.Metric, "(vs btrfs)"):
		return "no " + Baseline + " initramfs was built"
	case r.Ours == 0:
		return "no figure for dockerinit"
	case r.Theirs == 0:
		return "no figure for the comparison"
	}
	return ""
}

func partsTotal(in *Initrd) (bytes int64, files int) {
	for _, p := range in.Parts {
		bytes += p.Bytes
		files += p.Files
	}
	return bytes, files
}

func sizeWhy(ours, base *Initrd) string {
	if len(ours.Parts) == 0 {
		return "its content was not analysed"
	}
	total, _ := partsTotal(ours)
	big := slices.MaxFunc(ours.Parts, func(a, b Part) int { return cmp.Compare(a.Bytes, b.Bytes) })
	s := fmt.Sprintf("%.1f MB of its %.1f MB uncompressed are %s (%d files)",
		float64(big.Bytes)/1e6, float64(total)/1e6, big.Name, big.Files)
	if bt, _ := partsTotal(base); bt > 0 {
		s += fmt.Sprintf("; %s holds %.1f MB uncompressed", base.Name, float64(bt)/1e6)
	}
	return s
}

// ukiWhy says what the UKI holds beyond its kernel and initramfs.
func ukiWhy(u *UKI) string {
	return fmt.Sprintf("its %.2f MB hold the kernel's %.2f MB and the initramfs's %.2f MB; the other %.2f MB are the EFI stub, "+
		"os-release, the command line and the sections' page alignment", float64(u.SizeBytes)/1e6, float64(u.KernelBytes)/1e6,
		float64(u.InitrdBytes)/1e6, float64(u.SizeBytes-u.KernelBytes-u.InitrdBytes)/1e6)
}

func buildWhy(ours, base *Initrd) string {
	ob, of := partsTotal(ours)
	bb, bf := partsTotal(base)
	return fmt.Sprintf("mkbootimg took %.2f s for %.1f MB uncompressed in %d files, %s %.2f s for %.1f MB in %d files",
		Median(ours.BuildS), float64(ob)/1e6, of, base.Name, Median(base.BuildS), float64(bb)/1e6, bf)
}

func bootWhy(ours *Initrd) string {
	b, _ := MedianBoot(ours.Boots)
	if len(b.Steps) == 0 {
		return "boot.json had no steps to say where the time went"
	}
	steps := slices.SortedFunc(slices.Values(b.Steps), func(a, b Step) int { return cmp.Compare(b.MS, a.MS) })
	var slow []string
	for _, st := range steps[:min(2, len(steps))] {
		slow = append(slow, fmt.Sprintf("%q %.0f ms", st.Name, st.MS))
	}
	return fmt.Sprintf("the slowest steps of the median boot were %s, of %.0f ms in all",
		strings.Join(slow, " and "), b.InitramfsS()*1000)
}

func copyWhy(res Results, sameFS bool) string {
	c, other := res.copyCase(sameFS), res.copyCase(!sameFS)
	mb := float64(res.TopLayer.Bytes) / 1e6
	apply, cp := Median(c.ApplyS), Median(c.CpS)
	if sameFS && other != nil && cp < Median(other.CpS)/2 {
		return fmt.Sprintf("cp -a cloned extents too (GNU cp defaults to --reflink=auto since coreutils 9.0), "+
			"so both copy only metadata: %.2f s against %.2f s for %d files", apply, cp, res.TopLayer.Files)
	}
	return fmt.Sprintf("%.0f MB in %d files: toplayer %.0f MB/s, cp -a %.0f MB/s",
		mb, res.TopLayer.Files, mb/apply, mb/cp)
}

// overlayWhy says where the overlay store's boot spends its time beyond the btrfs one's: the
// steps of the two median boots that differ most.
func overlayWhy(ov, btrfs *Initrd) string {
	o, _ := bootMedians(ov.Boots)
	b, _ := bootMedians(btrfs.Boots)
	s := fmt.Sprintf("%.0f ms more than the btrfs store's %.0f ms", (o-b)*1000, b*1000)
	om, _ := MedianBoot(ov.Boots)
	bm, _ := MedianBoot(btrfs.Boots)
	type diff struct {
		name string
		ms   float64
	}
	var diffs []diff
	seen := map[string]bool{}
	for _, st := range om.Steps {
		seen[st.Name] = true
		d := st.MS
		for _, bs := range bm.Steps {
			if bs.Name == st.Name {
				d -= bs.MS
			}
		}
		diffs = append(diffs, diff{st.Name, d})
	}
	for _, bs := range bm.Steps {
		if !seen[bs.Name] {
			diffs = append(diffs, diff{bs.Name, -bs.MS})
		}
	}
	slices.SortStableFunc(diffs, func(a, b diff) int { return cmp.Compare(b.ms, a.ms) })
	var worse []string
	for _, d := range diffs {
		if d.ms <= 0 || len(worse) == 2 {
			break
		}
		worse = append(worse, fmt.Sprintf("%q %+.0f ms", d.name, d.ms))
	}
	if len(worse) == 0 {
		return s + "; boot.json's steps of the median boots do not say where"
	}
	return s + "; the steps of the median boots that grew most: " + strings.Join(worse, " and ")
}

// floorFinding says when the floor itself is above the target against the baseline: then no
// initramfs reaches it on this kernel and VM, which is a finding about the target.
func floorFinding(floor, base *Initrd, maxRatio float64) string {
	if floor == nil || base == nil {
		return ""
	}
	f, _ := bootMedians(floor.Boots)
	b, _ := bootMedians(base.Boots)
	if f <= 0 || b <= 0 || f/b <= maxRatio {
		return ""
	}
	return fmt.Sprintf("the floor itself takes %.2f s against %s's %.2f s, %.3f of it: above %.2f, so on this kernel and VM "+
		"no initramfs that loads these modules reaches the target", f, Baseline, b, f/b, maxRatio)
}

// floorWhy says where our time beyond the floor's goes.
func floorWhy(ours, floor *Initrd) string {
	o, _ := bootMedians(ours.Boots)
	f, _ := bootMedians(floor.Boots)
	return fmt.Sprintf("%.0f ms more than the floor's %.0f ms; %s", (o-f)*1000, f*1000, bootWhy(ours))
}

// startupWhy splits the time before dockerinit's first line: the boot.json steps up to the one
// that prints it (mounting /dev, where the kernel log is), and the rest, which is the Go runtime's start and
// package init before main.
func startupWhy(ours *Initrd) string {
	b, _ := MedianBoot(ours.Boots)
	total := b.StartupS() * 1000
	var before []string
	var steps float64
	for _, st := range b.Steps {
		before = append(before, fmt.Sprintf("%q %.0f ms", st.Name, st.MS))
		steps += st.MS
		if st.Name == "mount /proc /sys /dev /run" {
			break
		}
	}
	if len(before) == 0 || steps > total {
		return fmt.Sprintf("%.0f ms from \"Run /init\" to the first line of the median boot, which boot.json does not split", total)
	}
	return fmt.Sprintf("of the median boot's %.0f ms, the steps before the line took %s; the other %.0f ms are the Go runtime's "+
		"start and package init before main (and the kernel's exec of /init)", total, strings.Join(before, " and "), total-steps)
}

// startupFinding sets the start-up limit against the floors' own: a static C program's time from
// "Run /init" to its first kernel log line is what the kernel's exec and first system calls cost
// on this VM before any Go runs; the Go floor's (when it booted) adds what Go's runtime costs
// before any of dockerinit's code.
func startupFinding(floor, goFloor *Initrd, limitMS float64) string {
	c := medianStartupMS(floor)
	if c <= 0 {
		return ""
	}
	s := fmt.Sprintf("the floor, a static C /init, takes %.0f ms from \"Run /init\" to its first line (the kernel's exec and its first "+
		"system calls under TCG), which leaves %.0f ms of the %.0f for Go's runtime start, package init and dockerinit's work before its line",
		c, max(limitMS-c, 0), limitMS)
	if g := medianStartupMS(goFloor); g > 0 {
		s += fmt.Sprintf("; the Go floor, the same work as a plain static Go program, takes %.0f ms to its first line, %.1fx the "+
			"limit: Go's runtime alone costs %.0f ms here", g, g/limitMS, g-c)
	}
	return s
}

// medianStartupMS is the median time from "Run /init" to in's first line, in ms; 0 when in is
// nil or none of its boots has one.
func medianStartupMS(in *Initrd) float64 {
	if in == nil {
		return 0
	}
	var st []float64
	for _, b := range in.Boots {
		if s := b.StartupS(); s > 0 {
			st = append(st, s*1000)
		}
	}
	return Median(st)
}
