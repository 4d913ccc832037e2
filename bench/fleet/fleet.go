// Package fleet is the fault scenarios' backend: several HTTP/1.1 endpoints
// on loopback ports, served by one process, that a schedule makes slow (a
// cold JIT after a deploy, a GC pause), down (a restart: the listener and
// every connection closed, new connections refused), failing (503) or
// resetting, one or all at a time. It counts every request it is sent, per
// endpoint and in time buckets, so that a scenario can tell how much load a
// proxy put on its backends, when, and how much of it met a slow endpoint.
//
// The package also holds the control API the harness drives a fleet process
// with (Handler, Client) and an open-loop client (RunTraffic) that, unlike
// bench/load, keeps the latency of failed requests and splits its results
// into the phases of a fault schedule.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/bench/load"
)

// Mode is what an endpoint does with the requests it gets.
type Mode string

// Endpoint modes.
const (
	// ModeOK answers 200 with the fleet's body at once.
	ModeOK Mode = "ok"
	// ModeSlow answers 200 after the event's Delay.
	ModeSlow Mode = "slow"
	// ModeDown is a restart: the listener and every connection are closed,
	// new connections are refused until the next event for the endpoint.
	ModeDown Mode = "down"
	// ModeFail answers 503 (after the event's Delay, if any).
	ModeFail Mode = "fail"
	// ModeReset reads the request and resets the connection (TCP RST).
	ModeReset Mode = "reset"
)

func (m Mode) valid() bool {
	switch m {
	case ModeOK, ModeSlow, ModeDown, ModeFail, ModeReset:
		return true
	}
	return false
}

// AllEndpoints as an Event's Endpoint applies the event to every endpoint.
const AllEndpoints = -1

// Bounds of a plan and of one connection.
const (
	// MaxPlanLength bounds a plan's Length (and so its buckets).
	MaxPlanLength = 10 * time.Minute
	// MaxDelay bounds an event's Delay.
	MaxDelay = 10 * time.Second
	// DefaultBucket is a plan's bucket width when it sets none.
	DefaultBucket = 100 * time.Millisecond
	maxBodyBytes  = 1 << 20
	relistenFor   = 2 * time.Second
)

// Event switches one endpoint (or all) to a mode, At a time after the plan's
// start; the mode holds until the next event for that endpoint.
type Event struct {
	At       time.Duration `json:"at_ns"`
	Endpoint int           `json:"endpoint"`
	Mode     Mode          `json:"mode"`
	// Delay is added to every answer in ModeSlow and ModeFail.
	Delay time.Duration `json:"delay_ns,omitempty"`
}

func (ev Event) String() string {
	who := "all"
	if ev.Endpoint != AllEndpoints {
		who = "#" + strconv.Itoa(ev.Endpoint)
	}
	s := fmt.Sprintf("+%s %s %s", ev.At, who, ev.Mode)
	if ev.Delay > 0 {
		s += " +" + ev.Delay.String()
	}
	return s
}

// Plan is one run of a fleet: counters start from zero, every endpoint is
// set to ModeOK, then the events apply at their times after Start.
type Plan struct {
	// Start is the wall-clock origin of the events and buckets; zero means
	// when the plan is received. It may be at most a minute ahead.
	Start time.Time `json:"start"`
	// Bucket is the width of the time series; default DefaultBucket.
	Bucket time.Duration `json:"bucket_ns"`
	// Length is how long after Start requests are counted in buckets (later
	// ones only in the totals); at most MaxPlanLength, default the last
	// event's time plus a minute, within that bound.
	Length time.Duration `json:"length_ns"`
	Events []Event       `json:"events"`
}

