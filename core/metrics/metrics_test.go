package metrics

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gatehouse/gatehouse/core/admission"
	"github.com/gatehouse/gatehouse/core/balance"
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/core/ratelimit"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// record builds a finished request from a passport's text form.
func record(t testing.TB, start time.Time, route string, outcome failure.Kind, status int, text string) *proxy.Record {
	t.Helper()
	stamps, err := passport.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: start}
	p := passport.New(clk)
	for _, s := range stamps {
		clk.t = start.Add(s.Offset)
		p.StampNote(s.State, s.Note)
	}
	return &proxy.Record{ID: "id", Listener: "public", Method: "GET", Path: "/", Route: route, Service: "users",
		Status: status, Outcome: outcome, Passport: p}
}

const ok200 = "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.020ms=VALIDATED +0.030ms=SHAPED +0.040ms=ADMITTED " +
	"+0.050ms=ROUTED +0.060ms=ENDPOINT_PICKED(10.0.0.1:80) +0.070ms=CONN_ACQUIRED(reused) +0.080ms=REQ_HEADERS_SENT " +
	"+1.080ms=RESP_HEADERS_RECEIVED +1.090ms=RESPONDED +1.200ms=RESP_BODY_SENT +1.210ms=DONE"

const noRoute = "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.025ms=FAILED(no_route)"

// TestMetricNamesAndLabelsGolden pins every metric family's name, type and
// label names (the contract with dashboards and alerts). Run with -update
// after an intended change.
func TestMetricNamesAndLabelsGolden(t *testing.T) {
	m := New(func() float64 { return 3 })
	// Admission and rate limits (admission.go) export only what the running
	// configuration has: give the collector one of each.
	lim := admission.New(admission.Options{InitialLimit: 20, MinLimit: 1, MaxLimit: 100, MaxQueue: 10,
		QueueTimeout: time.Second, Target: 10 * time.Millisecond})
	rd := ratelimit.NewRedis(ratelimit.RedisOptions{Address: "127.0.0.1:1", Timeout: 20 * time.Millisecond,
		ProbeInterval: time.Second, PoolSize: 1, KeyPrefix: "t:"}) // never called: no connection
	defer rd.Close()
	m.Registry.MustRegister(
		HookCollector{Hooks: func() []HookStat {
			return []HookStat{{Hook: "auth", Scope: "global", Version: "v1", Stats: &hook.Stats{}}}
		},
			Scripts: func() []ScriptStat { return []ScriptStat{{Name: "auth", Version: "v1"}} }},
		EndpointCollector{Endpoints: func() []EndpointStat {
			return []EndpointStat{{Service: "users", Addr: "10.0.0.1:80", Stats: balance.Stats{Healthy: true}}}
		}},
		TraceCollector{Stats: func() TraceStat { return TraceStat{} }},
		PluginCollector{Plugins: func() []PluginStat {
			return []PluginStat{{Name: "p", Version: "1", Failures: map[string]int64{"timeout": 0}}}
		}},
		ShapingCollector{Shaping: func() ([]proxy.AdmissionStat, []proxy.RateLimitStat, *ratelimit.Redis) {
			return []proxy.AdmissionStat{{Service: "users", Limiter: lim}},
				[]proxy.RateLimitStat{{Route: "api", Limiter: ratelimit.NewLimiter("api", ratelimit.Rule{Rate: 10, Per: time.Second, Burst: 10}, 100, rd)}},
				rd
		}},
	)
	start := time.Unix(1000, 0)
	m.Observe(record(t, start, "api", failure.Success, 200, ok200))
	m.Observe(record(t, start, "", failure.NoRoute, 404, noRoute))
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range fams {
		name := f.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue // the client library's, versioned with it
		}
		labels := map[string]bool{}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		names := make([]string, 0, len(labels))
		for l := range labels {
			names = append(names, l)
		}
		sort.Strings(names)
		lines = append(lines, name+" "+strings.ToLower(f.GetType().String())+" {"+strings.Join(names, ",")+"}")
	}
	sort.Strings(lines)
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update ./core/metrics)", err)
	}
	if got != string(want) {
		t.Fatalf("metric families changed; if intended, run with -update.\ngot:\n%s\nwant:\n%s", got, want)
	}
	hasGo := slices.ContainsFunc(fams, func(f *dto.MetricFamily) bool { return f.GetName() == "go_goroutines" })
	hasProc := slices.ContainsFunc(fams, func(f *dto.MetricFamily) bool { return strings.HasPrefix(f.GetName(), "process_") })
	if !hasGo || !hasProc {
		t.Fatalf("Go runtime (%v) and process (%v) collectors missing", hasGo, hasProc)
	}
}

