package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/core/machine"
	"github.com/gatehouse/gatehouse/core/meter"
	"github.com/gatehouse/gatehouse/core/passport"
)

// GraphWindow is the span of the recent counts and quantiles of Graph.
const GraphWindow = time.Minute

// baseEvery is how often Graph keeps a baseline to subtract.
const baseEvery = 10 * time.Second

type edgeBase struct {
	at    time.Time
	snaps map[int]*meter.Snapshot
}

// Edge is one transition of the state machine with what went through it.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Failure is set for an exit into FAILED.
	Failure bool `json:"failure"`
	// Count is the requests that took it since start; Recent those in the
	// last GraphWindow (about: baselines are taken every 10s while someone
	// reads the graph).
	Count  uint64 `json:"count"`
	Recent uint64 `json:"recent"`
	// P50us and P99us are the time from From to To over the recent window
	// (over all time while no baseline is old enough), in µs, within 12.5%.
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
}

// Graph is the state machine with live counts.
type Graph struct {
	// States are in the order of the happy path, FAILED last.
	States []string `json:"states"`
	Edges  []Edge   `json:"edges"`
	// Window is what Recent covers, in seconds; 0 means since start.
	Window float64 `json:"window_s"`
}

// graphStates lists the states drawn, in happy-path order.
var graphStates = []passport.State{
	passport.Accepted, passport.HeadersRead, passport.Validated, passport.Shaped, passport.Queued, passport.Admitted,
	passport.Routed, passport.EndpointPicked, passport.ConnAcquired, passport.ReqHeadersSent,
	passport.RespHeadersReceived, passport.Responded, passport.RespBodySent, passport.Upgraded,
	passport.AttemptFailed, passport.Done, passport.Failed,
}

// Graph returns every legal transition (machine.Edges and the failure exits
// of every state that has one) with its counts and times.
func (m *Metrics) Graph() Graph {
	now := m.now()
	cur := map[int]*meter.Snapshot{}
	s := new(meter.Snapshot)
	for i := range m.edges {
		if m.edgeSnapshot(i, s) {
			cur[i] = s
			s = new(meter.Snapshot)
		}
	}
	m.emu.Lock()
	var base *edgeBase
	for i := range m.ebase {
		if now.Sub(m.ebase[i].at) >= GraphWindow {
			base = &m.ebase[i] // the newest one old enough
		}
	}
	if base == nil && len(m.ebase) > 0 {
		base = &m.ebase[0]
	}
	var window time.Duration // 0: no baseline yet, counts since start
	var baseSnaps map[int]*meter.Snapshot
	if base != nil {
		window, baseSnaps = now.Sub(base.at), base.snaps
	}
	if n := len(m.ebase); n == 0 || now.Sub(m.ebase[n-1].at) >= baseEvery {
		keep := make(map[int]*meter.Snapshot, len(cur))
		for i, s := range cur {
			c := *s
			keep[i] = &c
		}
		m.ebase = append(m.ebase, edgeBase{at: now, snaps: keep})
	}
	for len(m.ebase) > 1 && now.Sub(m.ebase[1].at) >= GraphWindow {
		m.ebase = m.ebase[1:] // the next one is old enough too
	}
	m.emu.Unlock()

	g := Graph{Window: window.Seconds()}
	for _, s := range graphStates {
		g.States = append(g.States, s.String())
	}
	add := func(from, to passport.State) {
		i := int(from)*int(passport.NumStates) + int(to)
		e := Edge{From: from.String(), To: to.String(), Failure: to == passport.Failed}
		if s := cur[i]; s != nil {
			e.Count = s.Total
			r := *s
			if b := baseSnaps[i]; b != nil {
				r.Sub(b)
			}
			e.Recent = r.Total
			if r.Total == 0 {
				r = *s
			}
			e.P50us = float64(r.Quantile(0.5)) / 1e3
			e.P99us = float64(r.Quantile(0.99)) / 1e3
		}
		g.Edges = append(g.Edges, e)
	}
	for _, from := range graphStates {
		for _, to := range machine.Edges[from] {
			add(from, to)
		}
	}
	for _, from := range graphStates {
		if machine.Legal(from, passport.Failed) {
			add(from, passport.Failed)
		}
	}
	return g
}

// edgeCollector exports the transitions taken.
type edgeCollector struct{ m *Metrics }

var transitions = prometheus.NewDesc("gatehouse_transitions_total", "Requests that went from one state of the request state machine to the next.", []string{"from", "to"}, nil)

func (c edgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- transitions }

func (c edgeCollector) Collect(ch chan<- prometheus.Metric) {
	var s meter.Snapshot
	for i := range c.m.edges {
		if !c.m.edgeSnapshot(i, &s) {
			continue
		}
		from, to := passport.State(i/int(passport.NumStates)), passport.State(i%int(passport.NumStates))
		ch <- prometheus.MustNewConstMetric(transitions, prometheus.CounterValue, float64(s.Total), from.String(), to.String())
	}
}
