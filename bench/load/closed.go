package load

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ClosedConfig describes a closed-loop run: each connection sends its next
// request as soon as the previous response ends.
type ClosedConfig struct {
	// Addr is the loopback host:port to send to.
	Addr string
	// Host is the Host header; defaults to Addr.
	Host string
	// Path is the request target; defaults to "/".
	Path string
	// Duration is how long requests are started; must be positive.
	Duration time.Duration
	// Conns is the number of keep-alive connections, each with one request
	// in flight.
	Conns int
	// Timeout bounds each request.
	Timeout time.Duration
}

// RunClosed drives cfg.Conns connections as fast as the target answers for
// cfg.Duration, or until MaxRequests were started.
func RunClosed(ctx context.Context, cfg ClosedConfig) (*Result, error) {
	if cfg.Host == "" {
		cfg.Host = cfg.Addr
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if err := CheckLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.Duration <= 0 || cfg.Conns <= 0 || cfg.Timeout <= 0 {
		return nil, fmt.Errorf("closed loop: duration, conns and timeout must be positive")
	}
	conns := make([]*conn, cfg.Conns)
	dialBy := time.Now().Add(cfg.Timeout)
	for i := range conns {
		conns[i] = newConn(cfg.Addr, cfg.Host, cfg.Path)
		if err := conns[i].dial(dialBy); err != nil {
			for _, c := range conns[:i] {
				c.close()
			}
			return nil, fmt.Errorf("closed loop: connecting to %s: %w", cfg.Addr, err)
		}
	}
	var started atomic.Int64
	cpu0 := processCPU()
	start := time.Now()
	end := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	lat := make([]*Hist, len(conns))
	tallies := make([]errorTally, len(conns))
	completed := make([]int64, len(conns))
	for i, c := range conns {
		lat[i] = &Hist{NewHistogram()}
		wg.Go(func() {
			defer c.close()
			for ctx.Err() == nil && started.Add(1) <= MaxRequests {
				t0 := time.Now()
				if !t0.Before(end) {
					started.Add(-1)
					return
				}
				if err := c.do(t0.Add(cfg.Timeout)); err != nil {
					tallies[i].add(err)
					continue
				}
				completed[i]++
				lat[i].RecordValue(micros(time.Since(t0)))
			}
		})
	}
	wg.Wait()
	res := &Result{
		Mode:      "closed",
		Target:    cfg.Addr,
		Conns:     cfg.Conns,
		Duration:  cfg.Duration,
		Scheduled: min(started.Load(), MaxRequests),
		Elapsed:   time.Since(start),
		CPU:       processCPU() - cpu0,
		Latency:   Hist{NewHistogram()},
	}
	for i := range conns {
		res.Latency.Merge(lat[i].Histogram)
		res.Completed += completed[i]
		if tallies[i].n > 0 && res.Errors == 0 {
			res.ErrorSample = tallies[i].sample
		}
		res.Errors += tallies[i].n
	}
	return res, nil
}