// Check validates the plan against a fleet of n endpoints.
func (p *Plan) Check(n int) error {
	if p.Bucket < 0 || p.Length < 0 || p.Length > MaxPlanLength {
		return fmt.Errorf("plan: bucket must not be negative and length within 0..%v", MaxPlanLength)
	}
	if !p.Start.IsZero() && time.Until(p.Start) > time.Minute {
		return errors.New("plan: start more than a minute ahead")
	}
	for i, ev := range p.Events {
		switch {
		case !ev.Mode.valid():
			return fmt.Errorf("plan: event %d: unknown mode %q", i, ev.Mode)
		case ev.Endpoint != AllEndpoints && (ev.Endpoint < 0 || ev.Endpoint >= n):
			return fmt.Errorf("plan: event %d: endpoint %d out of 0..%d", i, ev.Endpoint, n-1)
		case ev.At < 0 || ev.At > MaxPlanLength:
			return fmt.Errorf("plan: event %d: at %v out of 0..%v", i, ev.At, MaxPlanLength)
		case ev.Delay < 0 || ev.Delay > MaxDelay:
			return fmt.Errorf("plan: event %d: delay %v out of 0..%v", i, ev.Delay, MaxDelay)
		}
	}
	return nil
}

// EndpointStats counts what one endpoint did during a run.
type EndpointStats struct {
	Addr string `json:"addr"`
	// Attempts counts requests read (each attempt of a proxy's retries).
	Attempts int64 `json:"attempts"`
	// OK counts 200s sent, Slowed those of them sent after a delay.
	OK     int64 `json:"ok"`
	Slowed int64 `json:"slowed"`
	// Failed counts 503s, Reset connections reset after a request.
	Failed int64 `json:"failed"`
	Reset  int64 `json:"reset"`
	// Aborted counts requests in progress when the endpoint went down.
	Aborted int64 `json:"aborted"`
	// Restarts counts the times the endpoint went down.
	Restarts int64 `json:"restarts"`
	// Conns counts connections accepted.
	Conns int64 `json:"conns"`
}

// Stats is a run's counts so far.
type Stats struct {
	Start     time.Time       `json:"start"`
	Bucket    time.Duration   `json:"bucket_ns"`
	Endpoints []EndpointStats `json:"endpoints"`
	// Attempts and Slowed count requests per bucket after Start, all
	// endpoints together, by arrival time.
	Attempts []int64 `json:"attempts"`
	Slowed   []int64 `json:"slowed"`
	// Early counts requests before Start, Late those after Length.
	Early int64 `json:"early"`
	Late  int64 `json:"late"`
}

// Total returns the sum over the endpoints of what f picks.
func (s *Stats) Total(f func(EndpointStats) int64) int64 {
	var n int64
	for _, e := range s.Endpoints {
		n += f(e)
	}
	return n
}

// AttemptsBetween sums the attempts of the buckets that start in [from, to).
func (s *Stats) AttemptsBetween(from, to time.Duration) int64 {
	return sumBuckets(s.Attempts, s.Bucket, from, to)
}

func sumBuckets(b []int64, width, from, to time.Duration) int64 {
	var n int64
	for i, v := range b {
		t := time.Duration(i) * width
		if t >= from && t < to {
			n += v
		}
	}
	return n
}

// counters are one run's: swapped whole by Run, so that a request never
// counts in two runs.
type counters struct {
	start   time.Time
	bucket  time.Duration
	eps     []epCounters
	buckets []atomic.Int64
	slowed  []atomic.Int64
	early   atomic.Int64
	late    atomic.Int64
}

type epCounters struct {
	attempts, ok, slowed, failed, reset, aborted, restarts, conns atomic.Int64
}

func (c *counters) attempt(ep int, now time.Time) {
	c.eps[ep].attempts.Add(1)
	d := now.Sub(c.start)
	switch i := int(d / c.bucket); {
	case d < 0:
		c.early.Add(1)
	case i >= len(c.buckets):
		c.late.Add(1)
	default:
		c.buckets[i].Add(1)
	}
}

func (c *counters) slow(now time.Time) {
	d := now.Sub(c.start)
	if i := int(d / c.bucket); d >= 0 && i < len(c.slowed) {
		c.slowed[i].Add(1)
	}
}

// state is an endpoint's current mode.
type state struct {
	mode  Mode
	delay time.Duration
}

var okState = &state{mode: ModeOK}

