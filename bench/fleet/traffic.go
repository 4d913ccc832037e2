package fleet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/bench/load"
	"github.com/gatehouse/gatehouse/bench/timerfd"
)

// Phase is one consecutive stretch of a traffic run (e.g. "healthy",
// "outage", "recovered").
type Phase struct {
	Name   string        `json:"name"`
	Length time.Duration `json:"length_ns"`
}

// TrafficConfig describes an open-loop run at a constant rate over phases.
type TrafficConfig struct {
	// Addr is the loopback host:port to send to; Host and Path as in
	// bench/load (defaults Addr and "/").
	Addr, Host, Path string
	// Rate is requests per second, constant over every phase.
	Rate float64
	// Start is the wall-clock time of the first request, the phases'
	// origin (the same instant as a fleet Plan's Start); zero means 20ms
	// from now. At most a minute ahead.
	Start time.Time
	// Phases follow each other from Start; their lengths sum to the run's.
	Phases []Phase
	// Conns is the number of keep-alive connections; a request due while
	// all are busy waits for one, and the wait counts in its latency.
	Conns int
	// Timeout bounds each request from its intended send time.
	Timeout time.Duration
	// Bucket is the resolution of the time series; default 100ms.
	Bucket time.Duration
	// MaxLagP99 and MaxLag bound the dispatcher's own lag, as in bench/load.
	MaxLagP99, MaxLag time.Duration
}

// PhaseResult is what the client saw of one phase, by intended send time.
type PhaseResult struct {
	Name   string        `json:"name"`
	Start  time.Duration `json:"start_ns"`
	Length time.Duration `json:"length_ns"`
	// Sent counts requests due in the phase; OK those answered 200.
	Sent int64 `json:"sent"`
	OK   int64 `json:"ok"`
	// Statuses counts the other answers by status code; TransportErrors the
	// requests without an answer (refused, reset, timeout).
	Statuses        map[int]int64 `json:"statuses,omitempty"`
	TransportErrors int64         `json:"transport_errors"`
	ErrorSample     string        `json:"error_sample,omitempty"`
	// Latency holds every request's time from its intended send time to
	// its answer or failure, µs; OKLatency and FailLatency split it.
	Latency     load.Hist `json:"latency"`
	OKLatency   load.Hist `json:"ok_latency"`
	FailLatency load.Hist `json:"fail_latency"`
}

// Failed counts the phase's requests that did not get a 200.
func (p *PhaseResult) Failed() int64 { return p.Sent - p.OK }

