package load

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/bench/timerfd"
)

// OpenConfig describes an open-loop run at a constant rate.
type OpenConfig struct {
	// Addr is the loopback host:port to send to.
	Addr string
	// Host is the Host header; defaults to Addr.
	Host string
	// Path is the request target; defaults to "/".
	Path string
	// Rate is the intended request rate per second; must be positive.
	Rate float64
	// Duration is the sending window; must be positive. The run ends at most
	// Timeout after it.
	Duration time.Duration
	// Conns is the number of keep-alive connections; a request whose intended
	// time comes while all are busy waits for one, and that wait counts in its
	// latency.
	Conns int
	// Timeout bounds each request, counted from its intended send time.
	Timeout time.Duration
	// MaxLagP99 and MaxLag bound the generator's own lag (p99 and maximum);
	// a run that exceeds either is marked Behind: the generator did not keep
	// its schedule.
	MaxLagP99, MaxLag time.Duration
}

func (c *OpenConfig) check() error {
	if err := CheckLoopback(c.Addr); err != nil {
		return err
	}
	switch {
	case c.Rate <= 0:
		return fmt.Errorf("open loop: rate must be positive, got %v", c.Rate)
	case c.Duration <= 0:
		return fmt.Errorf("open loop: duration must be positive, got %v", c.Duration)
	case c.Conns <= 0:
		return fmt.Errorf("open loop: conns must be positive, got %d", c.Conns)
	case c.Timeout <= 0:
		return fmt.Errorf("open loop: timeout must be positive, got %v", c.Timeout)
	case c.MaxLagP99 <= 0 || c.MaxLag <= 0:
		return fmt.Errorf("open loop: lag limits must be positive")
	case c.Rate*c.Duration.Seconds() > MaxRequests:
		return fmt.Errorf("open loop: %v/s for %v exceeds %d requests", c.Rate, c.Duration, MaxRequests)
	}
	return nil
}

// RunOpen sends requests at cfg.Rate for cfg.Duration. Request i is due at
// start + i/rate; its latency is measured from that intended time to the end
// of its response, so time spent waiting for a busy target (or a free
// connection) is counted rather than omitted.
//
// The schedule is kept by one dispatcher goroutine that sleeps on a timerfd
// (Go's timers round sub-millisecond sleeps up to a millisecond when the
// process is idle, which would be lag of the generator's own making).
func RunOpen(ctx context.Context, cfg OpenConfig) (*Result, error) {
	if cfg.Host == "" {
		cfg.Host = cfg.Addr
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	n := int64(cfg.Rate * cfg.Duration.Seconds())
	if n < 1 {
		n = 1
	}
	interval := float64(time.Second) / cfg.Rate

	tm, err := timerfd.New()
	if err != nil {
		return nil, err
	}
	defer tm.Close()

	conns := make([]*conn, cfg.Conns)
	dialBy := time.Now().Add(cfg.Timeout)
	for i := range conns {
		conns[i] = newConn(cfg.Addr, cfg.Host, cfg.Path)
		if err := conns[i].dial(dialBy); err != nil {
			for _, c := range conns[:i] {
				c.close()
			}
			return nil, fmt.Errorf("open loop: connecting to %s: %w", cfg.Addr, err)
		}
	}

	// due carries intended send offsets (ns since start) to the connections.
	// Its capacity is the whole schedule, so the dispatcher never blocks on it.
	due := make(chan int64, n)
	start := time.Now().Add(20 * time.Millisecond)
	hardEnd := start.Add(cfg.Duration + cfg.Timeout)

	var wg sync.WaitGroup
	lat := make([]*Hist, len(conns))
	tallies := make([]errorTally, len(conns))
	completed := make([]int64, len(conns))
	lastDone := make([]time.Time, len(conns))
	for i, c := range conns {
		lat[i] = &Hist{NewHistogram()}
		wg.Go(func() {
			defer c.close()
			for off := range due {
				intended := start.Add(time.Duration(off))
				deadline := intended.Add(cfg.Timeout)
				if deadline.After(hardEnd) {
					deadline = hardEnd
				}
				if ctx.Err() != nil {
					tallies[i].add(ctx.Err())
					continue
				}
				err := c.do(deadline)
				done := time.Now()
				lastDone[i] = done
				if err != nil {
					tallies[i].add(err)
					continue
				}
				completed[i]++
				lat[i].RecordValue(micros(done.Sub(intended)))
			}
		})
	}

	lag := Hist{NewHistogram()}
	cpu0 := processCPU()
	derr := dispatch(ctx, start, interval, n, due, lag, tm)
	close(due)
	wg.Wait()
	cpu := processCPU() - cpu0
	if derr != nil {
		return nil, fmt.Errorf("open loop: %w", derr)
	}

	res := &Result{
		Mode:      "open",
		Target:    cfg.Addr,
		Rate:      cfg.Rate,
		Conns:     cfg.Conns,
		Duration:  cfg.Duration,
		Scheduled: n,
		Latency:   Hist{NewHistogram()},
		Lag:       lag,
		CPU:       cpu,
	}
	var end time.Time
	for i := range conns {
		res.Latency.Merge(lat[i].Histogram)
		res.Completed += completed[i]
		if tallies[i].n > 0 && res.Errors == 0 {
			res.ErrorSample = tallies[i].sample
		}
		res.Errors += tallies[i].n
		if lastDone[i].After(end) {
			end = lastDone[i]
		}
	}
	if !end.IsZero() {
		res.Elapsed = end.Sub(start)
	}
	if missing := n - res.Completed - res.Errors; missing != 0 {
		res.Errors += missing
		if res.ErrorSample == "" {
			res.ErrorSample = fmt.Sprintf("%d requests neither completed nor failed", missing)
		}
	}
	p99 := time.Duration(lag.ValueAtQuantile(99)) * time.Microsecond
	maxLag := time.Duration(lag.Max()) * time.Microsecond
	switch {
	case p99 > cfg.MaxLagP99:
		res.Behind = true
		res.BehindReason = fmt.Sprintf("generator lag p99 %v > %v", p99, cfg.MaxLagP99)
	case maxLag > cfg.MaxLag:
		res.Behind = true
		res.BehindReason = fmt.Sprintf("generator lag max %v > %v", maxLag, cfg.MaxLag)
	}
	return res, nil
}

// dispatch hands request offsets to due on schedule and records how late each
// was handed over. It sends everything already due in one burst after each
// sleep. On cancellation it stops scheduling; the rest count as errors.
func dispatch(ctx context.Context, start time.Time, interval float64, n int64, due chan<- int64, lag Hist, tm *timerfd.Timer) error {
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
