// Package plot draws the benchmark's charts as standalone SVG: line charts
// (latency by percentile on a "nines" axis) and grouped bar charts with
// min–max whiskers (CPU per request, throughput). It depends on nothing but
// the standard library.
package plot

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// Palette holds distinguishable colours, used in order by callers that want
// the same colour for the same series across charts.
var Palette = []string{"#4d4d4d", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// Tick is a labelled axis position.
type Tick struct {
	Value float64
	Label string
}

// Series is one line.
type Series struct {
	Name  string
	Color string
	// Dashed draws the line dashed (e.g. for invalid data).
	Dashed bool
	X, Y   []float64
}

// LineChart is an x/y chart of lines.
type LineChart struct {
	Title, XLabel, YLabel string
	// XTicks are drawn as given; the x range spans them.
	XTicks []Tick
	// LogY draws the y axis logarithmically (values must be positive).
	LogY bool
	// YFormat labels y ticks; default %g.
	YFormat func(float64) string
	Series  []Series
	// Footer is a line of small print under the chart.
	Footer string
}

const (
	width, height                      = 860, 500
	marginL, marginR, marginT, marginB = 80, 190, 50, 70
)

type canvas struct{ b bytes.Buffer }

func (c *canvas) f(format string, args ...any) { fmt.Fprintf(&c.b, format, args...) }

func (c *canvas) start(title, footer string) {
	c.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	c.f(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	c.f(`<text x="%d" y="28" font-size="16" font-weight="bold">%s</text>`+"\n", marginL, esc(title))
	if footer != "" {
		c.f(`<text x="%d" y="%d" font-size="10" fill="#666">%s</text>`+"\n", marginL, height-8, esc(footer))
	}
}

func (c *canvas) end() []byte {
	c.f("</svg>\n")
	return c.b.Bytes()
}

func esc(s string) string { return html.EscapeString(s) }

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// SVG renders the chart.
func (lc LineChart) SVG() []byte {
	var c canvas
	c.start(lc.Title, lc.Footer)
	yf := lc.YFormat
	if yf == nil {
		yf = func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, t := range lc.XTicks {
		xmin, xmax = math.Min(xmin, t.Value), math.Max(xmax, t.Value)
	}
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range lc.Series {
		for i, y := range s.Y {
			if lc.LogY && y <= 0 {
				continue
			}
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
			if len(lc.XTicks) == 0 {
				xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			}
		}
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 1, 10
	}
	if math.IsInf(xmin, 0) || xmin == xmax {
		xmin, xmax = 0, 1
	}
	var yticks []float64
	var ty func(float64) float64
	plotW, plotH := float64(width-marginL-marginR), float64(height-marginT-marginB)
	if lc.LogY {
		lo, hi := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if lo == hi {
			hi++
		}
		ymin, ymax = math.Pow(10, lo), math.Pow(10, hi)
		for d := lo; d < hi; d++ {
			for _, m := range []float64{1, 2, 5} {
				yticks = append(yticks, m*math.Pow(10, d))
			}
		}
		yticks = append(yticks, ymax)
		ty = func(v float64) float64 {
			return float64(marginT) + plotH*(1-(math.Log10(v)-lo)/(hi-lo))
		}
	} else {
		ymin = 0
		step := niceStep(ymax / 5)
		ymax = math.Ceil(ymax/step) * step
		for v := 0.0; v <= ymax+step/2; v += step {
			yticks = append(yticks, v)
		}
		ty = func(v float64) float64 { return float64(marginT) + plotH*(1-v/ymax) }
	}
	tx := func(v float64) float64 { return float64(marginL) + plotW*(v-xmin)/(xmax-xmin) }

	// Grid and axes.
	for _, v := range yticks {
		y := ty(v)
		c.f(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#e5e5e5"/>`+"\n", marginL, num(y), width-marginR, num(y))
		c.f(`<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", marginL-6, num(y+4), esc(yf(v)))
	}
	for _, t := range lc.XTicks {
		x := tx(t.Value)
		c.f(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#e5e5e5"/>`+"\n", num(x), marginT, num(x), height-marginB)
		c.f(`<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num(x), height-marginB+16, esc(t.Label))
	}
	c.f(`<rect x="%d" y="%d" width="%s" height="%s" fill="none" stroke="#333"/>`+"\n", marginL, marginT, num(plotW), num(plotH))
	c.f(`<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num(float64(marginL)+plotW/2), height-marginB+38, esc(lc.XLabel))
	c.f(`<text transform="translate(18 %s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", num(float64(marginT)+plotH/2), esc(lc.YLabel))

	// Lines and legend.
	for i, s := range lc.Series {
		var pts bytes.Buffer
		for j := range s.X {
			if j >= len(s.Y) || (lc.LogY && s.Y[j] <= 0) {
				continue
			}
			fmt.Fprintf(&pts, "%s,%s ", num(tx(s.X[j])), num(ty(math.Min(s.Y[j], ymax))))
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		c.f(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", s.Color, dash, bytes.TrimSpace(pts.Bytes()))
		ly := marginT + 10 + i*20
		c.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"%s/>`+"\n", width-marginR+12, ly, width-marginR+36, ly, s.Color, dash)
		c.f(`<text x="%d" y="%d">%s</text>`+"\n", width-marginR+42, ly+4, esc(s.Name))
	}
	return c.end()
}

// BarSeries is one bar per group; NaN values are drawn as missing.
type BarSeries struct {
	Name   string
	Color  string
	Values []float64
	// Lo and Hi, when set, draw a whisker from Lo to Hi.
	Lo, Hi []float64
}

// BarChart is a grouped bar chart.
type BarChart struct {
	Title, YLabel string
	Groups        []string
	Series        []BarSeries
	// Format labels values and y ticks; default %g.
	Format func(float64) string
	Footer string
}

// SVG renders the chart.
func (bc BarChart) SVG() []byte {
	var c canvas
	c.start(bc.Title, bc.Footer)
	f := bc.Format
	if f == nil {
		f = func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	}
	ymax := 0.0
	for _, s := range bc.Series {
		for i, v := range s.Values {
			if !math.IsNaN(v) {
				ymax = math.Max(ymax, v)
			}
			if i < len(s.Hi) && !math.IsNaN(s.Hi[i]) {
				ymax = math.Max(ymax, s.Hi[i])
			}
		}
	}
	if ymax <= 0 {
		ymax = 1
	}
	step := niceStep(ymax * 1.1 / 5)
	ymax = math.Ceil(ymax*1.1/step) * step
	plotW, plotH := float64(width-marginL-marginR), float64(height-marginT-marginB)
	ty := func(v float64) float64 { return float64(marginT) + plotH*(1-v/ymax) }
	for v := 0.0; v <= ymax+step/2; v += step {
		y := ty(v)
		c.f(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#e5e5e5"/>`+"\n", marginL, num(y), width-marginR, num(y))
		c.f(`<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", marginL-6, num(y+4), esc(f(v)))
	}
	c.f(`<rect x="%d" y="%d" width="%s" height="%s" fill="none" stroke="#333"/>`+"\n", marginL, marginT, num(plotW), num(plotH))
	c.f(`<text transform="translate(18 %s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", num(float64(marginT)+plotH/2), esc(bc.YLabel))
	ng, ns := len(bc.Groups), max(1, len(bc.Series))
	if ng == 0 {
		return c.end()
	}
	groupW := plotW / float64(ng)
	barW := groupW * 0.8 / float64(ns)
	for g, name := range bc.Groups {
		gx := float64(marginL) + groupW*float64(g)
		c.f(`<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num(gx+groupW/2), height-marginB+16, esc(name))
		for si, s := range bc.Series {
			if g >= len(s.Values) {
				continue
			}
			v := s.Values[g]
			x := gx + groupW*0.1 + barW*float64(si)
			if math.IsNaN(v) {
				c.f(`<text x="%s" y="%s" text-anchor="middle" font-size="10" fill="#999">n/a</text>`+"\n", num(x+barW/2), num(ty(0)-4))
				continue
			}
			c.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`+"\n", num(x), num(ty(v)), num(barW*0.92), num(ty(0)-ty(v)), s.Color)
			top := v
			if g < len(s.Lo) && g < len(s.Hi) && !math.IsNaN(s.Lo[g]) && !math.IsNaN(s.Hi[g]) {
				cx := x + barW*0.46
				c.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#000"/>`+"\n", num(cx), num(ty(s.Lo[g])), num(cx), num(ty(s.Hi[g])))
				for _, w := range []float64{s.Lo[g], s.Hi[g]} {
					c.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#000"/>`+"\n", num(cx-4), num(ty(w)), num(cx+4), num(ty(w)))
				}
				top = math.Max(top, s.Hi[g])
			}
			c.f(`<text x="%s" y="%s" text-anchor="middle" font-size="10">%s</text>`+"\n", num(x+barW*0.46), num(ty(top)-4), esc(f(v)))
		}
	}
	for i, s := range bc.Series {
		ly := marginT + 10 + i*20
		c.f(`<rect x="%d" y="%d" width="20" height="12" fill="%s"/>`+"\n", width-marginR+12, ly-6, s.Color)
		c.f(`<text x="%d" y="%d">%s</text>`+"\n", width-marginR+38, ly+4, esc(s.Name))
	}
	return c.end()
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
