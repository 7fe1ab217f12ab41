package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// sample is a run where size, UKI size and boot targets are met and the others are missed.
func sample() Results {
	return Results{
		Date: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC),
		Machine: Machine{CPU: "Test CPU", Cores: 2, MemoryGB: 23, HostKernel: "6.18.44", Image: "sample_image",
			GuestKernel: "6.1.0-50-amd64", QEMU: "qemu-system-x86_64 -m 1024", Versions: []Version{{"dracut", "059-4"}}},
		Initrds: []Initrd{
			{Name: "dockerinit (generic)", Ours: true, Build: "mkbootimg", SizeBytes: 5e6,
				Parts:  []Part{{PartInit, 1, 3e6}, {PartModules, 40, 9e6}},
				BuildS: []float64{2, 3, 4},
				Boots: []Boot{
					{RunInitS: 2, RealInitS: 4.5, FirstLineS: 2.06, Steps: []Step{{"load modules", 1500}, {"make rw layer", 60}}},
					{RunInitS: 2, RealInitS: 4, FirstLineS: 2.04, Steps: []Step{{"load modules", 1200}, {"make rw layer", 50}}},
					{RunInitS: 2, RealInitS: 5, FirstLineS: 2.2, Steps: []Step{{"load modules", 2000}, {"make rw layer", 70}}},
				}},
			{Name: Baseline, Build: "update-initramfs", SizeBytes: 40e6, Parts: []Part{{PartModules, 900, 100e6}},
				BuildS: []float64{20, 30, 25}, Boots: []Boot{{RunInitS: 2, RealInitS: 12}, {RunInitS: 2, RealInitS: 14}, {RunInitS: 2, RealInitS: 13}}},
			{Name: "dracut", Build: "dracut", SizeBytes: 60e6, BuildS: []float64{40}},
			{Name: FloorName, Floor: true, Build: "gcc -static", SizeBytes: 4e6,
				Boots: []Boot{{RunInitS: 2, RealInitS: 4.2, FirstLineS: 2.045}, {RunInitS: 2, RealInitS: 4.1, FirstLineS: 2.04}, {RunInitS: 2, RealInitS: 4.3, FirstLineS: 2.05}}},
		},
		TopLayer: TopLayer{Files: 20000, Bytes: 500e6, Cases: []CopyCase{
			{Name: "same btrfs (reflinks)", SameFS: true, ApplyS: []float64{1.0, 1.2, 1.1}, CpS: []float64{1.5, 1.6, 1.4}},
			{Name: "ext4 to btrfs", ApplyS: []float64{5, 6, 7}, CpS: []float64{5, 5, 5}},
		}},
		Snapshots: []Snapshot{{Name: "0.5 GB image", Files: 20000, Bytes: 500e6, MS: []float64{10, 12, 11}},
			{Name: "4.0 GB image", Files: 160000, Bytes: 4e9, MS: []float64{11, 12, 13}}},
		UKI:   &UKI{Build: "mkbootimg uki", SizeBytes: 13.2e6, KernelBytes: 8e6, InitrdBytes: 5e6, Ratio: 13.2 / 13},
		Notes: []string{"QEMU runs TCG."},
	}
}

