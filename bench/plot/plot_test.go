package plot

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// wellFormed fails the test unless b parses as XML.
func wellFormed(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, b)
		}
	}
}

func TestLineChartDrawsEverySeriesAndEscapesNames(t *testing.T) {
	lc := LineChart{
		Title: "latency <p99>", XLabel: "percentile", YLabel: "µs", LogY: true,
		XTicks: []Tick{{0, "0%"}, {1, "90%"}, {2, "99%"}},
		Series: []Series{
			{Name: "a&b", Color: "#000", X: []float64{0, 1, 2}, Y: []float64{50, 80, 300}},
			{Name: "c", Color: "#f00", Dashed: true, X: []float64{0, 1, 2}, Y: []float64{60, 0, 900}},
		},
	}
	svg := lc.SVG()
	wellFormed(t, svg)
	s := string(svg)
	if n := strings.Count(s, "<polyline"); n != 2 {
		t.Errorf("%d polylines, want 2", n)
	}
	for _, want := range []string{"a&amp;b", "latency &lt;p99&gt;", "99%", "stroke-dasharray"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// The zero of series c cannot be drawn on a log axis and must be left out
	// rather than drawn off the chart.
	if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
		t.Errorf("SVG has non-finite coordinates")
	}
}

func TestBarChartMarksMissingValues(t *testing.T) {
	bc := BarChart{
		Title: "cpu", YLabel: "µs", Groups: []string{"x", "y"},
		Series: []BarSeries{{Name: "s", Color: "#00f", Values: []float64{12, math.NaN()}, Lo: []float64{11, math.NaN()}, Hi: []float64{14, math.NaN()}}},
	}
	svg := bc.SVG()
	wellFormed(t, svg)
	s := string(svg)
	if !strings.Contains(s, "n/a") {
		t.Error("missing value not marked n/a")
	}
	if strings.Count(s, `fill="#00f"`) != 2 { // one bar, one legend swatch
		t.Errorf("want one bar and one legend swatch:\n%s", s)
	}
}

func TestNiceStep(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.7, 1}, {1.2, 2}, {3, 5}, {7, 10}, {23, 50}, {0, 1}} {
		if got := niceStep(c.in); got != c.want {
			t.Errorf("niceStep(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
