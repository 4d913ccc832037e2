package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/gatehouse/gatehouse/bench/load"
	"github.com/gatehouse/gatehouse/bench/plot"
)

// loadSideBound is the proxy CPU use at saturation, in CPUs, below which the
// proxy was not what limited the throughput.
const loadSideBound = 0.9

// peerColors keeps a peer's colour the same in every chart.
var peerColors = map[string]string{
	"direct": "#4d4d4d", "gatehouse": "#d62728", "stdproxy": "#1f77b4",
	"nginx": "#2ca02c", "haproxy": "#ff7f0e", "caddy": "#9467bd",
}

func colorOf(name string, i int) string {
	if c, ok := peerColors[name]; ok {
		return c
	}
	return plot.Palette[(i+6)%len(plot.Palette)]
}

// WriteReport writes NAME.md, NAME.json and the NAME-*.svg plots into
// e.OutDir and returns the markdown's path.
func WriteReport(e *Env, rep *Report) (string, error) {
	if err := os.MkdirAll(e.OutDir, 0o755); err != nil {
		return "", err
	}
	files := map[string][]byte{}
	charts := rep.charts()
	for name, svg := range charts {
		files[name] = svg
	}
	files[rep.Scenario+".md"] = []byte(rep.Markdown(charts))
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	files[rep.Scenario+".json"] = append(js, '\n')
	// Plots of an earlier run with more levels would otherwise linger.
	old, _ := filepath.Glob(filepath.Join(e.OutDir, rep.Scenario+"-*.svg"))
	for _, f := range old {
		os.Remove(f)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(e.OutDir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(e.OutDir, rep.Scenario+".md"), nil
}

func isClosed(r *Run) bool { return r.Kind == "closed" }

func atLevel(l int) func(*Run) bool {
	return func(r *Run) bool { return r.Kind == "open" && r.Level == l }
}

// fmtStat renders a median with the range of the valid runs and marks
// invalid runs.
func fmtStat(s stat, f func(float64) string) string {
	out := fmtStatBare(s, f)
	if s.n > 0 && s.n < s.total {
		out += fmt.Sprintf(" ⚠%d/%d valid", s.n, s.total)
	}
	return out
}

// fmtStatBare is fmtStat for tables that count valid runs in a column of
// their own.
func fmtStatBare(s stat, f func(float64) string) string {
	if s.total == 0 {
		return "—"
	}
	out := f(s.median)
	if s.n >= 2 && f(s.lo) != f(s.hi) {
		out += " (" + f(s.lo) + "–" + f(s.hi) + ")"
	}
	if s.n == 0 {
		out = "**INVALID** " + out
	}
	return out
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

func us(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1fms", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

// fastLevels returns the indexes of the levels against the fast backend.
func (rep *Report) fastLevels() []int {
	var idx []int
	for i, l := range rep.Levels {
		if l.Backend == "fast" {
			idx = append(idx, i)
		}
	}
	return idx
}

func (rep *Report) direct() *PeerResult {
	for _, pr := range rep.Peers {
		if !pr.Proxy {
			return pr
		}
	}
	return nil
}

// Markdown renders the report; charts are the SVG files to link.
func (rep *Report) Markdown(charts map[string][]byte) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# %s\n\n", rep.Title)
	w("Produced by `%s` on %s (%s mode, took %s).\n\n", rep.Command, rep.Date.Format("2006-01-02 15:04 MST"), rep.Mode, rep.Wall.Round(time.Second))
	w("**Overhead** is what a proxy adds to a request: its latency minus the direct path's at the same rate, and the CPU its process tree spends per request. Lower is better everywhere.\n\n")

	w("## Machine and versions\n\n| | |\n|---|---|\n")
	m := rep.Machine
	w("| machine | %d CPUs, %s, %d GiB RAM |\n| OS, kernel | %s, Linux %s |\n| Go | %s |\n| tree | %s |\n", m.CPUs, m.CPUModel, m.MemGiB, m.OS, m.Kernel, m.Go, m.Tree)
	if m.Virt != "" {
		w("| virtualization | %s |\n", m.Virt)
	}
	for _, pr := range rep.Peers {
		v := pr.Version
		if pr.Skipped != "" {
			v = "**" + pr.Skipped + "**"
		}
		w("| %s | %s |\n", pr.Name, v)
	}
	for _, k := range []string{"wrk", "loadgen"} {
		if v, ok := rep.Tools[k]; ok {
			w("| %s | %s |\n", k, v)
		}
	}
	w("\n## Placement\n\n")
	for _, l := range rep.Placement {
		w("- %s\n", l)
	}
	p := rep.Plan
	w("\n## Method\n\n")
	w("- Every peer gets the same load: %d keep-alive connections, `GET /`, a backend answering 200 with a 64-byte body; peers keep idle connections to the backend, log nothing per request, and run one worker on one CPU.\n", p.Conns)
	if p.Closed > 0 {
		w("- **Saturation**: closed loop (%s), %s per run.\n", closedGen(rep), p.Closed)
	}
	if len(p.FixedRates) > 0 {
		w("- **Latency**: open loop at fixed rates, %s per run, measured from each request's *intended* send time (no coordinated omission).\n", p.Open)
	} else {
		w("- **Latency**: open loop (loadgen) at %s of the slowest proxy's median saturation rate (%s, %.0f req/s), %s per run, measured from each request's *intended* send time, so stalls are counted, not omitted.\n",
			pcts(p.Loads), rep.Slowest, rep.SlowestRPS, p.Open)
	}
	if p.Delay > 0 {
		w("- **Delayed backend**: the same with %s added by the backend, at %s.\n", p.Delay, pcts(p.DelayLoads))
	}
	w("- Each point is measured %d times; each repetition starts every peer afresh, in turn (warm-up %s after each start, unmeasured). Cells show the median of the valid runs and, in parentheses, their range.\n", p.Reps, p.Warmup)
	w("- **CPU/req**: utime+stime of the proxy's process tree (children included) from `/proc/PID/stat` before and after the run, over the requests completed (10 ms tick resolution). It counts only the proxy's own CPU, whoever else shares the core.\n")
	w("- **Validity**: a run is invalid if any request failed, the proxy died, or the generator fell behind its schedule (its own lag p99 > %s or max > %s). Invalid runs are kept, marked and excluded from medians (a cell with no valid run shows the invalid ones' median, marked **INVALID**). Every run is listed at the end.\n", p.MaxLagP99, p.MaxLag)
	w("- *others' CPU* (in the list of runs) is the CPU time that processes not part of the run used meanwhile, in CPUs: the machine may be shared.\n")

	rep.writeSaturation(&b)
	rep.writeLatency(&b)
	rep.writeGatehouse(&b)

	w("\n## Plots\n\n")
	for _, name := range sortedKeys(charts) {
		w("![%s](%s)\n\n", strings.TrimSuffix(name, ".svg"), name)
	}
	rep.writeRuns(&b)
	if len(rep.Notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range rep.Notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

func closedGen(rep *Report) string {
	if v := rep.Tools["wrk"]; v != "" && !strings.HasPrefix(v, "not installed") {
		return "`wrk -t1`"
	}
	return "loadgen closed mode (wrk not installed)"
}

func pcts(fs []float64) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%.0f%%", f*100))
	}
	return strings.Join(parts, ", ")
}

func (rep *Report) writeSaturation(b *strings.Builder) {
	if rep.Plan.Closed <= 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	fast := rep.fastLevels()
	mid := -1
	if len(fast) > 0 {
		mid = fast[len(fast)/2]
	}
	midLabel := "mid load"
	if mid >= 0 {
		midLabel = fmt.Sprintf("at %.0f req/s", rep.Levels[mid].Rate)
	}
	w("\n## Throughput and cost\n\n")
	w("| peer | req/s at saturation | proxy CPU used (cores) | CPU µs/req at saturation | CPU µs/req %s | peak RSS MiB | errors | valid runs |\n", midLabel)
	w("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	bound := false
	for _, pr := range rep.Peers {
		if pr.Skipped != "" {
			w("| %s | %s | | | | | | |\n", pr.Name, pr.Skipped)
			continue
		}
		rps := pr.summary(isClosed, func(r *Run) float64 { return r.RPS })
		errs, valid, total := pr.errorCount()
		note := ""
		if len(pr.Failures) > 0 {
			note = " ⚠ " + joinShort(pr.Failures)
		}
		if !pr.Proxy {
			w("| %s | %s | — | — | — | — | %d | %d/%d%s |\n", pr.Name, fmtStat(rps, f0), errs, valid, total, note)
			continue
		}
		util := pr.summary(isClosed, func(r *Run) float64 { return r.CPUUtil })
		utilCell := fmtStat(util, f2)
		if util.total > 0 && util.median < loadSideBound {
			utilCell += " ‡"
			bound = true
		}
		cpuMid := "—"
		if mid >= 0 {
			cpuMid = fmtStat(pr.summary(atLevel(mid), func(r *Run) float64 { return r.CPUPerReq }), f1)
		}
		rss := "—"
		if pr.PeakRSSKB > 0 {
			rss = fmt.Sprintf("%.1f", float64(pr.PeakRSSKB)/1024)
		}
		w("| %s | %s | %s | %s | %s | %s | %d | %d/%d%s |\n", pr.Name, fmtStat(rps, f0), utilCell,
			fmtStat(pr.summary(isClosed, func(r *Run) float64 { return r.CPUPerReq }), f1), cpuMid, rss, errs, valid, total, note)
	}
	if bound {
		w("\n‡ The proxy used less than %.0f%% of its CPU at \"saturation\": the load side (backend and generator sharing the other CPU) limited this throughput, not the proxy. Its CPU µs/req is still its own cost; compare proxies by CPU µs/req.\n", loadSideBound*100)
	}
}

// errorCount sums errors over all runs and counts valid runs.
func (pr *PeerResult) errorCount() (errs int64, valid, total int) {
	for _, r := range pr.Runs {
		errs += r.Errors
		total++
		if r.Valid {
			valid++
		}
	}
	return
}

func (rep *Report) writeLatency(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	direct := rep.direct()
	w("\n## Latency (open loop, from the intended send time, µs)\n\n")
	w("*added* = the peer's median percentile minus the direct path's at the same rate (n/a unless both have valid runs). *lag* = the generator's own lag p99 / max (µs), the worst of the runs; it is part of the latencies, for every peer alike. *load CPU* = the most the backend and generator used of their shared CPU in a run; above %.0f%% the run is invalid (the load side, not the proxy, was the limit).\n", loadSaturated*100)
	pcs := []struct {
		name string
		get  func(*Run) float64
	}{
		{"p50", func(r *Run) float64 { return float64(r.Lat.P50) }},
		{"p90", func(r *Run) float64 { return float64(r.Lat.P90) }},
		{"p99", func(r *Run) float64 { return float64(r.Lat.P99) }},
		{"p99.9", func(r *Run) float64 { return float64(r.Lat.P999) }},
		{"max", func(r *Run) float64 { return float64(r.Lat.Max) }},
	}
	if direct != nil {
		// What one request costs the load side, from the direct path's
		// lowest level: it bounds the rates an open loop can measure here
		// (on a software-virtualized guest, a lot).
		for li := range rep.Levels {
			var cost []float64
			for _, r := range direct.Runs {
				if atLevel(li)(r) && r.RPS > 0 && r.LoadCPU > 0 {
					cost = append(cost, r.LoadCPU/r.RPS*1e6)
				}
			}
			if len(cost) == 0 {
				continue
			}
			slices.Sort(cost)
			c := cost[len(cost)/2]
			w("\nOn this machine the load side (generator + backend, sharing one CPU) spends about %.0f µs of CPU per request in the open loop at %.0f req/s (direct path); the *load CPU* column shows how close each run came to saturating it, and runs that did are invalid whatever the proxy.\n", c, rep.Levels[li].Rate)
			break
		}
	}
	for li, l := range rep.Levels {
		w("\n### %s\n\n", l.Label())
		w("| peer | p50 | p90 | p99 | p99.9 | max | added p50 | added p99 | added p99.9 | lag | load CPU | errors | valid |\n")
		w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, pr := range rep.Peers {
			if pr.Skipped != "" {
				w("| %s | %s ||||||||||||\n", pr.Name, pr.Skipped)
				continue
			}
			sel := atLevel(li)
			var cells []string
			for _, pc := range pcs {
				cells = append(cells, fmtStatBare(pr.summary(sel, pc.get), us))
			}
			for _, pc := range pcs[0:4] {
				if pc.name == "p90" {
					continue
				}
				if !pr.Proxy || direct == nil {
					cells = append(cells, "—")
					continue
				}
				s, d := pr.summary(sel, pc.get), direct.summary(sel, pc.get)
				if s.n == 0 || d.n == 0 {
					cells = append(cells, "n/a")
					continue
				}
				cells = append(cells, fmt.Sprintf("%+.0f", s.median-d.median))
			}
			var lagP, lagM, errs int64
			var loadCPU float64
			valid, total := 0, 0
			for _, r := range pr.Runs {
				if sel(r) {
					lagP, lagM = max(lagP, r.LagP99), max(lagM, r.LagMax)
					loadCPU = max(loadCPU, r.LoadCPU)
					errs += r.Errors
					total++
					if r.Valid {
						valid++
					}
				}
			}
			w("| %s | %s | %d / %d | %.0f%% | %d | %d/%d |\n", pr.Name, strings.Join(cells, " | "), lagP, lagM, loadCPU*100, errs, valid, total)
		}
	}
}

func (rep *Report) writeGatehouse(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	direct := rep.direct()
	for _, pr := range rep.Peers {
		if !strings.HasPrefix(pr.Name, "gatehouse") {
			continue
		}
		w("\n## %s: overhead from its passports vs measured outside (µs)\n\n", pr.Name)
		if pr.Skipped != "" {
			w("%s: %s.\n", pr.Name, pr.Skipped)
			continue
		}
		w("Passport columns: Gatehouse's own per-request overhead histogram (`/admin/api/overhead`), median over the valid runs. External columns: Gatehouse's latency minus the direct path's.\n\n")
		w("| load | requests seen | passport p50 | p90 | p99 | p99.9 | max | external p50 | p99 | p99.9 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for li, l := range rep.Levels {
			sel := atLevel(li)
			var note string
			var have bool
			for _, r := range pr.Runs {
				if sel(r) {
					if r.Overhead != nil {
						have = true
					} else if note == "" {
						note = r.OverheadNote
					}
				}
			}
			var cells []string
			if have {
				hasO := func(r *Run) bool { return sel(r) && r.Overhead != nil }
				for _, get := range []func(*Run) float64{
					func(r *Run) float64 { return float64(r.Overhead.Count) },
					func(r *Run) float64 { return r.Overhead.P50 },
					func(r *Run) float64 { return r.Overhead.P90 },
					func(r *Run) float64 { return r.Overhead.P99 },
					func(r *Run) float64 { return r.Overhead.P999 },
					func(r *Run) float64 { return r.Overhead.Max },
				} {
					cells = append(cells, fmtStat(pr.summary(hasO, get), f0))
				}
			} else {
				if note == "" {
					note = "n/a: no run"
				}
				cells = []string{note, "", "", "", "", ""}
			}
			for _, get := range []func(*Run) float64{
				func(r *Run) float64 { return float64(r.Lat.P50) },
				func(r *Run) float64 { return float64(r.Lat.P99) },
				func(r *Run) float64 { return float64(r.Lat.P999) },
			} {
				s := pr.summary(sel, get)
				if direct == nil || s.n == 0 || direct.summary(sel, get).n == 0 {
					cells = append(cells, "n/a")
					continue
				}
				cells = append(cells, fmt.Sprintf("%+.0f", s.median-direct.summary(sel, get).median))
			}
			w("| %s | %s |\n", l.Label(), strings.Join(cells, " | "))
		}
	}
}

func (rep *Report) writeRuns(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n## All runs\n\n")
	w("| peer | load | rep | generator | requests | errors | req/s | CPU µs/req | p50 | p99 | p99.9 | max | lag p99/max | load CPU | others' CPU | status |\n")
	w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, pr := range rep.Peers {
		for _, r := range pr.Runs {
			what := "saturation"
			if r.Level >= 0 {
				what = rep.Levels[r.Level].Label()
			}
			status := "ok"
			if !r.Valid {
				status = "**INVALID**: " + joinShort(r.Problems)
			}
			cpu := "—"
			if pr.Proxy {
				cpu = f1(r.CPUPerReq)
			}
			lat := []string{"—", "—", "—", "—"}
			if r.Lat.Max > 0 {
				lat = []string{us(float64(r.Lat.P50)), us(float64(r.Lat.P99)), us(float64(r.Lat.P999)), us(float64(r.Lat.Max))}
			}
			lag := "—"
			if r.Kind == "open" {
				lag = fmt.Sprintf("%d/%d", r.LagP99, r.LagMax)
			}
			w("| %s | %s | %d | %s | %d | %d | %.0f | %s | %s | %s | %.0f%% | %.0f%% | %s |\n", pr.Name, what, r.Rep, r.Generator,
				r.Requests, r.Errors, r.RPS, cpu, strings.Join(lat, " | "), lag, r.LoadCPU*100, r.OtherCPU*100, status)
		}
		for _, f := range pr.Failures {
			w("| %s | | | | | | | | | | | | | | | **FAILED**: %s |\n", pr.Name, strings.ReplaceAll(f, "|", "/"))
		}
	}
}

// charts renders the report's SVG plots, keyed by file name.
func (rep *Report) charts() map[string][]byte {
	out := map[string][]byte{}
	footer := fmt.Sprintf("%s, %s mode, %s, %d CPUs %s", rep.Scenario, rep.Mode, rep.Date.Format("2006-01-02"), rep.Machine.CPUs, rep.Machine.CPUModel)
	for li, l := range rep.Levels {
		lc := plot.LineChart{
			Title:  "Latency by percentile: " + l.Label(),
			XLabel: "percentile (from the intended send time)",
			YLabel: "latency",
			LogY:   true,
			YFormat: func(v float64) string {
				if v >= 1000 {
					return fmt.Sprintf("%gms", v/1000)
				}
				return fmt.Sprintf("%gµs", v)
			},
			Footer: footer + "; dashed: no valid run, all runs shown",
		}
		xmax := 0.0
		for i, pr := range rep.Peers {
			h, dashed := mergedHist(pr, atLevel(li))
			if h == nil {
				continue
			}
			s := plot.Series{Name: pr.Name, Color: colorOf(pr.Name, i), Dashed: dashed}
			top := math.Min(5, math.Floor(math.Log10(float64(h.TotalCount()))*20)/20)
			xmax = math.Max(xmax, top)
			for x := 0.0; x <= top+1e-9; x += 0.05 {
				s.X = append(s.X, x)
				s.Y = append(s.Y, float64(h.ValueAtQuantile(100*(1-math.Pow(10, -x)))))
			}
			lc.Series = append(lc.Series, s)
		}
		if len(lc.Series) == 0 {
			continue
		}
		for x := 0; x <= int(math.Ceil(xmax)); x++ {
			lc.XTicks = append(lc.XTicks, plot.Tick{Value: float64(x), Label: ninesLabel(x)})
		}
		out[fmt.Sprintf("%s-latency-%d.svg", rep.Scenario, li+1)] = lc.SVG()
	}

	var proxies []*PeerResult
	for _, pr := range rep.Peers {
		if pr.Proxy && pr.Skipped == "" {
			proxies = append(proxies, pr)
		}
	}
	if len(proxies) == 0 {
		return out
	}
	cpu := plot.BarChart{Title: "Proxy CPU per request (median, whiskers: min–max)", YLabel: "CPU µs per request", Format: f1, Footer: footer}
	type point struct {
		name string
		sel  func(*Run) bool
	}
	var points []point
	if rep.Plan.Closed > 0 {
		points = append(points, point{"at saturation", isClosed})
	}
	for _, li := range rep.fastLevels() {
		points = append(points, point{fmt.Sprintf("at %.0f req/s", rep.Levels[li].Rate), atLevel(li)})
	}
	for _, pr := range proxies {
		cpu.Groups = append(cpu.Groups, pr.Name)
	}
	for i, pt := range points {
		s := plot.BarSeries{Name: pt.name, Color: plot.Palette[(i+2)%len(plot.Palette)]}
		for _, pr := range proxies {
			st := pr.summary(pt.sel, func(r *Run) float64 { return r.CPUPerReq })
			if st.total == 0 {
				s.Values, s.Lo, s.Hi = append(s.Values, math.NaN()), append(s.Lo, math.NaN()), append(s.Hi, math.NaN())
				continue
			}
			s.Values, s.Lo, s.Hi = append(s.Values, st.median), append(s.Lo, st.lo), append(s.Hi, st.hi)
		}
		cpu.Series = append(cpu.Series, s)
	}
	out[rep.Scenario+"-cpu.svg"] = cpu.SVG()

	if rep.Plan.Closed > 0 {
		tp := plot.BarChart{Title: "Throughput at saturation (median, whiskers: min–max)", YLabel: "requests per second", Format: f0, Footer: footer}
		s := plot.BarSeries{Name: "req/s", Color: plot.Palette[2]}
		for _, pr := range rep.Peers {
			if pr.Skipped != "" {
				continue
			}
			tp.Groups = append(tp.Groups, pr.Name)
			st := pr.summary(isClosed, func(r *Run) float64 { return r.RPS })
			if st.total == 0 {
				s.Values, s.Lo, s.Hi = append(s.Values, math.NaN()), append(s.Lo, math.NaN()), append(s.Hi, math.NaN())
				continue
			}
			s.Values, s.Lo, s.Hi = append(s.Values, st.median), append(s.Lo, st.lo), append(s.Hi, st.hi)
		}
		tp.Series = []plot.BarSeries{s}
		out[rep.Scenario+"-throughput.svg"] = tp.SVG()
	}
	return out
}

// mergedHist merges the latency histograms of the valid runs selected by sel;
// with no valid run, of all of them, and dashed is true.
func mergedHist(pr *PeerResult, sel func(*Run) bool) (h *hdrhistogram.Histogram, dashed bool) {
	for _, validOnly := range []bool{true, false} {
		for _, r := range pr.Runs {
			if !sel(r) || r.hist == nil || (validOnly && !r.Valid) {
				continue
			}
			if h == nil {
				h = load.NewHistogram()
			}
			h.Merge(r.hist)
		}
		if h != nil {
			return h, !validOnly
		}
	}
	return nil, false
}

func ninesLabel(x int) string {
	if x == 0 {
		return "0%"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.*f", max(0, x-2), 100*(1-math.Pow(10, -float64(x)))), ".") + "%"
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	// Latency plots in level order, then CPU, then throughput.
	rank := func(k string) string {
		switch {
		case strings.Contains(k, "-latency-"):
			n := strings.TrimSuffix(k[strings.LastIndex(k, "-")+1:], ".svg")
			return fmt.Sprintf("0%04s", n)
		case strings.HasSuffix(k, "-cpu.svg"):
			return "1"
		default:
			return "2" + k
		}
	}
	slices.SortFunc(ks, func(a, b string) int { return strings.Compare(rank(a), rank(b)) })
	return ks
}