func TestTargets(t *testing.T) {
	missingBaseline := sample()
	missingBaseline.Initrds = missingBaseline.Initrds[:1]
	slowBoot := sample()
	slowBoot.Initrds[1].Boots = []Boot{{RunInitS: 2, RealInitS: 7}}
	noFloor := sample()
	noFloor.Initrds = noFloor.Initrds[:3]
	slowStart := sample()
	for i := range slowStart.Initrds[0].Boots {
		b := &slowStart.Initrds[0].Boots[i]
		b.FirstLineS = b.RunInitS + 0.09
		b.Steps = append([]Step{{"mount /proc /sys /dev /run", 5}, {"read parameters", 10}}, b.Steps...)
	}
	fastStart := sample()
	for i := range fastStart.Initrds[0].Boots {
		fastStart.Initrds[0].Boots[i].FirstLineS = 2.03
	}
	noLine := sample()
	for i := range noLine.Initrds[0].Boots {
		noLine.Initrds[0].Boots[i].FirstLineS = 0
	}
	bigUKI := sample()
	bigUKI.UKI.SizeBytes = 14e6
	noUKI := sample()
	noUKI.UKI = nil
	slowOurs := sample()
	slowOurs.Initrds[3].Boots = []Boot{{RunInitS: 2, RealInitS: 3.5}}
	for _, tc := range []struct {
		name string
		res  Results
		want map[string]string // metric prefix -> verdict: "met", "missed ..." text, or "not measured"
	}{
		{"sample", sample(), map[string]string{
			"initramfs size":                         "met",
			"UKI size (vs kernel + initramfs apart)": "met",
			`"Run /init" to real init (vs floor)`:    "met",
			`"Run /init" to dockerinit's first line`: "missed by 20% (60 ms against at most 50 ms): 60 ms from \"Run /init\" to the first line of the median boot, which boot.json does not split",
			"build time":                             "missed by 140% (0.120 against at most 0.05): mkbootimg took 3.00 s for 12.0 MB uncompressed in 41 files",
			`"Run /init" to real init`:               "met",
			"top layer apply, across":                "missed by 20% (1.200 against at most 1.00): 500 MB in 20000 files: toplayer 83 MB/s, cp -a 100 MB/s",
			"top layer apply, same btrfs":            "missed by 267% (0.733 against at most 0.20): cp -a cloned extents too",
		}},
		{"big UKI", bigUKI, map[string]string{
			"UKI size": "missed by 3% (1.077 against at most 1.05): its 14.00 MB hold the kernel's 8.00 MB and the initramfs's 5.00 MB; " +
				"the other 1.00 MB are the EFI stub, os-release, the command line and the sections' page alignment",
		}},
		{"no UKI", noUKI, map[string]string{
			"UKI size":       "not measured: mkbootimg uki built no UKI",
			"initramfs size": "met",
		}},
		{"slow boot", slowBoot, map[string]string{
			`"Run /init" to real init`: `missed by 100% (0.500 against at most 0.25): the slowest steps of the median boot were "load modules" 1500 ms and "make rw layer" 60 ms, of 2500 ms in all`,
		}},
		{"ours far above the floor", slowOurs, map[string]string{
			`"Run /init" to real init (vs floor)`: `missed by 45% (1.667 against at most 1.15): 1000 ms more than the floor's 1500 ms; the slowest steps`,
		}},
		{"no floor", noFloor, map[string]string{
			`"Run /init" to real init (vs floor)`: "not measured: the floor initramfs was not built or did not boot",
			`"Run /init" to real init`:            "met",
		}},
		{"slow start-up", slowStart, map[string]string{
			`"Run /init" to dockerinit's first line`: `missed by 80% (90 ms against at most 50 ms): of the median boot's 90 ms, the steps before the line took "mount /proc /sys /dev /run" 5 ms; the other 85 ms are the Go runtime's start`,
		}},
		{"fast start-up", fastStart, map[string]string{`"Run /init" to dockerinit's first line`: "met"}},
		{"no first line", noLine, map[string]string{
			`"Run /init" to dockerinit's first line`: `not measured: the console showed no dockerinit line after "Run /init"`,
		}},
		{"no baseline", missingBaseline, map[string]string{
			"initramfs size": "not measured: no initramfs-tools initramfs was built",
			"build time":     "not measured",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets := tc.res.Targets()
			if len(targets) != 9 {
				t.Fatalf("%d targets, want the issues' 9", len(targets))
			}
			for prefix, want := range tc.want {
				// A key names the metric it equals, else those it starts: `"Run /init" to real init`
				// is not its "(vs floor)" twin.
				exact := slices.ContainsFunc(targets, func(r Ratio) bool { return r.Metric == prefix })
				found := false
				for _, r := range targets {
					if exact && r.Metric != prefix || !strings.HasPrefix(r.Metric, prefix) {
						continue
					}
					found = true
					got := r.Why
					if r.Met() {
						got = "met"
					}
					if !strings.HasPrefix(got, want) {
						t.Errorf("%s: %q, want it to start with %q", r.Metric, got, want)
					}
					if r.Met() && r.Why != "" {
						t.Errorf("%s is met but says why it missed: %q", r.Metric, r.Why)
					}
				}
				if !found {
					t.Errorf("no target %q", prefix)
				}
			}
		})
	}
}

