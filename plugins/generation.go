package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
)

// generation is one version of a plugin (binary + configuration) and the
// process serving it, restarted when it crashes or hangs. It is the Impl of
// its hook.Version: it implements the phase interfaces by calling the
// process. Its processes run its private copy of the binary (exe.go).
type generation struct {
	h       *Host
	id      string
	opts    Options
	config  []byte
	exe     *exeCopy
	version *hook.Version
	phases  sdk.PhaseSet
	log     zerolog.Logger
	cache   *decisionCache // nil: caching off

	proc     atomic.Pointer[wire.Process] // nil while down
	down     atomic.Pointer[string]       // why, while down
	inflight atomic.Int64
	retired  atomic.Bool
	drained  chan struct{} // a call ended on a retired generation
	kick     chan struct{} // a call found the plugin unavailable: ping now

	ctx     context.Context // ends when the generation stops
	cancel  context.CancelFunc
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once
}

// newGeneration starts version o of the plugin: the binary is copied (the
// version is the code copied), and the copy's first process must start and
// pass a health check.
func (h *Host) newGeneration(o Options) (*generation, error) {
	config, err := readConfig(o)
	if err != nil {
		return nil, fmt.Errorf("plugins: plugin %q: %w", o.Name, err)
	}
	exe, id, err := copyBinary(h.dir, o, config)
	if err != nil {
		return nil, fmt.Errorf("plugins: plugin %q: %w", o.Name, err)
	}
	g := &generation{
		h: h, id: id, opts: o, config: config, exe: exe,
		log:     h.log.With().Str("version", id).Logger(),
		drained: make(chan struct{}, 1), kick: make(chan struct{}, 1),
		stopped: make(chan struct{}), done: make(chan struct{}),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if o.CacheEntries > 0 {
		g.cache = newDecisionCache(o.CacheEntries, o.CacheMaxTTL)
	}
	begun := time.Now()
	p, err := g.launch()
	if err != nil {
		g.cancel()
		g.removeExe()
		return nil, fmt.Errorf("plugins: plugin %q (%s, version %s) did not start: %w", o.Name, o.Path, id, err)
	}
	info := p.Info()
	g.phases = info.Phases
	g.version = hook.NewVersion(o.Name, g, id)
	g.version.Wait = true
	g.proc.Store(p)
	if info.FramesError != "" {
		g.log.Warn().Str("error", info.FramesError).Msg("plugin's framed call socket not used; calls go on the gRPC stream")
	}
	g.log.Info().Int("pid", p.Pid()).Str("phases", info.Phases.String()).Str("transport", string(info.Transport)).
		Str("sdk", info.SDKVersion).Dur("took", time.Since(begun)).Msg("plugin started")
	go g.supervise(p)
	return g, nil
}

// launch starts a process of g's copy of the binary, never of the file at
// Options.Path, which may hold another version by now.
func (g *generation) launch() (*wire.Process, error) {
	if err := g.ensureExe(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(g.h.launchCtx)
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()
	return wire.Launch(ctx, wire.LaunchOptions{
		Path: g.exe.path, Args: g.opts.Args, Env: g.opts.Env,
		StartTimeout: g.opts.StartTimeout, SocketDir: g.h.dir, MaxMessageBytes: g.opts.MaxMessageBytes,
		Limits: g.opts.Limits, Log: g.log,
		Conn: wire.ConnOptions{Name: g.opts.Name, Config: g.config, MaxBodyBytes: g.opts.MaxBodyBytes, Transport: g.opts.Transport},
	})
}

// Phases implements sdk.PhaseReporter: the phases the plugin reported.
func (g *generation) Phases() sdk.PhaseSet { return g.phases }

// supervise watches the running process and restarts it, with exponential
// backoff, when it exits or stops answering health checks. Calls fail fast
// while it is down.
func (g *generation) supervise(p *wire.Process) {
	defer close(g.done)
	clk := g.opts.clock
	if clk == nil {
		clk = realClock{}
	}
	backoff := g.opts.RestartBackoff
	// started is when p began serving (taken before it is published, so
	// that whoever sees it up sees its start).
	started := clk.now()
	for {
		reason, stop := g.watch(p)
		g.setDown("stopped")
		g.proc.Store(nil)
		if stop {
			p.Kill()
			return
		}
		p.KillNow() // exited or hung: nothing to ask gracefully
		g.h.upChanged(g, false, reason)
		g.h.stats.restarts.Add(1)
		g.h.setLastError(reason)
		g.log.Error().Str("reason", reason).Int("pid", p.Pid()).Msg("plugin down; restarting it")
		if clk.now().Sub(started) >= g.opts.StableAfter {
			backoff = g.opts.RestartBackoff
		}
		for {
			g.setDown(fmt.Sprintf("%s; restart in %s", reason, backoff))
			if !clk.wait(backoff, g.stopped) {
				return
			}
			backoff = min(2*backoff, g.opts.MaxRestartBackoff)
			begun := time.Now()
			np, err := g.launch()
			if err == nil && np.Info().Phases != g.phases {
				np.Kill()
				err = fmt.Errorf("its phases changed from %s to %s without a new version", g.phases, np.Info().Phases)
			}
			if err != nil {
				reason = "restart failed: " + err.Error()
				g.h.setLastError(reason)
				g.log.Error().Err(err).Dur("next", backoff).Msg("plugin restart failed")
				continue
			}
			p = np
			started = clk.now()
			g.proc.Store(p)
			g.h.upChanged(g, true, "")
			g.log.Info().Int("pid", p.Pid()).Dur("took", time.Since(begun)).Msg("plugin restarted")
			break
		}
	}
}

// watch returns why the process must be replaced, or stop once the
// generation is stopped.
func (g *generation) watch(p *wire.Process) (reason string, stop bool) {
	t := time.NewTicker(g.opts.HealthInterval)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-g.stopped:
			return "", true
		case <-p.Done():
			return "exited: " + p.ExitError().Error(), false
		case <-g.kick:
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.opts.HealthTimeout)
		err := p.Ping(ctx)
		cancel()
		if err == nil {
			fails = 0
			continue
		}
		// A crashed process breaks its connection before its exit is
		// reaped, so pings (and the calls that kick them) fail first. The
		// exit is the authoritative reason: a failed ping counts towards
		// a hang only once the process has had HealthTimeout to be seen
		// exiting.
		grace := time.NewTimer(g.opts.HealthTimeout)
		select {
		case <-p.Done():
			grace.Stop()
			return "exited: " + p.ExitError().Error(), false
		case <-g.stopped:
			grace.Stop()
			return "", true
		case <-grace.C:
		}
		if fails++; fails >= g.opts.HealthFailures {
			return fmt.Sprintf("hung: %d health checks in a row failed (last: %v)", fails, err), false
		}
	}
}

