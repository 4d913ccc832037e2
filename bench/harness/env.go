package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mode selects how long a scenario measures.
type Mode string

// Modes of a run.
const (
	// Quick finishes in under two minutes, for development.
	Quick Mode = "quick"
	// Full is the mode whose results are committed.
	Full Mode = "full"
)

// Options configure an Env.
type Options struct {
	// Mode is Quick or Full.
	Mode Mode
	// OutDir receives the reports; default <module>/bench/results for Full
	// and <module>/bench/results/tmp (ignored by git) for Quick.
	OutDir string
	// WorkDir holds binaries, configs and logs; default a new temporary
	// directory, removed by Close unless Keep.
	WorkDir string
	// Keep leaves WorkDir in place.
	Keep bool
	// Peers, when not empty, limits the peers to these names (the direct
	// path always runs).
	Peers []string
	// Command is the command line recorded in reports.
	Command string
	// Log receives progress lines; default io.Discard.
	Log io.Writer
	// BuildTimeout bounds each `go build`; default 3 minutes.
	BuildTimeout time.Duration
	// PinSelf moves the harness process to the load CPU.
	PinSelf bool
	// Prio is the scheduling priority of the processes the harness starts;
	// default PrioNone. PrioRT and PrioNice need root (else PrioNone is
	// used, with a warning).
	Prio Prio
	// Scratch sends results to bench/results/tmp by default, whatever the
	// mode (for scenarios whose numbers are not kept).
	Scratch bool
}

// Env is what a scenario runs in.
type Env struct {
	Options
	// ModRoot is the module's root directory.
	ModRoot string
	// Placement says which CPU runs what.
	Placement Placement
	// Backend, Stdproxy and Loadgen are binaries built from the tree.
	Backend, Stdproxy, Loadgen string
	// Wrk is the path of wrk, or "" if it is not installed.
	Wrk string

	tmpWork bool
	mu      sync.Mutex
	builds  map[string]buildResult
}

type buildResult struct {
	path string
	err  error
}

// NewEnv finds the module, builds the harness's own binaries and decides the
// placement.
func NewEnv(ctx context.Context, opts Options) (*Env, error) {
	if opts.Mode == "" {
		opts.Mode = Full
	}
	if opts.Mode != Quick && opts.Mode != Full {
		return nil, fmt.Errorf("unknown mode %q", opts.Mode)
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.BuildTimeout <= 0 {
		opts.BuildTimeout = 3 * time.Minute
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	e := &Env{Options: opts, ModRoot: root, builds: map[string]buildResult{}}
	if e.OutDir == "" {
		e.OutDir = filepath.Join(root, "bench", "results")
		if e.Mode == Quick || e.Scratch {
			e.OutDir = filepath.Join(e.OutDir, "tmp")
		}
	}
	if e.WorkDir == "" {
		if e.WorkDir, err = os.MkdirTemp("", "gatehouse-bench-"); err != nil {
			return nil, err
		}
		e.tmpWork = true
	}
	e.Placement = detectPlacement()
	e.Placement.Prio = e.Prio
	if e.Prio == "" {
		e.Placement.Prio = PrioNone
	}
	switch e.Placement.Prio {
	case PrioNone:
	case PrioRT, PrioNice:
		if os.Geteuid() != 0 {
			e.Logf("warning: priority %q needs root; running with default scheduling", e.Prio)
			e.Placement.Prio = PrioNone
		}
	default:
		return nil, fmt.Errorf("unknown priority %q (rt, nice or none)", e.Prio)
	}
	if e.PinSelf {
		if err := e.Placement.PinSelf(); err != nil {
			e.Logf("warning: could not pin the harness: %v", err)
		}
	}
	if p, err := exec.LookPath("wrk"); err == nil {
		e.Wrk = p
	}
	for _, b := range []struct {
		dst  *string
		name string
	}{{&e.Backend, "backend"}, {&e.Stdproxy, "stdproxy"}, {&e.Loadgen, "loadgen"}} {
		if *b.dst, err = e.Build(ctx, "./bench/cmd/"+b.name, b.name); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// Close removes a temporary work directory.
func (e *Env) Close() {
	if e.tmpWork && !e.Keep {
		os.RemoveAll(e.WorkDir)
	}
}

// Logf writes a progress line.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// wantPeer reports whether the peer filter admits name.
func (e *Env) wantPeer(name string) bool {
	if len(e.Peers) == 0 || name == "direct" {
		return true
	}
	for _, p := range e.Peers {
		if p == name {
			return true
		}
	}
	return false
}

// Build runs `go build -o WORK/bin/name pkg` in the module root, once per
// package and Env, bounded by BuildTimeout. The error carries the tail of the
// compiler's output.
func (e *Env) Build(ctx context.Context, pkg, name string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.builds[pkg]; ok {
		return r.path, r.err
	}
	out := filepath.Join(e.WorkDir, "bin", name)
	ctx, cancel := context.WithTimeout(ctx, e.BuildTimeout)
	defer cancel()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = e.ModRoot
	msg, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("go build %s: not done within %v", pkg, e.BuildTimeout)
		} else {
			err = fmt.Errorf("go build %s: %v: %s", pkg, err, lastLines(string(msg), 3))
		}
		out = ""
	} else {
		e.Logf("built %s in %v", pkg, time.Since(t0).Round(time.Millisecond))
	}
	e.builds[pkg] = buildResult{out, err}
	return out, err
}

// FreePort returns a loopback address with a port that was free a moment
// ago and that it has not returned lately: the kernel may hand the port of
// a listener just closed out again at once, and two FreePort calls for one
// peer (its listener and its admin address) then collided.
func FreePort() (string, error) {
	freePorts.Lock()
	defer freePorts.Unlock()
	for range 64 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		if slices.Contains(freePorts.recent, addr) {
			continue
		}
		if len(freePorts.recent) >= 256 {
			freePorts.recent = freePorts.recent[1:]
		}
		freePorts.recent = append(freePorts.recent, addr)
		return addr, nil
	}
	return "", fmt.Errorf("no loopback port free that was not handed out lately")
}

// freePorts are the addresses FreePort returned lately.
var freePorts struct {
	sync.Mutex
	recent []string
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the gatehouse module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// run runs a short command and returns its trimmed combined output.
func run(ctx context.Context, dir string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var b bytes.Buffer
	cmd.Stdout = &b
	cmd.Stderr = &b
	err := cmd.Run()
	return strings.TrimSpace(b.String()), err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}

func joinShort(ss []string) string {
	s := strings.Join(ss, "; ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