// TestFloorFinding: a floor above the target against initramfs-tools is said, with its figures,
// whether or not ours met the target.
func TestFloorFinding(t *testing.T) {
	slowBase := sample()
	slowBase.Initrds[1].Boots = []Boot{{RunInitS: 2, RealInitS: 7}}
	for _, tc := range []struct {
		name string
		res  Results
		want string
	}{
		{"floor below the target", sample(), ""},
		{"floor above the target", slowBase, "the floor itself takes 2.20 s against initramfs-tools's 5.00 s, 0.440 of it: above 0.25"},
		{"no floor", Results{Initrds: sample().Initrds[:2]}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			for _, r := range tc.res.Targets() {
				if r.Metric == `"Run /init" to real init` {
					got = r.Finding
				}
			}
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("finding %q, want %q", got, tc.want)
			}
			if tc.want != "" && !strings.Contains(Markdown(tc.res, "x.svg"), "- **\"Run /init\" to real init**, a finding: "+tc.want) {
				t.Errorf("the report does not state the finding")
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 {
		t.Error("Median sorted its argument in place")
	}
	b, ok := MedianBoot(sample().Initrds[0].Boots)
	if !ok || b.RealInitS != 4.5 {
		t.Errorf("MedianBoot = %+v, %v; want the boot reaching init at 4.5 s", b, ok)
	}
	if _, ok := MedianBoot(nil); ok {
		t.Error("MedianBoot(nil) found a boot")
	}
}

func TestMarkdown(t *testing.T) {
	md := Markdown(sample(), "latest.svg")
	for _, want := range []string{
		"![Boot timeline per step, and the ratios ours / initramfs-tools](latest.svg)",
		"| initramfs size | 5.00 MB | 40.00 MB | 0.125 | ≤ 0.20 | met |",
		"| build time | 3.00 s | 25.00 s | 0.120 | ≤ 0.05 | **missed** |",
		"| UKI size (vs kernel + initramfs apart) | 13.20 MB | 13.00 MB | 1.015 | ≤ 1.05 | met |",
		"The UKI, built once after the rounds from the same store (`mkbootimg uki`; unsigned, not timed or booted): 13.20 MB, of which the kernel 8.00 MB and the initramfs 5.00 MB",
		"- **build time** missed by 140%",
		"| | dockerinit (generic) | initramfs-tools | dracut | floor |",
		`| "Run /init" to real init (vs floor) | 2.50 s | 2.20 s | 1.136 | ≤ 1.15 | met |`,
		`| "Run /init" to dockerinit's first line (Go start-up) | 60 ms | — | — | ≤ 50 ms | **missed** |`,
		`| "Run /init" to its first log line (ms) | 60 (40–200) | — | — | 45 (40–50) |`,
		`- **"Run /init" to dockerinit's first line (Go start-up)**, a finding: the floor, a static C /init, takes 45 ms from "Run /init" to its first line (the kernel's exec and its first system calls under TCG), which leaves 5 ms of the 50 for Go's runtime start`,
		`| ours / theirs | size vs initramfs-tools | build vs initramfs-tools | "Run /init" to real init vs initramfs-tools | size vs dracut | build vs dracut | "Run /init" to real init vs dracut | size vs floor | build vs floor | "Run /init" to real init vs floor |`,
		"| dockerinit (generic) | 0.125 | 0.120 | 0.227 | 0.083 | 0.075 | — | 1.250 | — | 1.136 |",
		"| size (MB) | 5.00 | 40.00 | 60.00 | 4.00 |",
		"| build time (s) | 3.00 (2.00–4.00) | 25.00 (20.00–30.00) | 40.00 |",
		`| "Run /init" to real init (s) | 2.50 (2.00–3.00) | 11.00 (10.00–12.00) | — |`,
		"| of which kernel modules (MB, files) | 9.0, 40 | 100.0, 900 | — |",
		"| same btrfs (reflinks) | 1.10 (1.00–1.20) | 1.50 (1.40–1.60) | 0.733 | ≤ 0.20 |",
		"| 4.0 GB image | 160000 | 4.00 GB | 12.0 (11.0–13.0) |",
		"4.0 GB image / 0.5 GB image: 1.091 for 8.0× the data.",
		"- QEMU runs TCG.",
		"| dracut | 059-4 |",
		"medians of 3 runs",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

// TestGoFloorFinding: with the Go floor booted, the start-up finding sets Go's runtime apart.
func TestGoFloorFinding(t *testing.T) {
	res := sample()
	res.Initrds = append(res.Initrds, Initrd{Name: GoFloorName, GoFloor: true, Build: "go build", SizeBytes: 5e6,
		Boots: []Boot{{RunInitS: 2, RealInitS: 4.3, FirstLineS: 2.13}, {RunInitS: 2, RealInitS: 4.2, FirstLineS: 2.12}, {RunInitS: 2, RealInitS: 4.4, FirstLineS: 2.14}}})
	md := Markdown(res, "latest.svg")
	for _, want := range []string{
		"which leaves 5 ms of the 50 for Go's runtime start, package init and dockerinit's work before its line; the Go floor, the same work as a plain static Go program, takes 130 ms to its first line, 2.6x the limit: Go's runtime alone costs 85 ms here",
		"| | dockerinit (generic) | initramfs-tools | dracut | floor | floor (Go) |",
		`| "Run /init" to its first log line (ms) | 60 (40–200) | — | — | 45 (40–50) | 130 (120–140) |`,
		`| "Run /init" to real init (vs floor) | 2.50 s | 2.20 s | 1.136 | ≤ 1.15 | met |`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

func TestChart(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  Results
		want []string
	}{
		{"sample", sample(), []string{"dockerinit (generic)", "initramfs-tools", "load modules: 1500 ms", "make rw layer",
			"initramfs (no per-step times)", "0.125 (target ≤ 0.20)", "4.50 s (initramfs 2.50 s)",
			`dockerinit (generic), the median boot from "Run /init" to the real init (2500 ms), step by step`, "1500 ms", "940 ms"}},
		{"nothing measured", Results{}, []string{"no boots were measured", "not measured"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svg := Chart(tc.res)
			var texts strings.Builder
			dec := xml.NewDecoder(bytes.NewReader(svg))
			for {
				tok, err := dec.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("the chart is not well-formed XML: %v\n%s", err, svg)
				}
				switch tok := tok.(type) {
				case xml.CharData:
					texts.Write(tok)
					texts.WriteString("\n")
				case xml.StartElement:
					for _, a := range tok.Attr {
						if (a.Name.Local == "width" || a.Name.Local == "height") && strings.HasPrefix(a.Value, "-") {
							t.Errorf("<%s> with a negative %s", tok.Name.Local, a.Name.Local)
						}
					}
				}
			}
			for _, want := range tc.want {
				if !strings.Contains(texts.String(), want) {
					t.Errorf("the chart does not show %q; its texts:\n%s", want, texts.String())
				}
			}
		})
	}
}

func TestUpdateReadme(t *testing.T) {
	block := func(s string) string { return readmeBegin + "\n" + s + readmeEnd + "\n" }
	for _, tc := range []struct{ name, readme, want string }{
		{"first run appends", "# x\n\nText.\n", "# x\n\nText.\n\n## Performance\n\n" + block("new\n")},
		{"no final newline", "# x", "# x\n\n## Performance\n\n" + block("new\n")},
		{"later run replaces only the section", "# x\n\n## Performance\n\n" + block("old\n") + "\n## After\n",
			"# x\n\n## Performance\n\n" + block("new\n") + "\n## After\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := UpdateReadme(tc.readme, "new\n")
			if got != tc.want {
				t.Errorf("UpdateReadme = %q, want %q", got, tc.want)
			}
			if again := UpdateReadme(got, "new\n"); again != got {
				t.Errorf("a second update changed the README again:\n%q\nthen\n%q", got, again)
			}
		})
	}
}

func TestReadmeSection(t *testing.T) {
	s := ReadmeSection(sample())
	for _, want := range []string{"| build time | 3.00 s | 25.00 s | 0.120 | ≤ 0.05 | **missed** |",
		"| UKI size (vs kernel + initramfs apart) | 13.20 MB | 13.00 MB | 1.015 | ≤ 1.05 | met |",
		"[bench/results/latest.md](bench/results/latest.md)", "(bench/results/latest.svg)"} {
		if !strings.Contains(s, want) {
			t.Errorf("the README section lacks %q:\n%s", want, s)
		}
	}
}
