package bench

import (
	"cmp"
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// Chart geometry, in SVG user units (pixels).
const (
	chartWidth = 960
	labelWidth = 200 // row names on the left
	valueWidth = 170 // figures on the right of the bars
	rowHeight  = 22
	rowGap     = 10
)

// stepColors tell boot.json's steps apart; a step keeps its colour in every row.
var stepColors = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
	"#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"}

const (
	kernelColor = "#b0b0b0" // kernel start to "Run /init"
	restColor   = "#dddddd" // dockerinit after its last step: switch_root and exec
	theirColor  = "#6b6ecf" // another generator's initramfs, which reports no steps
	metColor    = "#2ca02c"
	missColor   = "#d62728"
)

// Chart draws the median boot of each initramfs as a timeline split into dockerinit's steps
// (from boot.json), and the ratios ours / baseline against their targets, as one SVG.
func Chart(res Results) []byte {
	c := &svg{}
	plotW := float64(chartWidth - labelWidth - valueWidth)
	y := 30.0
	c.text(10, y, "start", "bold", "Boot timeline: the median boot of each initramfs (guest clock, seconds since the kernel started)")
	y += 16

	type row struct {
		name string
		boot Boot
		ours bool
	}
	var rows []row
	end := 1.0
	for _, in := range res.Initrds {
		if b, ok := MedianBoot(in.Boots); ok {
			rows = append(rows, row{in.Name, b, in.Ours})
			end = max(end, b.RealInitS)
		}
	}
	end = math.Ceil(end)
	tick := math.Max(1, math.Ceil(end/12))
	x := func(s float64) float64 { return labelWidth + s/end*plotW }

	top := y
	bottom := top + float64(len(rows))*(rowHeight+rowGap)
	for s := 0.0; s <= end+1e-9; s += tick {
		c.line(x(s), top, x(s), bottom, "#eeeeee")
		c.text(x(s), bottom+14, "middle", "", fmt.Sprintf("%g", s))
	}
	colorOf := map[string]string{}
	var legend [][2]string // name, colour, in order of first appearance
	addLegend := func(name, color string) {
		for _, l := range legend {
			if l[0] == name {
				return
			}
		}
		legend = append(legend, [2]string{name, color})
	}
	addLegend("kernel", kernelColor)
	for _, r := range rows {
		c.text(labelWidth-8, y+15, "end", "", r.name)
		c.rect(x(0), y, x(r.boot.RunInitS)-x(0), rowHeight, kernelColor, "kernel")
		at := r.boot.RunInitS
		if r.ours {
			for _, st := range r.boot.Steps {
				col, ok := colorOf[st.Name]
				if !ok {
					col = stepColors[len(colorOf)%len(stepColors)]
					colorOf[st.Name] = col
				}
				addLegend(st.Name, col)
				w := math.Min(st.MS/1000, r.boot.RealInitS-at)
				c.rect(x(at), y, x(at+w)-x(at), rowHeight, col, fmt.Sprintf("%s: %.0f ms", st.Name, st.MS))
				at += w
			}
			addLegend("switch_root and exec of the real init", restColor)
			c.rect(x(at), y, x(r.boot.RealInitS)-x(at), rowHeight, restColor, "switch_root and exec of the real init")
		} else {
			addLegend("initramfs (no per-step times)", theirColor)
			c.rect(x(at), y, x(r.boot.RealInitS)-x(at), rowHeight, theirColor, "initramfs")
		}
		c.text(x(r.boot.RealInitS)+6, y+15, "start", "",
			fmt.Sprintf("%.2f s (initramfs %.2f s)", r.boot.RealInitS, r.boot.InitramfsS()))
		y += rowHeight + rowGap
	}
	if len(rows) == 0 {
		c.text(labelWidth, y+15, "start", "", "no boots were measured")
		y += rowHeight + rowGap
	}
	y = bottom + 36

	lx := 10.0
	for _, l := range legend {
		w := 26 + 6.6*float64(len(l[0]))
		if lx+w > chartWidth {
			lx, y = 10, y+18
		}
		c.rect(lx, y-10, 12, 12, l[1], l[0])
		c.text(lx+16, y, "start", "", l[0])
		lx += w
	}

	y = stepsPanel(c, res, y+40, plotW, colorOf)

	y += 30
	c.text(10, y, "start", "bold", fmt.Sprintf("Ours / %s (or the comparison the row names), lower is better; the black line marks each target", Baseline))
	y += 16
	// A limit on our own figure (Go's start-up) is no ratio: it stays in the tables.
	targets := slices.DeleteFunc(res.Targets(), func(r Ratio) bool { return r.Limit })
	scale := 1.2
	for _, r := range targets {
		scale = math.Max(scale, 1.1*math.Max(r.Value(), r.Max))
	}
	rx := func(v float64) float64 { return labelWidth + v/scale*plotW }
	for _, r := range targets {
		c.text(labelWidth-8, y+15, "end", "", shorten(r.Metric, 30))
		switch {
		case !r.Measured():
			c.text(rx(0)+6, y+15, "start", "", "not measured")
		default:
			col := metColor
			if !r.Met() {
				col = missColor
			}
			c.rect(rx(0), y, rx(r.Value())-rx(0), rowHeight, col, fmt.Sprintf("%s: %.3f", r.Metric, r.Value()))
			c.text(math.Max(rx(r.Value()), rx(r.Max))+6, y+15, "start", "", fmt.Sprintf("%.3f (target ≤ %.2f)", r.Value(), r.Max))
		}
		c.line(rx(r.Max), y-3, rx(r.Max), y+rowHeight+3, "#000000")
		y += rowHeight + rowGap
	}
	return c.finish(y + 10)
}

