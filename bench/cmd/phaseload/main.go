// Command phaseload runs one open-loop load run over consecutive phases
// against a loopback target and prints its result (a fleet.Traffic) as JSON
// on standard output. Unlike loadgen it keeps the latency and status of
// failed requests and splits everything by phase, for the fault scenarios;
// the harness runs it as a separate process so that it is placed (CPU,
// priority) like the other generators.
//
//	phaseload -addr 127.0.0.1:18080 -rate 1000 -phases healthy=10s,outage=20s,recovered=20s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/bench/fleet"
)

func main() {
	addr := flag.String("addr", "", "target host:port; must be a loopback IP")
	rate := flag.Float64("rate", 0, "requests per second")
	phases := flag.String("phases", "", "name=duration,... in order (total at most 10m)")
	start := flag.Int64("start", 0, "wall-clock start of the first phase, Unix nanoseconds (default: 20ms from now)")
	conns := flag.Int("conns", 64, "keep-alive connections")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout, from the intended send time")
	bucket := flag.Duration("bucket", 100*time.Millisecond, "time series resolution")
	maxLagP99 := flag.Duration("max-lag-p99", time.Millisecond, "the run is behind (invalid) if the generator's lag p99 exceeds this")
	maxLag := flag.Duration("max-lag", 20*time.Millisecond, "the run is behind (invalid) if the generator's maximum lag exceeds this")
	flag.Parse()

	ps, err := parsePhases(*phases)
	if err != nil {
		fail(err)
	}
	cfg := fleet.TrafficConfig{Addr: *addr, Rate: *rate, Phases: ps, Conns: *conns, Timeout: *timeout,
		Bucket: *bucket, MaxLagP99: *maxLagP99, MaxLag: *maxLag}
	if *start != 0 {
		cfg.Start = time.Unix(0, *start)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := fleet.RunTraffic(ctx, cfg)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail(err)
	}
}

func parsePhases(s string) ([]fleet.Phase, error) {
	if s == "" {
		return nil, errors.New("-phases is required")
	}
	var out []fleet.Phase
	for part := range strings.SplitSeq(s, ",") {
		name, d, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("phase %q: want name=duration", part)
		}
		v, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("phase %q: %w", part, err)
		}
		out = append(out, fleet.Phase{Name: name, Length: v})
	}
	return out, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "phaseload:", err)
	os.Exit(1)
}
