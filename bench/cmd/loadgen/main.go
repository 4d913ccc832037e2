// Command loadgen runs one load run against a loopback target and prints its
// result as JSON on standard output. The benchmark harness runs it as a
// separate process so that it can be pinned to a CPU apart from the proxy.
//
//	loadgen -mode open -addr 127.0.0.1:18080 -rate 5000 -duration 10s -conns 64
//	loadgen -mode closed -addr 127.0.0.1:18080 -duration 5s -conns 64
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/bench/load"
)

func main() {
	mode := flag.String("mode", "open", "open (constant rate, latency from intended send time) or closed (maximum throughput)")
	addr := flag.String("addr", "", "target host:port; must be a loopback IP")
	host := flag.String("host", "", "Host header (default: addr)")
	path := flag.String("path", "/", "request target")
	rate := flag.Float64("rate", 0, "open loop: requests per second")
	duration := flag.Duration("duration", 5*time.Second, "sending window (at most 10m)")
	conns := flag.Int("conns", 64, "keep-alive connections")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout; for the open loop counted from the intended send time")
	maxLagP99 := flag.Duration("max-lag-p99", time.Millisecond, "open loop: the run is behind (invalid) if the generator's lag p99 exceeds this")
	maxLag := flag.Duration("max-lag", 20*time.Millisecond, "open loop: the run is behind (invalid) if the generator's maximum lag exceeds this")
	verbose := flag.Bool("v", false, "also print a human-readable summary on standard error")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the generator to this file")
	flag.Parse()

	if *duration > 10*time.Minute {
		fail(fmt.Errorf("duration %v exceeds 10m", *duration))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var res *load.Result
	var err error
	switch *mode {
	case "open":
		res, err = load.RunOpen(ctx, load.OpenConfig{
			Addr: *addr, Host: *host, Path: *path, Rate: *rate, Duration: *duration,
			Conns: *conns, Timeout: *timeout, MaxLagP99: *maxLagP99, MaxLag: *maxLag,
		})
	case "closed":
		res, err = load.RunClosed(ctx, load.ClosedConfig{
			Addr: *addr, Host: *host, Path: *path, Duration: *duration, Conns: *conns, Timeout: *timeout,
		})
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fail(err)
	}
	if *verbose {
		summarize(res)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail(err)
	}
}

func summarize(r *load.Result) {
	fmt.Fprintf(os.Stderr, "%s loop: %d completed, %d errors %s, %.0f req/s over %v\n",
		r.Mode, r.Completed, r.Errors, r.ErrorSample, r.RPS(), r.Elapsed.Round(time.Millisecond))
	for _, h := range []struct {
		name string
		h    load.Hist
	}{{"latency", r.Latency}, {"lag", r.Lag}} {
		if h.h.Histogram == nil || h.h.TotalCount() == 0 {
			continue
		}
		fmt.Fprintf(os.Stderr, "%-8s µs: p50 %d  p90 %d  p99 %d  p99.9 %d  max %d\n", h.name,
			h.h.ValueAtQuantile(50), h.h.ValueAtQuantile(90), h.h.ValueAtQuantile(99), h.h.ValueAtQuantile(99.9), h.h.Max())
	}
	if r.Behind {
		fmt.Fprintln(os.Stderr, "BEHIND:", r.BehindReason)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}
