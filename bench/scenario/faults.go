package scenario

// Helpers of the fault scenarios (slow_node, retry_storm): the fleet
// process, loadgen as a placed process, the machine description and the
// pieces of their reports. The harness's Compare and Report are built around
// one backend and the overhead tables; these scenarios measure other things
// (tail percentiles per balancer, load multipliers per phase) and write
// their own reports with the same facts up front.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/gatehouse/gatehouse/bench/fleet"
	"github.com/gatehouse/gatehouse/bench/harness"
	"github.com/gatehouse/gatehouse/bench/load"
	"github.com/gatehouse/gatehouse/bench/plot"
)

// fleetProc is a running bench/cmd/fleet.
type fleetProc struct {
	*harness.Process
	addrs []string
	ctl   fleet.Client
}

// startFleet builds and starts a fleet of n endpoints on the load CPU. Its
// ports are taken below the kernel's ephemeral range, so that while an
// endpoint is down no outgoing connection can take its port.
func startFleet(ctx context.Context, e *harness.Env, n int) (*fleetProc, error) {
	bin, err := e.Build(ctx, "./bench/cmd/fleet", "fleet")
	if err != nil {
		return nil, err
	}
	ports, err := pickPorts(n + 1)
	if err != nil {
		return nil, err
	}
	p, err := e.StartProcess("fleet", harness.RoleBackend, []string{"GOMAXPROCS=1"}, bin,
		"-addrs", strings.Join(ports[1:], ","), "-control", ports[0])
	if err != nil {
		return nil, err
	}
	f := &fleetProc{Process: p, addrs: ports[1:], ctl: fleet.Client{Addr: ports[0]}}
	deadline := time.Now().Add(15 * time.Second)
	for f.ctl.Healthy(ctx) != nil {
		if exited, werr := p.Exited(); exited {
			return nil, fmt.Errorf("fleet exited (%v): %s", werr, p.LogTail(3))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, fmt.Errorf("fleet not ready within 15s: %s", p.LogTail(3))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f, nil
}

// pickPorts returns n free loopback addresses with ports below the
// ephemeral range (from /proc/sys/net/ipv4/ip_local_port_range).
func pickPorts(n int) ([]string, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	first := 10000
	if lo-first < 1000 {
		return nil, fmt.Errorf("the ephemeral port range starts at %d: no room below it for the fleet", lo)
	}
	var out []string
	for tries := 0; len(out) < n && tries < 1000; tries++ {
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(first+rand.IntN(lo-first)))
		if slices.Contains(out, a) {
			continue
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			continue
		}
		ln.Close()
		out = append(out, a)
	}
	if len(out) < n {
		return nil, errors.New("no free ports below the ephemeral range")
	}
	return out, nil
}

// runLoadgen runs bench/cmd/loadgen placed as a generator (the load CPU,
// the harness's priority) and returns its result.
func runLoadgen(ctx context.Context, e *harness.Env, name string, d time.Duration, args ...string) (*load.Result, error) {
	var res load.Result
	if err := runGenerator(ctx, e, name, d, &res, append([]string{e.Loadgen}, args...)...); err != nil {
		return nil, err
	}
	return &res, nil
}

// runPhaseload runs bench/cmd/phaseload placed as a generator and returns
// its result.
func runPhaseload(ctx context.Context, e *harness.Env, name string, cfg fleet.TrafficConfig) (*fleet.Traffic, error) {
	bin, err := e.Build(ctx, "./bench/cmd/phaseload", "phaseload")
	if err != nil {
		return nil, err
	}
	var total time.Duration
	var phases []string
	for _, p := range cfg.Phases {
		total += p.Length
		phases = append(phases, p.Name+"="+p.Length.String())
	}
	args := []string{bin, "-addr", cfg.Addr, "-rate", strconv.FormatFloat(cfg.Rate, 'f', 1, 64), "-phases", strings.Join(phases, ","),
		"-conns", strconv.Itoa(cfg.Conns), "-timeout", cfg.Timeout.String(), "-max-lag-p99", cfg.MaxLagP99.String(), "-max-lag", cfg.MaxLag.String()}
	if cfg.Bucket > 0 {
		args = append(args, "-bucket", cfg.Bucket.String())
	}
	if !cfg.Start.IsZero() {
		args = append(args, "-start", strconv.FormatInt(cfg.Start.UnixNano(), 10))
		total += max(0, time.Until(cfg.Start))
	}
	var tr fleet.Traffic
	if err := runGenerator(ctx, e, name, total+cfg.Timeout, &tr, args...); err != nil {
		return nil, err
	}
	return &tr, nil
}

// runGenerator runs argv placed as a generator, waits for it (bounded by
// d plus 30 seconds) and decodes the JSON result it printed into out. Its
// standard output goes to its log: the command line, then the result on one
// line; a later run of the same name appends to it.
func runGenerator(ctx context.Context, e *harness.Env, name string, d time.Duration, out any, argv ...string) error {
	p, err := e.StartProcess(name, harness.RoleGenerator, []string{"GOMAXPROCS=1"}, argv...)
	if err != nil {
		return err
	}
	defer p.Stop()
	limit := d + 30*time.Second
	deadline := time.Now().Add(limit)
	for {
		exited, werr := p.Exited()
		if exited {
			if werr != nil {
				return fmt.Errorf("%s: %v: %s", name, werr, p.LogTail(3))
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done within %v", name, limit)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err
	}
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		if l := sc.Bytes(); len(l) > 0 && l[0] == '{' {
			last = slices.Clone(l)
		}
	}
	if last == nil {
		return fmt.Errorf("%s printed no result: %s", name, p.LogTail(3))
	}
	if err := json.Unmarshal(last, out); err != nil {
		return fmt.Errorf("%s output: %w", name, err)
	}
	return nil
}

// openLoopArgs are loadgen's arguments for an open loop.
func openLoopArgs(addr string, rate float64, d time.Duration, conns int, timeout, maxLagP99, maxLag time.Duration) []string {
	return []string{"-mode", "open", "-addr", addr, "-rate", strconv.FormatFloat(rate, 'f', 1, 64),
		"-duration", d.String(), "-conns", strconv.Itoa(conns), "-timeout", timeout.String(),
		"-max-lag-p99", maxLagP99.String(), "-max-lag", maxLag.String()}
}

// waitOK polls url until it answers 200, proc exits or 15 seconds pass.
func waitOK(ctx context.Context, url string, proc *harness.Process) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	last := ""
	for {
		if exited, err := proc.Exited(); exited {
			return fmt.Errorf("%s exited (%v): %s", proc.Name, err, proc.LogTail(5))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready at %s within 15s (last: %s)", proc.Name, url, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantPeer applies the -peers filter to optional peers.
func wantPeer(e *harness.Env, name string) bool {
	return len(e.Peers) == 0 || slices.Contains(e.Peers, name)
}

// lookPath finds a program, also in the sbin directories a PATH may lack.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func cmdOutput(ctx context.Context, dir string, argv ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out))
}

// describeMachine is what harness.Compare records of the machine, for the
// reports these scenarios write themselves.
func describeMachine(ctx context.Context, root string) harness.Machine {
	m := harness.Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Tree: treeRevision(ctx, root)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" && m.CPUModel == "" {
				m.CPUModel = strings.TrimSpace(v)
			}
		}
	}
	m.Virt = virtualization()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemGiB = int((kb + 512*1024) / (1024 * 1024))
			}
		}
	}
	return m
}