func (g *generation) setDown(s string) { g.down.Store(&s) }

// clock is the time the restart backoff is measured in (Options.clock;
// tests inject one).
type clock interface {
	now() time.Time
	// wait waits d, or until stop is closed (it then reports false).
	wait(d time.Duration, stop <-chan struct{}) bool
}

type realClock struct{}

func (realClock) now() time.Time { return time.Now() }

func (realClock) wait(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// retire stops new calls from using g (they go to the serving version),
// waits for its calls in flight (at most DrainTimeout), then stops its
// process and removes its copy of the binary.
func (g *generation) retire() {
	g.once.Do(func() {
		g.retired.Store(true)
		t := time.NewTimer(g.opts.DrainTimeout)
		defer t.Stop()
	wait:
		for g.inflight.Load() > 0 {
			select {
			case <-g.drained:
			case <-t.C:
				g.log.Warn().Int64("in_flight", g.inflight.Load()).Dur("drain_timeout", g.opts.DrainTimeout).
					Msg("plugin version stopped with calls in flight (drain timeout)")
				break wait
			}
		}
		close(g.stopped)
		g.cancel()
		<-g.done
		g.removeExe()
	})
}

func (g *generation) removeExe() {
	if err := g.exe.remove(); err != nil {
		g.log.Error().Err(err).Msg("private copy of the plugin binary not removed")
	}
}

var errOverloaded = errors.New("over the plugin's bound on calls in flight (max_concurrent)")

// enter takes a call slot: on the serving version when g is retired, never
// over MaxConcurrent, and failing fast while the process is down.
func (g *generation) enter() (*generation, *wire.Process, error) {
	h := g.h
	if h.inflight.Add(1) > h.maxConc.Load() {
		h.inflight.Add(-1)
		h.stats.calls.Add(1)
		h.stats.failures[wire.KindOverloaded].Add(1)
		return nil, nil, &wire.Error{Kind: wire.KindOverloaded, Err: errOverloaded}
	}
	for hops := 0; ; hops++ {
		g.inflight.Add(1)
		if !g.retired.Load() {
			if p := g.proc.Load(); p != nil {
				return g, p, nil
			}
			why := "starting"
			if s := g.down.Load(); s != nil {
				why = *s
			}
			g.release()
			h.stats.calls.Add(1)
			h.stats.failures[wire.KindUnavailable].Add(1)
			return nil, nil, &wire.Error{Kind: wire.KindUnavailable, Err: fmt.Errorf("plugin %q is down (%s)", h.name, why)}
		}
		g.release()
		next := h.cur.Load()
		if next == g || hops >= 4 {
			h.stats.calls.Add(1)
			h.stats.failures[wire.KindUnavailable].Add(1)
			return nil, nil, &wire.Error{Kind: wire.KindUnavailable, Err: fmt.Errorf("plugin %q is closed", h.name)}
		}
		g = next
		h.inflight.Add(1)
	}
}

// release gives back the call slot enter took.
func (g *generation) release() {
	g.h.inflight.Add(-1)
	if g.inflight.Add(-1) == 0 && g.retired.Load() {
		select {
		case g.drained <- struct{}{}:
		default:
		}
	}
}

// record counts a call that reached the wire.
func (g *generation) record(start time.Time, err error) {
	s := &g.h.stats
	s.calls.Add(1)
	s.observe(time.Since(start))
	if err != nil {
		k := wire.KindOf(err)
		s.failures[k].Add(1)
		if k == wire.KindUnavailable {
			select {
			case g.kick <- struct{}{}:
			default:
			}
		}
	}
}

// serving returns the version calls through g go to: g, or the serving
// version once g is retired.
func (g *generation) serving() *generation {
	if g.retired.Load() {
		return g.h.cur.Load()
	}
	return g
}

// cached looks a decision up; it counts hits and misses. It comes before
// enter: a cached decision is served without a call slot, and while the
// process is down (crash, restart backoff) too.
func (g *generation) cached(p sdk.Phase, req *sdk.Request) (any, bool) {
	if g.cache == nil || g.retired.Load() { // retired and still serving: closed
		return nil, false
	}
	d, ok := g.cache.get(p, req)
	if ok {
		g.h.stats.cacheHits.Add(1)
	} else {
		g.h.stats.cacheMisses.Add(1)
	}
	return d, ok
}

func (g *generation) store(p sdk.Phase, req *sdk.Request, hint wire.Hint, d any) {
	if g.cache != nil && hint.TTL > 0 && !g.cache.put(p, req, hint, d) {
		g.log.Debug().Strs("vary", hint.Vary).Msg("cache hint not usable (unknown part or too many vary lists)")
	}
}

// Validate implements sdk.Validator.
func (g *generation) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	if d, ok := g.serving().cached(sdk.PhaseValidate, req); ok {
		return d.(sdk.ValidateDecision), nil
	}
	g, p, err := g.enter()
	if err != nil {
		return sdk.ValidateDecision{}, err
	}
	defer g.release()
	start := time.Now()
	d, hint, err := p.CallValidate(ctx, req)
	g.record(start, err)
	if err == nil {
		g.store(sdk.PhaseValidate, req, hint, d)
	}
	return d, err
}