// stepsPanel draws dockerinit's median boot step by step, from "Run /init" on, one row a step,
// so that steps of a few milliseconds are seen too; it returns the y below it.
func stepsPanel(c *svg, res Results, y, plotW float64, colorOf map[string]string) float64 {
	var b Boot
	name := ""
	for _, in := range res.Initrds {
		if mb, ok := MedianBoot(in.Boots); ok && in.Ours && len(mb.Steps) > 0 {
			b, name = mb, in.Name
			break
		}
	}
	if name == "" {
		return y
	}
	total := b.InitramfsS() * 1000
	c.text(10, y, "start", "bold", fmt.Sprintf("%s, the median boot from \"Run /init\" to the real init (%.0f ms), step by step", name, total))
	y += 10
	x := func(ms float64) float64 { return labelWidth + ms/total*plotW }
	const h = 14
	at := 0.0
	for _, st := range b.Steps {
		w := math.Min(st.MS, total-at)
		c.text(labelWidth-8, y+11, "end", "", shorten(st.Name, 30))
		c.rect(x(at), y, x(at+w)-x(at), h, cmp.Or(colorOf[st.Name], stepColors[0]), st.Name)
		c.text(x(at+w)+6, y+11, "start", "", fmt.Sprintf("%.0f ms", st.MS))
		at += w
		y += h + 4
	}
	c.text(labelWidth-8, y+11, "end", "", "switch_root, exec")
	c.rect(x(at), y, x(total)-x(at), h, restColor, "switch_root and exec of the real init")
	c.text(x(total)+6, y+11, "start", "", fmt.Sprintf("%.0f ms", total-at))
	return y + h + 4
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// svg collects the elements of a chart whose height is known only at the end.
type svg struct{ body strings.Builder }

func (c *svg) rect(x, y, w, h float64, fill, title string) {
	fmt.Fprintf(&c.body, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
		x, y, math.Max(w, 0), h, fill, html.EscapeString(title))
}

func (c *svg) line(x1, y1, x2, y2 float64, stroke string) {
	fmt.Fprintf(&c.body, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", x1, y1, x2, y2, stroke)
}

func (c *svg) text(x, y float64, anchor, weight, s string) {
	w := ""
	if weight != "" {
		w = ` font-weight="` + weight + `"`
	}
	fmt.Fprintf(&c.body, `<text x="%.1f" y="%.1f" text-anchor="%s"%s>%s</text>`+"\n", x, y, anchor, w, html.EscapeString(s))
}

func (c *svg) finish(height float64) []byte {
	return fmt.Appendf(nil, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" `+
		`font-family="sans-serif" font-size="12">`+"\n"+`<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n%s</svg>\n",
		chartWidth, height, chartWidth, height, c.body.String())
}
