package bench

import (
	"fmt"
	"slices"
	"strings"
)

// Markdown is the report of a run, bench/results/latest.md; chart is the file name of the SVG
// written beside it.
func Markdown(res Results, chart string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# dockerinit benchmark: latest run\n\n")
	p("%s\n\n", summary(res))
	p("![Boot timeline per step, and the ratios ours / %s](%s)\n\n", Baseline, chart)

	p("## Targets: ours / %s\n\n", Baseline)
	b.WriteString(targetsTable(res))
	b.WriteString("\n")
	b.WriteString(misses(res))

	p("## Initramfs: size, build time, boot\n\n")
	b.WriteString(initrdTable(res))
	b.WriteString("\n")
	b.WriteString(ratioTable(res))
	p("\nWhat was timed:\n\n")
	for _, in := range res.Initrds {
		p("- %s: `%s`\n", in.Name, in.Build)
	}
	if u := res.UKI; u != nil {
		p("\nThe UKI, built once after the rounds from the same store (`%s`; unsigned, not timed or booted): %s, of which "+
			"the kernel %s and the initramfs %s (mkbootimg uki's own: efivarfs and the sealed command line besides the generic "+
			"one's content), %.3f of the two apart.\n", u.Build, figure(float64(u.SizeBytes)/1e6, "MB"),
			figure(float64(u.KernelBytes)/1e6, "MB"), figure(float64(u.InitrdBytes)/1e6, "MB"), u.Ratio)
	}

	tl := res.TopLayer
	p("\n## Top layer apply: `toplayer.Apply` against `cp -a`\n\n")
	p("A generated tree of %d files, %.0f MB, copied into an empty subvolume of a btrfs, each copy "+
		"followed by a syncfs of that btrfs (timed), from the same btrfs and from an ext4.\n\n", tl.Files, float64(tl.Bytes)/1e6)
	p("| source | toplayer (s) | cp -a (s) | ratio | target |\n|---|--:|--:|--:|--:|\n")
	for _, c := range tl.Cases {
		maxRatio := 1.0
		if c.SameFS {
			maxRatio = 0.2
		}
		p("| %s | %s | %s | %s | ≤ %.2f |\n", c.Name, spread(c.ApplyS, 2), spread(c.CpS, 2),
			ratioText(Median(c.ApplyS), Median(c.CpS)), maxRatio)
	}

	p("\n%s", snapshotSection(res.Snapshots))

	if res.Load != nil {
		p("\n%s", loadSection(res.Load))
	}

	if len(res.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range res.Notes {
			p("- %s\n", n)
		}
	}

	m := res.Machine
	p("\n## Machine and versions\n\n| | |\n|---|---|\n")
	p("| CPU | %s, %d cores, %.0f GB |\n| host kernel | %s |\n| image, guest kernel | %s, %s |\n| QEMU settings | `%s` |\n",
		m.CPU, m.Cores, m.MemoryGB, m.HostKernel, m.Image, m.GuestKernel, m.QEMU)
	for _, v := range m.Versions {
		p("| %s | %s |\n", v.Name, v.Version)
	}
	return b.String()
}

// ReadmeSection is the README's Performance section body: the targets and where the rest is.
func ReadmeSection(res Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`make bench` (root, QEMU; installs nothing it does not name, see `bench/`) measures dockerinit against "+
		"Debian's initramfs-tools and dracut, and against a floor (`bench/floor`: a static C /init that only loads the modules "+
		"dockerinit loaded, mounts the root made beforehand and switches to it), in one run on one machine. Latest run: %s\n\n", summary(res))
	b.WriteString(targetsTable(res))
	b.WriteString("\n")
	b.WriteString(misses(res))
	if l := res.Load; l != nil {
		fmt.Fprintf(&b, "Under load (`make bench BENCHFLAGS='-only load'` measures these alone; %s, dockerinit %s), "+
			"the same initramfs against the normal boot, boot.json's steps in ms:\n\n", l.Date.UTC().Format("2006-01-02 15:04 UTC"), l.Dockerinit)
		b.WriteString(LoadTable(l))
		b.WriteString("\n")
		if late := LateText(l); late != "" {
			b.WriteString(late + "\n")
		}
	}
	b.WriteString("Every figure, the top layer and snapshot measurements, the load cases, versions and a boot timeline chart: " +
		"[bench/results/latest.md](bench/results/latest.md).\n\n![Boot timeline and ratios](bench/results/latest.svg)\n")
	return b.String()
}