// Shape implements sdk.Shaper.
func (g *generation) Shape(ctx context.Context, req *sdk.Request) (sdk.ShapeDecision, error) {
	if d, ok := g.serving().cached(sdk.PhaseShape, req); ok {
		return d.(sdk.ShapeDecision), nil
	}
	g, p, err := g.enter()
	if err != nil {
		return sdk.ShapeDecision{}, err
	}
	defer g.release()
	start := time.Now()
	d, hint, err := p.CallShape(ctx, req)
	g.record(start, err)
	if err == nil {
		g.store(sdk.PhaseShape, req, hint, d)
	}
	return d, err
}

// Route implements sdk.Router.
func (g *generation) Route(ctx context.Context, req *sdk.Request) (sdk.RouteDecision, error) {
	if d, ok := g.serving().cached(sdk.PhaseRoute, req); ok {
		return d.(sdk.RouteDecision), nil
	}
	g, p, err := g.enter()
	if err != nil {
		return sdk.RouteDecision{}, err
	}
	defer g.release()
	start := time.Now()
	d, hint, err := p.CallRoute(ctx, req)
	g.record(start, err)
	if err == nil {
		g.store(sdk.PhaseRoute, req, hint, d)
	}
	return d, err
}

// Respond implements sdk.Responder.
func (g *generation) Respond(ctx context.Context, req *sdk.Request, resp *sdk.Response) (sdk.RespondDecision, error) {
	g, p, err := g.enter()
	if err != nil {
		return sdk.RespondDecision{}, err
	}
	defer g.release()
	start := time.Now()
	d, err := p.CallRespond(ctx, req, resp)
	g.record(start, err)
	return d, err
}

// Observe implements sdk.Observer; failures are counted, not returned.
func (g *generation) Observe(ctx context.Context, obs *sdk.Observation) {
	g, p, err := g.enter()
	if err != nil {
		return
	}
	defer g.release()
	start := time.Now()
	g.record(start, p.CallObserve(ctx, obs))
}

var (
	_ sdk.Validator     = (*generation)(nil)
	_ sdk.Shaper        = (*generation)(nil)
	_ sdk.Router        = (*generation)(nil)
	_ sdk.Responder     = (*generation)(nil)
	_ sdk.Observer      = (*generation)(nil)
	_ sdk.PhaseReporter = (*generation)(nil)
	_ hook.Source       = (*Host)(nil)
)