// TestHistogramBuckets checks that known durations land in the right
// buckets, at microsecond precision.
func TestHistogramBuckets(t *testing.T) {
	m := New(nil)
	start := time.Unix(1000, 0)
	// Overhead = total - waiting. ok200 waits 0.010ms for the client's
	// headers, 1.000ms for the endpoint and 0.110ms for the body: overhead
	// is 1.210 - 1.120 = 0.090ms.
	for i := 0; i < 10; i++ {
		m.Observe(record(t, start, "api", failure.Success, 200, ok200))
	}
	fams, _ := m.Registry.Gather()
	find := func(name string) *dto.Histogram {
		for _, f := range fams {
			if f.GetName() == name {
				return f.GetMetric()[0].GetHistogram()
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	check := func(h *dto.Histogram, v float64) {
		t.Helper()
		if h.GetSampleCount() != 10 {
			t.Fatalf("count %d", h.GetSampleCount())
		}
		var lower float64
		for _, b := range h.GetBucket() {
			if b.GetCumulativeCount() == 10 {
				if !(lower < v && v <= b.GetUpperBound()) {
					t.Fatalf("%v landed in (%v, %v]", v, lower, b.GetUpperBound())
				}
				if b.GetUpperBound()/lower > 1.16 {
					t.Fatalf("bucket (%v, %v] wider than 16 per decade", lower, b.GetUpperBound())
				}
				return
			}
			if b.GetCumulativeCount() != 0 {
				t.Fatalf("%v spread over buckets: %v", v, h.GetBucket())
			}
			lower = b.GetUpperBound()
		}
		t.Fatalf("%v in no bucket", v)
	}
	check(find("gatehouse_overhead_seconds"), 90e-6)
	check(find("gatehouse_request_duration_seconds"), 1.21e-3)
	if s := find("gatehouse_overhead_seconds").GetSampleSum(); s < 899e-6 || s > 901e-6 {
		t.Fatalf("overhead sum %v, want 10 × 90µs", s)
	}
}

func TestKeyNumbersAndGraph(t *testing.T) {
	now := time.Unix(10_000, 0)
	m := NewWithOptions(Options{Now: func() time.Time { return now }, Passports: 4})
	// 60s of traffic: 100 requests per second, 1 in 10 a 502.
	for s := 0; s < 60; s++ {
		for i := 0; i < 100; i++ {
			start := time.Unix(10_000-60+int64(s), int64(i)*int64(10*time.Millisecond))
			if i%10 == 0 {
				r := record(t, start, "api", failure.UpstreamReset, 502, "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.020ms=VALIDATED "+
					"+0.030ms=SHAPED +0.040ms=ADMITTED +0.050ms=ROUTED +0.060ms=ENDPOINT_PICKED(e) +0.070ms=CONN_ACQUIRED(reused) "+
					"+0.080ms=REQ_HEADERS_SENT +0.500ms=FAILED(upstream_reset)")
				m.Observe(r)
				continue
			}
			m.Observe(record(t, start, "api", failure.Success, 200, ok200))
		}
	}
	m.Observe(record(t, now.Add(-time.Second), "", failure.NoRoute, 404, noRoute))
	k := m.Key(false)
	if k.Requests != 6001 || k.ErrorCount != 600 {
		t.Fatalf("counts %d/%d", k.Requests, k.ErrorCount)
	}
	if k.Rate.M1 < 90 || k.Rate.M1 > 110 || k.ErrorRatio < 0.09 || k.ErrorRatio > 0.11 {
		t.Fatalf("rate %+v error ratio %v", k.Rate, k.ErrorRatio)
	}
	// The window is the last minute in 10s slots: the first 10s of traffic
	// (1000 requests) fell out of it.
	if k.Overhead.Count != 5001 || k.Overhead.P50 != 90 {
		t.Fatalf("overhead %+v, want 5001 at 90µs", k.Overhead)
	}
	g := m.Graph()
	edge := func(from, to string) Edge {
		for _, e := range g.Edges {
			if e.From == from && e.To == to {
				return e
			}
		}
		t.Fatalf("no edge %s→%s", from, to)
		return Edge{}
	}
	if e := edge("REQ_HEADERS_SENT", "RESP_HEADERS_RECEIVED"); e.Count != 5400 || e.P99us < 1000 || e.P99us > 1125 {
		t.Fatalf("happy edge %+v, want 5400 at 1ms", e)
	}
	if e := edge("REQ_HEADERS_SENT", "FAILED"); e.Count != 600 || !e.Failure || e.P50us < 420 || e.P50us > 420*1.125 {
		t.Fatalf("failure exit %+v, want 600 at 420µs", e)
	}
	if e := edge("HEADERS_READ", "FAILED"); e.Count != 1 {
		t.Fatalf("no_route exit %+v", e)
	}
	if e := edge("QUEUED", "ADMITTED"); e.Count != 0 {
		t.Fatalf("untaken edge %+v", e)
	}
	// A minute later, the recent counts only hold what came since.
	now = now.Add(61 * time.Second)
	m.Observe(record(t, now.Add(-time.Second), "api", failure.Success, 200, ok200))
	g = m.Graph()
	if e := edge("REQ_HEADERS_SENT", "RESP_HEADERS_RECEIVED"); e.Count != 5401 || e.Recent != 1 {
		t.Fatalf("after a minute: %+v", e)
	}
	m.Sample()
	if h := m.Key(true).History; len(h) != 1 || h[0].Rate <= 0 {
		t.Fatalf("history %+v", h)
	}
	if n := len(m.Recent.Snapshot()); n != 4 {
		t.Fatalf("recent ring holds %d, want its size 4", n)
	}
	if f := m.Failed.Snapshot(); len(f) != 4 || f[0].Outcome != "no_route" && f[0].Outcome != "upstream_reset" {
		t.Fatalf("failed ring %d entries", len(f))
	}
}

func TestSlowestKeepsTheSlowest(t *testing.T) {
	s := NewSlowest(3, time.Minute)
	start := time.Unix(1000, 0)
	for i, ms := range []int{5, 1, 9, 3, 7, 2, 8} {
		r := record(t, start.Add(time.Duration(i)*time.Second), "api", failure.Success, 200,
			"+0.000ms=ACCEPTED +"+itoa(ms)+".000ms=HEADERS_READ +"+itoa(ms)+".000ms=FAILED(internal)")
		s.Add(r)
	}
	var got []time.Duration
	for _, e := range s.Snapshot() {
		got = append(got, e.Total)
	}
	if !slices.Equal(got, []time.Duration{9 * time.Millisecond, 8 * time.Millisecond, 7 * time.Millisecond}) {
		t.Fatalf("slowest %v", got)
	}
	// After the window, a fast request replaces an expired one.
	s.Add(record(t, start.Add(5*time.Minute), "api", failure.Success, 200, "+0.000ms=ACCEPTED +1.000ms=FAILED(internal)"))
	if n := len(s.Snapshot()); n != 3 || s.Snapshot()[2].Total != time.Millisecond {
		t.Fatalf("after the window: %v", s.Snapshot())
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	m := New(nil)
	r := record(t, time.Unix(1000, 0), "api", failure.Success, 200, ok200)
	m.Observe(r)
	m.Observe(r)
	if n := testing.AllocsPerRun(200, func() { m.Observe(r) }); n != 0 {
		t.Fatalf("Observe allocates %v times per request", n)
	}
}

// BenchmarkObserve is the per-request cost of deriving metrics, key
// numbers, edges and kept passports from a happy-path passport.
func BenchmarkObserve(b *testing.B) {
	m := New(nil)
	r := record(b, time.Unix(1000, 0), "api", failure.Success, 200, ok200)
	m.Observe(r)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNanos()
	for i := 0; i < b.N; i++ {
		m.Observe(r)
	}
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNanos is the process's CPU time so far (user and system), in ns:
// benchmarks report it per op, which a busy machine does not inflate.
func cpuNanos() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestLayoutMatchesSearch checks the search-free bucket lookup against a
// plain search of the bounds, at every bound, next to it and between.
func TestLayoutMatchesSearch(t *testing.T) {
	for _, bounds := range [][]float64{durationBuckets(), overheadBuckets()} {
		l := newLayout(bounds)
		want := func(v int64) int { // the first bound v (ns) does not exceed
			return sort.Search(len(l.ns), func(i int) bool { return v <= l.ns[i] })
		}
		check := func(v int64) {
			if got, w := l.index(v), want(v); got != w {
				t.Fatalf("index(%dns) = %d, want %d", v, got, w)
			}
		}
		for _, b := range l.ns {
			for d := int64(-2); d <= 2; d++ {
				check(b + d)
			}
		}
		for v := int64(0); v < 1<<40; v = v*17/16 + 1 {
			check(v)
		}
		check(1 << 62)
	}
}

// TestCountsPerSeries checks the exported request counts per label set,
// and that observing while scraping and reading the page's numbers is
// race-free (run with -race).
func TestCountsPerSeries(t *testing.T) {
	m := New(nil)
	start := time.Unix(1000, 0)
	ok := record(t, start, "api", failure.Success, 200, ok200)
	miss := record(t, start, "", failure.NoRoute, 404, noRoute)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				if i%5 == 4 {
					m.Observe(miss)
				} else {
					m.Observe(ok)
				}
				if i%50 == 0 {
					m.Registry.Gather()
					m.Graph()
					m.Key(true)
					m.Overhead(false)
				}
			}
		}()
	}
	wg.Wait()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var durations uint64
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			switch f.GetName() {
			case "gatehouse_requests_total":
				got[strings.Join(ls, ",")] = mt.GetCounter().GetValue()
			case "gatehouse_request_duration_seconds":
				durations += mt.GetHistogram().GetSampleCount()
			}
		}
	}
	want := map[string]float64{
		"code=200,listener=public,outcome=success,route=api,service=users": 800,
		"code=404,listener=public,outcome=no_route,route=-,service=users":  200,
	}
	if len(got) != len(want) || durations != 1000 {
		t.Fatalf("series %v, durations %d; want %v and 1000", got, durations, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("series %v; want %v", got, want)
		}
	}
	if o := m.Overhead(false); o.Count != 1000 {
		t.Fatalf("overhead since reset counts %d, want 1000", o.Count)
	}
}