// Fleet is a set of endpoints served by this process.
type Fleet struct {
	body []byte
	eps  []*endpoint
	cur  atomic.Pointer[counters]

	runMu  sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

type endpoint struct {
	f        *Fleet
	idx      int
	addr     string
	st       atomic.Pointer[state]
	inFlight atomic.Int64

	mu  sync.Mutex // serializes mode changes: listener and server
	srv *http.Server
	ln  net.Listener
}

// New listens on every address (loopback only) and serves ModeOK until a
// plan says otherwise. body is the 200's body.
func New(addrs []string, body []byte) (*Fleet, error) {
	if len(addrs) == 0 {
		return nil, errors.New("fleet: no address")
	}
	f := &Fleet{body: body}
	f.cur.Store(newCounters(len(addrs), Plan{}))
	for i, a := range addrs {
		if err := load.CheckLoopback(a); err != nil {
			f.Close()
			return nil, err
		}
		ep := &endpoint{f: f, idx: i, addr: a}
		ep.st.Store(okState)
		f.eps = append(f.eps, ep)
		ln, err := net.Listen("tcp", a)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("fleet: %w", err)
		}
		// A restart listens again on the same port, also when a was ":0".
		ep.addr = ln.Addr().String()
		ep.serve(ln)
	}
	return f, nil
}

// Addrs returns the endpoints' addresses, in index order.
func (f *Fleet) Addrs() []string {
	out := make([]string, len(f.eps))
	for i, ep := range f.eps {
		out[i] = ep.addr
	}
	return out
}

func newCounters(n int, p Plan) *counters {
	if p.Bucket <= 0 {
		p.Bucket = DefaultBucket
	}
	if p.Start.IsZero() {
		p.Start = time.Now()
	}
	if p.Length <= 0 {
		var last time.Duration
		for _, ev := range p.Events {
			last = max(last, ev.At)
		}
		p.Length = min(last+time.Minute, MaxPlanLength)
	}
	nb := int((p.Length + p.Bucket - 1) / p.Bucket)
	return &counters{start: p.Start, bucket: p.Bucket, eps: make([]epCounters, n),
		buckets: make([]atomic.Int64, nb), slowed: make([]atomic.Int64, nb)}
}

// Run stops the previous plan, zeroes the counters, sets every endpoint to
// ModeOK (bringing down ones back) and applies p's events on schedule.
func (f *Fleet) Run(p Plan) error {
	if err := p.Check(len(f.eps)); err != nil {
		return err
	}
	if p.Start.IsZero() {
		p.Start = time.Now()
	}
	f.runMu.Lock()
	defer f.runMu.Unlock()
	f.stopLocked()
	f.cur.Store(newCounters(len(f.eps), p))
	var err error
	for _, ep := range f.eps {
		err = errors.Join(err, ep.set(okState))
	}
	events := slices.Clone(p.Events)
	slices.SortStableFunc(events, func(a, b Event) int { return int(a.At - b.At) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	f.cancel, f.done = cancel, done
	go func() {
		defer close(done)
		t := time.NewTimer(0)
		defer t.Stop()
		<-t.C
		for _, ev := range events {
			t.Reset(time.Until(p.Start.Add(ev.At)))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			f.apply(ev)
		}
	}()
	return err
}

// Stop ends the current plan and sets every endpoint to ModeOK; the counters
// are kept.
func (f *Fleet) Stop() error {
	f.runMu.Lock()
	defer f.runMu.Unlock()
	f.stopLocked()
	var err error
	for _, ep := range f.eps {
		err = errors.Join(err, ep.set(okState))
	}
	return err
}

func (f *Fleet) stopLocked() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
		f.cancel, f.done = nil, nil
	}
}

func (f *Fleet) apply(ev Event) {
	st := &state{mode: ev.Mode, delay: ev.Delay}
	for _, ep := range f.eps {
		if ev.Endpoint == AllEndpoints || ev.Endpoint == ep.idx {
			if err := ep.set(st); err != nil {
				// The endpoint stays down; the counts will show it.
				fmt.Fprintln(errLog, "fleet:", err)
			}
		}
	}
}

// errLog receives the fleet's own problems (the process's stderr).
var errLog io.Writer = io.Discard

// SetErrorLog sets where the fleet reports its own problems.
func SetErrorLog(w io.Writer) { errLog = w }