// virtualization names what makes syscalls and context switches expensive
// here, as the harness's reports do.
func virtualization() string {
	var parts []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil && strings.Contains(string(b), " hypervisor") {
		parts = append(parts, "virtual machine")
	}
	if b, err := os.ReadFile("/proc/cmdline"); err == nil && strings.Contains(string(b), "pvm") {
		parts = append(parts, "PVM guest (software-virtualized page tables)")
	}
	if b, err := os.ReadFile("/sys/devices/system/cpu/vulnerabilities/meltdown"); err == nil && strings.Contains(string(b), "PTI") {
		parts = append(parts, "kernel page-table isolation on")
	}
	return strings.Join(parts, ", ")
}

func treeRevision(ctx context.Context, root string) string {
	rev := cmdOutput(ctx, root, "git", "rev-parse", "--short", "HEAD")
	if rev == "" || strings.Contains(rev, " ") {
		return "unknown"
	}
	if cmdOutput(ctx, root, "git", "status", "--porcelain") != "" {
		rev += "+dirty"
	}
	return rev
}

// faultReport is the part common to the fault scenarios' reports.
type faultReport struct {
	Scenario  string            `json:"scenario"`
	Title     string            `json:"title"`
	Command   string            `json:"command"`
	Mode      harness.Mode      `json:"mode"`
	Date      time.Time         `json:"date"`
	Wall      time.Duration     `json:"wall_ns"`
	Machine   harness.Machine   `json:"machine"`
	Versions  [][2]string       `json:"versions"`
	Placement []string          `json:"placement"`
	Notes     []string          `json:"notes,omitempty"`
	extra     map[string][]byte // SVG files by name
}

