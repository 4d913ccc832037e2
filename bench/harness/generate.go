package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/bench/load"
)

// genRun is one run of a load generator process.
type genRun struct {
	generator string
	res       *load.Result
	cpu       time.Duration // the generator's own CPU time
}

// runGenerator runs argv placed on the load CPU, bounded by limit, and
// returns its stdout and CPU time.
func (e *Env) runGenerator(ctx context.Context, limit time.Duration, extraEnv []string, argv ...string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := e.Placement.command(ctx, RoleGenerator, argv)
	cmd.Env = append(cmd.Environ(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Start()
	if err == nil {
		e.Placement.started(cmd.Process.Pid)
		err = cmd.Wait()
	}
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("not done within %v", limit)
		}
		return nil, cpu, fmt.Errorf("%s: %w: %s", argv[0], err, lastLines(stderr.String(), 3))
	}
	return stdout.Bytes(), cpu, nil
}

// runLoadgen runs bench/cmd/loadgen with args and decodes its result.
func (e *Env) runLoadgen(ctx context.Context, d time.Duration, args ...string) (*genRun, error) {
	out, cpu, err := e.runGenerator(ctx, d+30*time.Second, []string{"GOMAXPROCS=1"}, append([]string{e.Loadgen}, args...)...)
	if err != nil {
		return &genRun{generator: "loadgen", cpu: cpu}, err
	}
	var res load.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("loadgen output: %w", err)
	}
	return &genRun{generator: "loadgen", res: &res, cpu: cpu}, nil
}

// openLoop runs loadgen's open loop.
func (e *Env) openLoop(ctx context.Context, p Plan, addr string, rate float64, d time.Duration) (*genRun, error) {
	return e.runLoadgen(ctx, d, "-mode", "open", "-addr", addr,
		"-rate", strconv.FormatFloat(rate, 'f', 1, 64), "-duration", d.String(),
		"-conns", strconv.Itoa(p.Conns), "-timeout", p.Timeout.String(),
		"-max-lag-p99", p.MaxLagP99.String(), "-max-lag", p.MaxLag.String())
}

// closedLoop runs wrk when it is installed and d is whole seconds (wrk's
// resolution), else loadgen's closed loop.
func (e *Env) closedLoop(ctx context.Context, p Plan, addr string, d time.Duration) (*genRun, error) {
	if e.Wrk == "" || d < time.Second || d%time.Second != 0 {
		return e.runLoadgen(ctx, d, "-mode", "closed", "-addr", addr, "-duration", d.String(),
			"-conns", strconv.Itoa(p.Conns), "-timeout", p.Timeout.String())
	}
	if err := load.CheckLoopback(addr); err != nil {
		return nil, err
	}
	secs := int(math.Ceil(d.Seconds()))
	out, cpu, err := e.runGenerator(ctx, d+30*time.Second, nil, e.Wrk, "-t1", "-c"+strconv.Itoa(p.Conns),
		fmt.Sprintf("-d%ds", secs), "--timeout", fmt.Sprintf("%ds", max(1, int(p.Timeout.Seconds()))), "http://"+addr+"/")
	g := &genRun{generator: "wrk", cpu: cpu}
	if err != nil {
		return g, err
	}
	w, err := parseWrk(string(out))
	if err != nil {
		return g, err
	}
	g.res = &load.Result{
		Mode: "closed", Target: addr, Conns: p.Conns, Duration: d,
		Scheduled: w.requests, Completed: w.requests - w.non2xx, Errors: w.non2xx + w.socketErrors,
		ErrorSample: w.errorSample, Elapsed: w.elapsed,
	}
	return g, nil
}

type wrkOutput struct {
	requests, non2xx, socketErrors int64
	elapsed                        time.Duration
	errorSample                    string
}

var (
	wrkTotal  = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	wrkSocket = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads the totals of wrk's report.
func parseWrk(out string) (wrkOutput, error) {
	var w wrkOutput
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return w, fmt.Errorf("wrk output without a request count: %q", lastLines(out, 3))
	}
	w.requests, _ = strconv.ParseInt(m[1], 10, 64)
	v, _ := strconv.ParseFloat(m[2], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[m[3]]
	w.elapsed = time.Duration(v * float64(unit))
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			w.socketErrors += n
		}
		if w.socketErrors > 0 {
			w.errorSample = strings.TrimSpace(m[0])
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		w.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		if w.errorSample == "" && w.non2xx > 0 {
			w.errorSample = strings.TrimSpace(m[0])
		}
	}
	return w, nil
}