// Snapshot returns the current run's counts.
func (f *Fleet) Snapshot() *Stats {
	c := f.cur.Load()
	s := &Stats{Start: c.start, Bucket: c.bucket, Early: c.early.Load(), Late: c.late.Load(),
		Attempts: make([]int64, len(c.buckets)), Slowed: make([]int64, len(c.slowed))}
	for i := range c.buckets {
		s.Attempts[i] = c.buckets[i].Load()
		s.Slowed[i] = c.slowed[i].Load()
	}
	// Trailing empty buckets carry nothing.
	n := len(s.Attempts)
	for n > 0 && s.Attempts[n-1] == 0 && s.Slowed[n-1] == 0 {
		n--
	}
	s.Attempts, s.Slowed = s.Attempts[:n], s.Slowed[:n]
	for i, ep := range f.eps {
		e := &c.eps[i]
		s.Endpoints = append(s.Endpoints, EndpointStats{Addr: ep.addr,
			Attempts: e.attempts.Load(), OK: e.ok.Load(), Slowed: e.slowed.Load(), Failed: e.failed.Load(),
			Reset: e.reset.Load(), Aborted: e.aborted.Load(), Restarts: e.restarts.Load(), Conns: e.conns.Load()})
	}
	return s
}

// Close stops the plan and closes every endpoint.
func (f *Fleet) Close() {
	f.runMu.Lock()
	f.stopLocked()
	f.runMu.Unlock()
	for _, ep := range f.eps {
		ep.mu.Lock()
		if ep.srv != nil {
			ep.srv.Close()
			ep.srv, ep.ln = nil, nil
		}
		ep.mu.Unlock()
	}
}

// set switches the endpoint's mode: going down closes its server (listener
// and connections), leaving ModeDown listens again on the same address.
func (ep *endpoint) set(st *state) error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.st.Store(st)
	switch {
	case st.mode == ModeDown && ep.srv != nil:
		c := ep.f.cur.Load()
		c.eps[ep.idx].restarts.Add(1)
		c.eps[ep.idx].aborted.Add(ep.inFlight.Load())
		ep.srv.Close()
		ep.srv, ep.ln = nil, nil
	case st.mode != ModeDown && ep.srv == nil:
		// The port may still be held for a moment (a connection of ours in
		// its way): retry briefly rather than leave the endpoint down.
		var ln net.Listener
		var err error
		for t0 := time.Now(); time.Since(t0) < relistenFor; time.Sleep(5 * time.Millisecond) {
			if ln, err = net.Listen("tcp", ep.addr); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("endpoint %d: listening again on %s: %w", ep.idx, ep.addr, err)
		}
		ep.serve(ln)
	}
	return nil
}

// serve starts a server on ln; ep.mu is held or ep is not shared yet.
func (ep *endpoint) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:           ep,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				ep.f.cur.Load().eps[ep.idx].conns.Add(1)
			}
		},
	}
	ep.srv, ep.ln = srv, ln
	go srv.Serve(ln)
}

// ServeHTTP answers one request as the endpoint's mode says.
func (ep *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, maxBodyBytes))
	c := ep.f.cur.Load()
	now := time.Now()
	c.attempt(ep.idx, now)
	ep.inFlight.Add(1)
	defer ep.inFlight.Add(-1)
	st := ep.st.Load()
	ec := &c.eps[ep.idx]
	switch st.mode {
	case ModeSlow:
		c.slow(now)
		time.Sleep(st.delay)
		ec.slowed.Add(1)
	case ModeFail:
		if st.delay > 0 {
			time.Sleep(st.delay)
		}
		ec.failed.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "fleet: failing\n")
		return
	case ModeReset:
		ec.reset.Add(1)
		if hj, ok := w.(http.Hijacker); ok {
			if nc, _, err := hj.Hijack(); err == nil {
				if tc, ok := nc.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				nc.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	ec.ok.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(ep.f.body)))
	w.Write(ep.f.body)
}

// Body returns a response body of n bytes ending in a newline.
func Body(n int) []byte {
	if n <= 0 {
		return nil
	}
	return []byte(strings.Repeat("x", n-1) + "\n")
}