// TestLiveRateWithinASecond pins the bug where the admin page showed 0.00
// req/s and empty sparklines while traffic flowed: the meters fold events
// in every 5s, and history was sampled every 5s from them.
func TestLiveRateWithinASecond(t *testing.T) {
	now := time.Unix(20_000, 0)
	m := NewWithOptions(Options{Now: func() time.Time { return now }})
	var samples int
	// 200 requests per second for 1.2s, one in four a 502, sampled every second.
	for i := 0; i < 240; i++ {
		start := now.Add(-1210 * time.Microsecond) // ends at now
		if i%4 == 0 {
			m.Observe(record(t, start, "api", failure.UpstreamReset, 502, "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ "+
				"+0.020ms=VALIDATED +0.030ms=SHAPED +0.040ms=ADMITTED +0.050ms=ROUTED +0.060ms=ENDPOINT_PICKED(e) "+
				"+0.070ms=CONN_ACQUIRED(reused) +0.080ms=REQ_HEADERS_SENT +1.210ms=FAILED(upstream_reset)"))
		} else {
			m.Observe(record(t, start, "api", failure.Success, 200, ok200))
		}
		now = now.Add(5 * time.Millisecond)
		if i%200 == 199 {
			m.Sample()
			samples++
		}
	}
	m.Sample()
	samples++
	k := m.Key(true)
	if k.Rate.M1 != 0 {
		t.Fatalf("the 1-minute average moved within 1.2s (%v): this test no longer shows why Live exists", k.Rate.M1)
	}
	if k.Live.RPS < 190 || k.Live.RPS > 210 || k.Live.ErrorRatio < 0.24 || k.Live.ErrorRatio > 0.26 ||
		k.Live.Errors < 45 || k.Live.Errors > 55 || k.Live.WindowS < 1.1 || k.Live.WindowS > 1.3 {
		t.Fatalf("live numbers after 1.2s at 200/s, 25%% errors: %+v", k.Live)
	}
	if len(k.History) != samples {
		t.Fatalf("history has %d points, want %d (one per Sample)", len(k.History), samples)
	}
	for _, p := range k.History {
		if p.Rate < 150 || p.ErrorRatio < 0.2 || p.P999us <= 0 {
			t.Fatalf("history point %+v: want the live rate and error ratio", p)
		}
	}
	// The meters stay what they were: after a minute at the same rate the
	// 1-minute average is the rate.
	for i := 0; i < 60*200; i++ {
		m.Observe(record(t, now.Add(-1210*time.Microsecond), "api", failure.Success, 200, ok200))
		now = now.Add(5 * time.Millisecond)
	}
	if k := m.Key(false); k.Rate.M1 < 150 || k.Rate.M1 > 210 || k.Live.RPS < 190 || k.Live.RPS > 210 || k.Live.WindowS < LiveWindow-1 || k.Live.WindowS > LiveWindow {
		t.Fatalf("after a minute: rate %+v live %+v", k.Rate, k.Live)
	}
	// Ten quiet seconds: the live rate is gone, the average decays.
	now = now.Add(10 * time.Second)
	if k := m.Key(false); k.Live.RPS != 0 || k.Rate.M1 <= 0 {
		t.Fatalf("after 10 quiet seconds: rate %+v live %+v", k.Rate, k.Live)
	}
}