func newFaultReport(ctx context.Context, e *harness.Env, name, title string) *faultReport {
	return &faultReport{Scenario: name, Title: title, Command: e.Command, Mode: e.Mode, Date: time.Now().UTC(),
		Machine: describeMachine(ctx, e.ModRoot), Placement: e.Placement.Describe(), extra: map[string][]byte{}}
}

// header writes the title and the machine, versions and placement sections.
func (r *faultReport) header(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("# %s\n\n", r.Title)
	w("Produced by `%s` on %s (%s mode, took %s).\n\n", r.Command, r.Date.Format("2006-01-02 15:04 MST"), r.Mode, r.Wall.Round(time.Second))
	m := r.Machine
	w("## Machine and versions\n\n| | |\n|---|---|\n")
	w("| machine | %d CPUs, %s, %d GiB RAM |\n| OS, kernel | %s, Linux %s |\n| Go | %s |\n| tree | %s |\n", m.CPUs, m.CPUModel, m.MemGiB, m.OS, m.Kernel, m.Go, m.Tree)
	if m.Virt != "" {
		w("| virtualization | %s |\n", m.Virt)
	}
	for _, v := range r.Versions {
		w("| %s | %s |\n", v[0], v[1])
	}
	w("\n## Placement\n\n")
	for _, l := range r.Placement {
		w("- %s\n", l)
	}
}