// The README's Performance section lies between these markers; UpdateReadme rewrites it.
const (
	readmeBegin = "<!-- bench:begin: written by make bench, edit bench/report.go instead -->"
	readmeEnd   = "<!-- bench:end -->"
)

// UpdateReadme puts section between the Performance markers of readme, appending a
// "## Performance" section at the end when the markers are not there yet.
func UpdateReadme(readme, section string) string {
	block := readmeBegin + "\n" + section + readmeEnd + "\n"
	before, rest, found := strings.Cut(readme, readmeBegin)
	if found {
		if _, after, ok := strings.Cut(rest, readmeEnd); ok {
			return before + block + strings.TrimPrefix(after, "\n")
		}
	}
	if readme != "" && !strings.HasSuffix(readme, "\n") {
		readme += "\n"
	}
	return readme + "\n## Performance\n\n" + block
}

func summary(res Results) string {
	if len(res.Initrds) == 0 {
		return "No full run is recorded here, only the load cases (below): `make bench` without `-only` measures the rest."
	}
	m := res.Machine
	rounds := 0
	for _, in := range res.Initrds {
		rounds = max(rounds, len(in.BuildS), len(in.Boots))
	}
	return fmt.Sprintf("%s on %s (%d cores), host kernel %s. Every initramfs is built for the Docker image `%s` "+
		"(kernel %s) and boots it from the same disk under the same QEMU settings; figures are medians of "+
		"%d runs, the generators' runs interleaved so that the noise of this shared machine hits all alike.",
		res.Date.UTC().Format("2006-01-02 15:04 UTC"), m.CPU, m.Cores, m.HostKernel, m.Image, m.GuestKernel, rounds)
}

func targetsTable(res Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| metric | dockerinit | %s | ratio | target | |\n|---|--:|--:|--:|--:|---|\n", Baseline)
	for _, r := range res.Targets() {
		verdict := "**missed**"
		switch {
		case !r.Measured():
			verdict = "not measured"
		case r.Met():
			verdict = "met"
		}
		theirs, ratio, target := figure(r.Theirs, r.Unit), ratioText(r.Ours, r.Theirs), fmt.Sprintf("≤ %.2f", r.Max)
		if r.Limit {
			theirs, ratio, target = "—", "—", "≤ "+figure(r.Max, r.Unit)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Metric, figure(r.Ours, r.Unit), theirs, ratio, target, verdict)
	}
	return b.String()
}