// Traffic is the outcome of RunTraffic.
type Traffic struct {
	Rate   float64       `json:"rate"`
	Conns  int           `json:"conns"`
	Start  time.Time     `json:"start"`
	Phases []PhaseResult `json:"phases"`
	// Bucket is the width of Sent and Failed, which count requests by
	// intended send time since Start.
	Bucket time.Duration `json:"bucket_ns"`
	Sent   []int64       `json:"sent"`
	Failed []int64       `json:"failed"`
	// Lag is the dispatcher's lateness, µs; Behind says it exceeded the
	// configured bounds, BehindReason which.
	Lag          load.Hist `json:"lag"`
	Behind       bool      `json:"behind"`
	BehindReason string    `json:"behind_reason,omitempty"`
	// CPU is this process's CPU time during the run (the generator and
	// whatever else the process did meanwhile).
	CPU     time.Duration `json:"cpu_ns"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

func (c *TrafficConfig) check() (time.Duration, error) {
	if err := load.CheckLoopback(c.Addr); err != nil {
		return 0, err
	}
	var total time.Duration
	for _, p := range c.Phases {
		if p.Length <= 0 {
			return 0, fmt.Errorf("traffic: phase %q: length must be positive", p.Name)
		}
		total += p.Length
	}
	switch {
	case len(c.Phases) == 0:
		return 0, errors.New("traffic: no phase")
	case total > MaxPlanLength:
		return 0, fmt.Errorf("traffic: %v exceeds %v", total, MaxPlanLength)
	case c.Rate <= 0 || c.Conns <= 0 || c.Timeout <= 0 || c.MaxLagP99 <= 0 || c.MaxLag <= 0:
		return 0, errors.New("traffic: rate, conns, timeout and lag bounds must be positive")
	case c.Rate*total.Seconds() > load.MaxRequests:
		return 0, fmt.Errorf("traffic: %v/s for %v exceeds %d requests", c.Rate, total, load.MaxRequests)
	case !c.Start.IsZero() && time.Until(c.Start) > time.Minute:
		return 0, errors.New("traffic: start more than a minute ahead")
	}
	return total, nil
}

// tally is one connection's share of the results, merged at the end.
type tally struct {
	phases         []PhaseResult
	sent, failed   []int64
	errN           int64
	lastDone       time.Time
	firstErrSample string
}

// RunTraffic sends requests at cfg.Rate from cfg.Start through every phase
// and returns what each phase saw. Like bench/load's open loop, each
// latency runs from the request's intended send time, a timerfd keeps the
// schedule and the dispatcher's lag is recorded; unlike it, failed requests
// keep their latency and status, and results are split by phase.
func RunTraffic(ctx context.Context, cfg TrafficConfig) (*Traffic, error) {
	if cfg.Host == "" {
		cfg.Host = cfg.Addr
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Bucket <= 0 {
		cfg.Bucket = DefaultBucket
	}
	total, err := cfg.check()
	if err != nil {
		return nil, err
	}
	n := int64(cfg.Rate * total.Seconds())
	interval := float64(time.Second) / cfg.Rate
	nb := int((total + cfg.Bucket - 1) / cfg.Bucket)
	bounds := make([]time.Duration, len(cfg.Phases)+1)
	for i, p := range cfg.Phases {
		bounds[i+1] = bounds[i] + p.Length
	}
	phaseOf := func(off time.Duration) int {
		for i := len(cfg.Phases) - 1; i > 0; i-- {
			if off >= bounds[i] {
				return i
			}
		}
		return 0
	}

	tm, err := timerfd.New()
	if err != nil {
		return nil, err
	}
	defer tm.Close()
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-bench\r\n\r\n", cfg.Path, cfg.Host))
	conns := make([]*rawConn, cfg.Conns)
	for i := range conns {
		conns[i] = &rawConn{addr: cfg.Addr, req: req}
		if err := conns[i].dial(time.Now().Add(cfg.Timeout)); err != nil {
			for _, c := range conns[:i] {
				c.close()
			}
			return nil, fmt.Errorf("traffic: connecting to %s: %w", cfg.Addr, err)
		}
	}
	start := cfg.Start
	if start.IsZero() {
		start = time.Now().Add(20 * time.Millisecond)
	}
	hardEnd := start.Add(total + cfg.Timeout)
	due := make(chan int64, n)
	tallies := make([]*tally, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		t := &tally{sent: make([]int64, nb), failed: make([]int64, nb)}
		for _, p := range cfg.Phases {
			t.phases = append(t.phases, PhaseResult{Name: p.Name, Latency: load.Hist{Histogram: load.NewHistogram()},
				OKLatency: load.Hist{Histogram: load.NewHistogram()}, FailLatency: load.Hist{Histogram: load.NewHistogram()}})
		}
		tallies[i] = t
		wg.Go(func() {
			defer c.close()
			for off := range due {
				d := time.Duration(off)
				intended := start.Add(d)
				pr := &t.phases[phaseOf(d)]
				b := min(int(d/cfg.Bucket), nb-1)
				pr.Sent++
				t.sent[b]++
				var status int
				var err error
				if ctx.Err() != nil {
					err = ctx.Err()
				} else {
					deadline := intended.Add(cfg.Timeout)
					if deadline.After(hardEnd) {
						deadline = hardEnd
					}
					status, err = c.do(deadline)
				}
				done := time.Now()
				t.lastDone = done
				lat := micros(done.Sub(intended))
				pr.Latency.RecordValue(lat)
				switch {
				case err != nil:
					pr.TransportErrors++
					if pr.ErrorSample == "" {
						pr.ErrorSample = err.Error()
					}
				case status == http.StatusOK:
					pr.OK++
					pr.OKLatency.RecordValue(lat)
					continue
				default:
					if pr.Statuses == nil {
						pr.Statuses = map[int]int64{}
					}
					pr.Statuses[status]++
					if pr.ErrorSample == "" {
						pr.ErrorSample = fmt.Sprintf("status %d", status)
					}
				}
				pr.FailLatency.RecordValue(lat)
				t.failed[b]++
			}
		})
	}

	lag := load.Hist{Histogram: load.NewHistogram()}
	cpu0 := processCPU()
	derr := dispatch(ctx, start, interval, n, due, lag, tm)
	close(due)
	wg.Wait()
	if derr != nil {
		return nil, fmt.Errorf("traffic: %w", derr)
	}
	res := &Traffic{Rate: cfg.Rate, Conns: cfg.Conns, Start: start, Bucket: cfg.Bucket,
		Sent: make([]int64, nb), Failed: make([]int64, nb), Lag: lag, CPU: processCPU() - cpu0}
	var last time.Time
	for i, p := range cfg.Phases {
		pr := PhaseResult{Name: p.Name, Start: bounds[i], Length: p.Length, Latency: load.Hist{Histogram: load.NewHistogram()},
			OKLatency: load.Hist{Histogram: load.NewHistogram()}, FailLatency: load.Hist{Histogram: load.NewHistogram()}}
		for _, t := range tallies {
			tp := &t.phases[i]
			pr.Sent += tp.Sent
			pr.OK += tp.OK
			pr.TransportErrors += tp.TransportErrors
			if pr.ErrorSample == "" {
				pr.ErrorSample = tp.ErrorSample
			}
			for s, k := range tp.Statuses {
				if pr.Statuses == nil {
					pr.Statuses = map[int]int64{}
				}
				pr.Statuses[s] += k
			}
			pr.Latency.Merge(tp.Latency.Histogram)
			pr.OKLatency.Merge(tp.OKLatency.Histogram)
			pr.FailLatency.Merge(tp.FailLatency.Histogram)
		}
		res.Phases = append(res.Phases, pr)
	}
	for _, t := range tallies {
		for b := range nb {
			res.Sent[b] += t.sent[b]
			res.Failed[b] += t.failed[b]
		}
		if t.lastDone.After(last) {
			last = t.lastDone
		}
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	p99 := time.Duration(lag.ValueAtQuantile(99)) * time.Microsecond
	maxLag := time.Duration(lag.Max()) * time.Microsecond
	switch {
	case p99 > cfg.MaxLagP99:
		res.Behind, res.BehindReason = true, fmt.Sprintf("generator lag p99 %v > %v", p99, cfg.MaxLagP99)
	case maxLag > cfg.MaxLag:
		res.Behind, res.BehindReason = true, fmt.Sprintf("generator lag max %v > %v", maxLag, cfg.MaxLag)
	}
	return res, nil
}

// dispatch hands request offsets to due on schedule and records its lag, as
// bench/load's dispatcher does. On cancellation the rest are not sent.
func dispatch(ctx context.Context, start time.Time, interval float64, n int64, due chan<- int64, lag load.Hist, tm *timerfd.Timer) error {
	for i := int64(0); i < n; {
		if ctx.Err() != nil {
			return nil
		}
		off := int64(float64(i) * interval)
		if err := tm.Sleep(time.Until(start.Add(time.Duration(off)))); err != nil {
			return err
		}
		now := time.Since(start)
		for ; i < n; i++ {
			off = int64(float64(i) * interval)
			if time.Duration(off) > now {
				break
			}
			lag.RecordValue(micros(now - time.Duration(off)))
			due <- off
		}
	}
	return nil
}

// micros converts d to whole microseconds within load's histogram range.
func micros(d time.Duration) int64 {
	return min(max((int64(d)+500)/1000, 1), 60_000_000)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawConn is one keep-alive connection sending a fixed GET.
type rawConn struct {
	addr string
	req  []byte
	nc   net.Conn
	br   *bufio.Reader
}

func (c *rawConn) dial(deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	nc, err := d.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.nc = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

func (c *rawConn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// do sends the request and reads the whole answer before deadline; on a
// transport error the connection is closed and the next call dials again.
func (c *rawConn) do(deadline time.Time) (int, error) {
	if c.nc == nil {
		if err := c.dial(deadline); err != nil {
			return 0, err
		}
	}
	c.nc.SetDeadline(deadline)
	if _, err := c.nc.Write(c.req); err != nil {
		c.close()
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		c.close()
		return 0, err
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, nil
}