// write writes NAME.md, NAME.json (data) and the SVGs into e.OutDir and
// returns the markdown's path.
func (r *faultReport) write(e *harness.Env, md string, data any) (string, error) {
	if err := os.MkdirAll(e.OutDir, 0o755); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(e.OutDir, r.Scenario+"-*.svg"))
	for _, f := range old {
		os.Remove(f)
	}
	js, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return "", err
	}
	files := map[string][]byte{r.Scenario + ".md": []byte(md), r.Scenario + ".json": append(js, '\n')}
	for k, v := range r.extra {
		files[k] = v
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(e.OutDir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(e.OutDir, r.Scenario+".md"), nil
}

// footer is the small print under the charts.
func (r *faultReport) footer() string {
	return fmt.Sprintf("%s, %s mode, %s, %d CPUs %s", r.Scenario, r.Mode, r.Date.Format("2006-01-02"), r.Machine.CPUs, r.Machine.CPUModel)
}

// processCPU is the usage of a process tree now, zero if it is gone.
func processCPU(p *harness.Process) time.Duration {
	if p == nil {
		return 0
	}
	u, err := p.Usage()
	if err != nil {
		return 0
	}
	return u.CPU
}

// stat is the median and range of a value over runs.
type stat struct {
	median, lo, hi float64
	n              int
}

func statOf(vs []float64) stat {
	if len(vs) == 0 {
		return stat{median: math.NaN()}
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	m := len(vs) / 2
	s := stat{lo: vs[0], hi: vs[len(vs)-1], n: len(vs), median: vs[m]}
	if len(vs)%2 == 0 {
		s.median = (vs[m-1] + vs[m]) / 2
	}
	return s
}

// fmtRange renders a stat as "median (lo–hi)", or "median (lo to hi)" when
// the values carry a sign.
func fmtRange(s stat, f func(float64) string) string {
	if s.n == 0 {
		return "—"
	}
	out := f(s.median)
	if lo, hi := f(s.lo), f(s.hi); s.n > 1 && lo != hi {
		sep := "–"
		if strings.HasPrefix(lo, "-") || strings.HasPrefix(lo, "+") {
			sep = " to "
		}
		out += " (" + lo + sep + hi + ")"
	}
	return out
}

// ms renders microseconds as milliseconds with sensible precision.
func ms(us float64) string {
	switch {
	case math.IsNaN(us):
		return "—"
	case us >= 100_000:
		return fmt.Sprintf("%.0f", us/1000)
	case us >= 10_000:
		return fmt.Sprintf("%.1f", us/1000)
	default:
		return fmt.Sprintf("%.2f", us/1000)
	}
}

func pct(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v == 0:
		return "0%"
	case v < 0.01:
		return fmt.Sprintf("%.4f%%", v*100)
	case v < 0.1:
		return fmt.Sprintf("%.2f%%", v*100)
	default:
		return fmt.Sprintf("%.1f%%", v*100)
	}
}

// ninesChart draws latency by percentile (log y, "nines" x) for named
// histograms of microseconds; dashed marks series made of invalid runs.
func ninesChart(title, footer string, names []string, hists []*hdrhistogram.Histogram, dashed []bool) []byte {
	lc := plot.LineChart{
		Title: title, XLabel: "percentile (from the intended send time)", YLabel: "latency", LogY: true,
		YFormat: func(v float64) string {
			if v >= 1000 {
				return fmt.Sprintf("%gms", v/1000)
			}
			return fmt.Sprintf("%gµs", v)
		},
		Footer: footer,
	}
	xmax := 0.0
	for i, h := range hists {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		s := plot.Series{Name: names[i], Color: plot.Palette[(i+1)%len(plot.Palette)], Dashed: dashed[i]}
		top := math.Min(5, math.Floor(math.Log10(float64(h.TotalCount()))*20)/20)
		xmax = math.Max(xmax, top)
		for x := 0.0; x <= top+1e-9; x += 0.05 {
			s.X = append(s.X, x)
			s.Y = append(s.Y, float64(h.ValueAtQuantile(100*(1-math.Pow(10, -x)))))
		}
		lc.Series = append(lc.Series, s)
	}
	for x := 0; x <= int(math.Ceil(xmax)); x++ {
		label := "0%"
		if x > 0 {
			label = strings.TrimSuffix(fmt.Sprintf("%.*f", max(0, x-2), 100*(1-math.Pow(10, -float64(x)))), ".") + "%"
		}
		lc.XTicks = append(lc.XTicks, plot.Tick{Value: float64(x), Label: label})
	}
	return lc.SVG()
}

// writeResult writes the report of a scenario's result, partial ones (which
// come with err) included, and returns err joined with any write error.
func writeResult[R interface {
	comparable
	write(*harness.Env) (string, error)
}](e *harness.Env, res R, err error) error {
	var none R
	if res == none {
		return err
	}
	path, werr := res.write(e)
	if werr != nil {
		return errors.Join(err, werr)
	}
	e.Logf("wrote %s", path)
	return err
}