func misses(res Results) string {
	var b strings.Builder
	for _, r := range res.Targets() {
		if r.Why != "" {
			fmt.Fprintf(&b, "- **%s** %s.\n", r.Metric, r.Why)
		}
		if r.Finding != "" {
			fmt.Fprintf(&b, "- **%s**, a finding: %s.\n", r.Metric, r.Finding)
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

func initrdTable(res Results) string {
	var b strings.Builder
	b.WriteString("|")
	for _, in := range res.Initrds {
		fmt.Fprintf(&b, " | %s", in.Name)
	}
	b.WriteString(" |\n|---" + strings.Repeat("|--:", len(res.Initrds)) + "|\n")
	row := func(name string, cell func(in Initrd) string) {
		b.WriteString("| " + name)
		for _, in := range res.Initrds {
			b.WriteString(" | " + cell(in))
		}
		b.WriteString(" |\n")
	}
	row("size (MB)", func(in Initrd) string { return figure(float64(in.SizeBytes)/1e6, "") })
	row("uncompressed (MB, files)", func(in Initrd) string {
		bytes, files := partsTotal(&in)
		if files == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f, %d", float64(bytes)/1e6, files)
	})
	row("of which kernel modules (MB, files)", func(in Initrd) string {
		i := slices.IndexFunc(in.Parts, func(p Part) bool { return p.Name == PartModules })
		if i < 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f, %d", float64(in.Parts[i].Bytes)/1e6, in.Parts[i].Files)
	})
	row("build time (s)", func(in Initrd) string { return spread(in.BuildS, 2) })
	row(`"Run /init" to real init (s)`, func(in Initrd) string {
		var xs []float64
		for _, bt := range in.Boots {
			xs = append(xs, bt.InitramfsS())
		}
		return spread(xs, 2)
	})
	row(`"Run /init" to its first log line (ms)`, func(in Initrd) string {
		var xs []float64
		for _, bt := range in.Boots {
			if st := bt.StartupS(); st > 0 {
				xs = append(xs, st*1000)
			}
		}
		return spread(xs, 0)
	})
	row("kernel start to real init (s)", func(in Initrd) string {
		var xs []float64
		for _, bt := range in.Boots {
			xs = append(xs, bt.RealInitS)
		}
		return spread(xs, 2)
	})
	b.WriteString("\nTimes are median (min–max) of the runs; boot times are on the guest clock.\n")
	return b.String()
}

// ratioTable is ours (each of our initramfs) over each other generator, metric by metric.
func ratioTable(res Results) string {
	var ours, theirs []Initrd
	for _, in := range res.Initrds {
		if in.Ours {
			ours = append(ours, in)
		} else {
			theirs = append(theirs, in)
		}
	}
	if len(ours) == 0 || len(theirs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| ours / theirs |")
	for _, t := range theirs {
		fmt.Fprintf(&b, " size vs %s | build vs %s | \"Run /init\" to real init vs %s |", t.Name, t.Name, t.Name)
	}
	b.WriteString("\n|---" + strings.Repeat("|--:", 3*len(theirs)) + "|\n")
	for _, o := range ours {
		b.WriteString("| " + o.Name)
		oi, _ := bootMedians(o.Boots)
		for _, t := range theirs {
			ti, _ := bootMedians(t.Boots)
			fmt.Fprintf(&b, " | %s | %s | %s", ratioText(float64(o.SizeBytes), float64(t.SizeBytes)),
				ratioText(Median(o.BuildS), Median(t.BuildS)), ratioText(oi, ti))
		}
		b.WriteString(" |\n")
	}
	return b.String()
}

// snapshotSection is the cost of making the rw layer against image size: the btrfs snapshot and,
// when measured, the overlayfs mount (and unmount) over the same images, in one table.
func snapshotSection(snaps []Snapshot) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	overlay := slices.ContainsFunc(snaps, func(s Snapshot) bool { return len(s.OverlayMountMS) > 0 })
	p("## Snapshot cost against image size\n\n")
	p("`btrfs.Snapshot` of a subvolume holding an image of each size (what the boot's \"make rw layer\" step does on a btrfs store)")
	if overlay {
		p("; and, on an overlay store, what the boot does instead: an overlayfs mounted with the image as its lower folder " +
			"and fresh upper and work folders on an ext4 (`lowerdir=IMAGE,upperdir=UPPER,workdir=WORK,volatile`, as boot.OverlayOptions " +
			"builds them), then unmounted, the rounds interleaved with the snapshots'")
	}
	p(". Each should stay flat.\n\n")
	if overlay {
		p("| image | files | size | snapshot (ms) | overlayfs mount (ms) | overlayfs unmount (ms) |\n|---|--:|--:|--:|--:|--:|\n")
	} else {
		p("| image | files | size | snapshot (ms) |\n|---|--:|--:|--:|\n")
	}
	for _, s := range snaps {
		p("| %s | %d | %.2f GB | %s", s.Name, s.Files, float64(s.Bytes)/1e9, spread(s.MS, 1))
		if overlay {
			p(" | %s | %s", spread(s.OverlayMountMS, 2), spread(s.OverlayUmountMS, 2))
		}
		p(" |\n")
	}
	if n := len(snaps); n >= 2 {
		first, last := snaps[0], snaps[n-1]
		ratios := ratioText(Median(last.MS), Median(first.MS))
		if overlay {
			ratios = fmt.Sprintf("snapshot %s, overlayfs mount %s, unmount %s,", ratios,
				ratioText(Median(last.OverlayMountMS), Median(first.OverlayMountMS)),
				ratioText(Median(last.OverlayUmountMS), Median(first.OverlayUmountMS)))
		}
		p("\n%s / %s: %s for %.1f× the data.\n", last.Name, first.Name, ratios, float64(last.Bytes)/float64(max(first.Bytes, 1)))
	}
	return b.String()
}

// figure prints a measured value, or a dash for one that was not measured.
func figure(v float64, unit string) string {
	if v <= 0 {
		return "—"
	}
	s := fmt.Sprintf("%.2f", v)
	switch {
	case unit == "ms":
		s = fmt.Sprintf("%.0f", v)
	case v < 0.1:
		s = fmt.Sprintf("%.3f", v)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

func ratioText(ours, theirs float64) string {
	if ours <= 0 || theirs <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f", ours/theirs)
}

// spread prints the median of xs with its range, "1.23 (1.10–1.40)", or a dash for none.
func spread(xs []float64, decimals int) string {
	if len(xs) == 0 {
		return "—"
	}
	med := fmt.Sprintf("%.*f", decimals, Median(xs))
	if len(xs) == 1 {
		return med
	}
	return fmt.Sprintf("%s (%.*f–%.*f)", med, decimals, slices.Min(xs), decimals, slices.Max(xs))
}
