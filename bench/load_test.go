package bench

import (
	"strings"
	"testing"
	"time"
)

// sampleLoad is a load run: a normal boot, a slower store case, a late disk and a case that
// did not boot.
func sampleLoad() *Load {
	steps := func(find, resolve, rw, top float64) []Step {
		return []Step{{"mount /proc /sys /dev /run", 9}, {StepFindRoot, find}, {StepResolve, resolve}, {StepRWLayer, rw}, {StepTopLayer, top}}
	}
	return &Load{
		Date:       time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC),
		Dockerinit: "abc1234",
		Cases: []LoadCase{
			{Name: "normal boot", Normal: true, Load: "no load.", Boots: []Boot{
				{RunInitS: 2, RealInitS: 3.5, Steps: steps(500, 70, 80, 40)},
				{RunInitS: 2, RealInitS: 3.4, Steps: steps(480, 60, 70, 30)},
				{RunInitS: 2, RealInitS: 3.6, Steps: steps(520, 80, 90, 50)},
			}},
			{Name: "store of 204 images", Load: "a big store.", Args: "docker_image=load_image_200", Boots: []Boot{
				{RunInitS: 2, RealInitS: 4.0, Steps: steps(500, 600, 80, 40)},
				{RunInitS: 2, RealInitS: 4.4, Steps: steps(500, 700, 80, 40)},
				{RunInitS: 2, RealInitS: 4.2, Steps: steps(500, 650, 80, 40)},
			}},
			{Name: "disk 20 s late", Load: "plugged late.", LateS: 20, Boots: []Boot{
				{RunInitS: 2.5, RealInitS: 21.3, RootFoundS: 19.7, RootWaitS: 17.05, DiskS: 19.4, Steps: steps(17050, 70, 80, 40)},
			}},
			{Name: "top layer of 100000 files", Load: "many files.", Failed: "the boot is stuck"},
		},
		Notes: []string{"Each case has its own rw layer."},
	}
}

func TestLoadTable(t *testing.T) {
	table := LoadTable(sampleLoad())
	for _, want := range []string{
		`| case | "Run /init" to real init (s) | vs normal | find root device (ms) | resolve image (ms) | make rw layer (ms) | apply top layer (ms) |`,
		"|---|--:|--:|--:|--:|--:|--:|\n",
		"| normal boot | 1.50 (1.40–1.60) | reference | 500 | 70 | 80 | 40 |",
		"| store of 204 images | 2.20 (2.00–2.40) | +0.70 s (1.47×) | 500 | 650 | 80 | 40 |",
		"| disk 20 s late | 18.80 | +17.30 s (12.53×) | 17050 | 70 | 80 | 40 |",
		"| top layer of 100000 files | did not boot | — | — | — | — | — |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("the load table lacks %q:\n%s", want, table)
		}
	}
	if n := strings.Count(table, "\n"); n != 6 {
		t.Errorf("%d lines, want a header, a rule and 4 cases:\n%s", n, table)
	}
}

func TestLateText(t *testing.T) {
	got := LateText(sampleLoad())
	want := "- disk 20 s late: the disk was hot-plugged 20.0 s after QEMU started; the guest kernel saw it at 19.40 s, " +
		"dockerinit found it at 19.70 s (it had waited 17.05 s for it, from 0.15 s after \"Run /init\"); the real init started at 21.30 s (guest clock of the median boot, which starts with the kernel, after QEMU's firmware).\n"
	if got != want {
		t.Errorf("LateText =\n%q\nwant\n%q", got, want)
	}
	l := sampleLoad()
	l.Cases = l.Cases[:2]
	if got := LateText(l); got != "" {
		t.Errorf("LateText without a late case = %q, want nothing", got)
	}
}

func TestStepMS(t *testing.T) {
	boots := sampleLoad().Cases[1].Boots
	if ms, ok := StepMS(boots, StepResolve); !ok || ms != 650 {
		t.Errorf("StepMS(resolve) = %v, %v; want the median 650", ms, ok)
	}
	if _, ok := StepMS(boots, "no such step"); ok {
		t.Error("StepMS found a step no boot has")
	}
}

func TestMarkdownLoad(t *testing.T) {
	res := sample()
	res.Load = sampleLoad()
	md := Markdown(res, "latest.svg")
	for _, want := range []string{
		"## Load\n\nMeasured 2026-12-07 01:00 UTC with dockerinit abc1234",
		"median (min–max) of 3 boots",
		"| store of 204 images | 2.20 (2.00–2.40) | +0.70 s (1.47×) |",
		"- **store of 204 images**: a big store. Kernel arguments: `docker_image=load_image_200`.",
		"- **top layer of 100000 files**: many files. **It did not boot:** the boot is stuck",
		"- disk 20 s late: the disk was hot-plugged 20.0 s after QEMU started",
		"Each case has its own rw layer.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	res.Load.Cases = append(res.Load.Cases, LoadCase{Name: "top layer of 4 files", Load: "four files.", HostApplyS: 2.5,
		Boots: []Boot{{RunInitS: 2, RealInitS: 95, Steps: []Step{{StepTopLayer, 90000}}}}})
	if md := Markdown(res, "latest.svg"); !strings.Contains(md, "- **top layer of 4 files**: four files. The same apply on the bench machine itself, "+
		"not emulated (toplayer.Apply and a syncfs): 2.50 s, 36× less than under QEMU.\n") {
		t.Errorf("the report does not compare the apply with the host's:\n%s", md)
	}
	if strings.Index(md, "## Load") > strings.Index(md, "## Notes") {
		t.Error("the Load section comes after the run's notes")
	}
	if strings.Contains(Markdown(sample(), "latest.svg"), "## Load") {
		t.Error("a run without load cases has a Load section")
	}

	readme := ReadmeSection(res)
	for _, want := range []string{"Under load (`make bench BENCHFLAGS='-only load'` measures these alone; 2026-12-07 01:00 UTC, dockerinit abc1234)",
		"| normal boot | 1.50 (1.40–1.60) | reference |", "- disk 20 s late: the disk was hot-plugged"} {
		if !strings.Contains(readme, want) {
			t.Errorf("the README section lacks %q:\n%s", want, readme)
		}
	}
}

// A load-only run keeps the other figures of the last run and replaces only its load cases.
func TestWithLoad(t *testing.T) {
	prev := sample()
	old := sampleLoad()
	old.Dockerinit = "old"
	prev.Load = old
	got := WithLoad(prev, sampleLoad())
	if got.Load.Dockerinit != "abc1234" {
		t.Errorf("the load cases are %q's, want the new run's", got.Load.Dockerinit)
	}
	if !got.Date.Equal(prev.Date) || len(got.Initrds) != len(prev.Initrds) || len(got.Notes) != len(prev.Notes) || got.Machine.CPU != prev.Machine.CPU {
		t.Error("WithLoad changed the full run's figures")
	}

	alone := Markdown(WithLoad(Results{}, sampleLoad()), "latest.svg")
	if !strings.Contains(alone, "No full run is recorded here, only the load cases") || !strings.Contains(alone, "## Load") {
		t.Errorf("a report of the load cases alone does not say so:\n%s", alone)
	}
}
