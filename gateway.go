// Package gatehouse is the gateway as a library: New builds a Gateway from a
// Config, Serve runs it, Reload applies a new configuration without dropping
// requests, Shutdown drains it. This file is wiring only; the behaviour lives
// in core/.
package gatehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gatehouse/gatehouse/core/accesslog"
	"github.com/gatehouse/gatehouse/core/admin"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/inbound"
	"github.com/gatehouse/gatehouse/core/metrics"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/core/ratelimit"
	"github.com/gatehouse/gatehouse/core/trace"
	"github.com/gatehouse/gatehouse/core/traceparent"
	"github.com/gatehouse/gatehouse/plugins/wire"
)

// Config is the gateway configuration; see package core/config and
// docs/config.md. config.Default() returns one with every bound set.
type Config = config.Config

// Version is the gateway's version, set at build time with -ldflags.
var Version = "dev"

// Gateway is a running gateway.
type Gateway struct {
	log        zerolog.Logger
	logSink    *logSink // nil when the logger came from WithLogger
	access     zerolog.Logger
	accessSink *logSink // nil when the access logger came from WithAccessLog
	accessLog  *accesslog.Logger
	// logOut and accessOut are where the gateway's own loggers write
	// (default stderr and stdout); givenLog and givenAccess say that
	// WithLogger and WithAccessLog replaced them.
	logOut, accessOut     io.Writer
	givenLog, givenAccess bool

	shared  *proxy.Shared
	metrics *metrics.Metrics
	rt      atomic.Pointer[proxy.Runtime]
	source  func() (*Config, error)

	accessOn atomic.Bool
	draining atomic.Bool
	serving  atomic.Bool

	ctx     context.Context // ends at Shutdown: script watchers
	cancel  context.CancelFunc
	scripts map[string]*scriptHost
	plugins pluginSet
	gate    admin.Gate    // readiness holds (see Readiness)
	tracer  *trace.Tracer // nil unless observe.tracing.enabled
	spanExp sdktrace.SpanExporter

	// reloadMu serializes reloads (and Shutdown's closing of scripts and
	// plugins): a reload opens scripts, starts plugins and binds listeners
	// under it alone, which may take a plugin's start_timeout, and takes mu
	// only to swap the result in. g.scripts, g.listeners and g.cfg change
	// under both; readers hold either.
	reloadMu sync.Mutex

	reloads reloadRecord

	mu        sync.Mutex
	cfg       *Config
	listeners map[string]*inbound.Listener // by address
	admin     *admin.Server
	stop      chan struct{}
	stopOnce  sync.Once
	bg        sync.WaitGroup
}

// Option adjusts a Gateway at construction.
type Option func(*Gateway)

// WithLogger sets the process logger (default: from cfg.Logging, to
// stderr). The embedding program owns its level and format: a reload
// changing logging.level or logging.format does not change it (and says so).
func WithLogger(lg zerolog.Logger) Option {
	return func(g *Gateway) { g.log, g.givenLog = lg, true }
}

// WithAccessLog sets the logger access log lines go to (default: stdout, in
// cfg.Logging's format). Every request is logged to it, successes at info
// and failures at warn, whatever logging.level says, while
// logging.access_log is on.
func WithAccessLog(lg zerolog.Logger) Option {
	return func(g *Gateway) { g.access, g.givenAccess = lg, true }
}

// WithLogOutput sets where the gateway's own loggers write: the process
// log to process (default stderr) and the access log to access (default
// stdout); nil keeps the default. Both follow logging.format, the process
// log logging.level, and a reload applies changes to either.
func WithLogOutput(process, access io.Writer) Option {
	return func(g *Gateway) {
		if process != nil {
			g.logOut = process
		}
		if access != nil {
			g.accessOut = access
		}
	}
}

// WithSource sets how /admin/reload re-reads the configuration (for example
// from the file the gateway was started with). Without it, admin reload is refused.
func WithSource(f func() (*Config, error)) Option { return func(g *Gateway) { g.source = f } }

// WithObserver adds an observer of finished requests (after metrics and the access log).
func WithObserver(o proxy.Observer) Option {
	return func(g *Gateway) { g.shared.Observers = append(g.shared.Observers, o) }
}

// WithSpanExporter sends spans to exp instead of the OTLP endpoint of
// observe.tracing (which must still be enabled), for embedding programs and tests.
func WithSpanExporter(exp sdktrace.SpanExporter) Option { return func(g *Gateway) { g.spanExp = exp } }

// NewLogger builds a logger for the logging settings (level and format),
// writing to w.
func NewLogger(l config.Logging, w io.Writer) zerolog.Logger {
	return zerolog.New(newLogSink(w, l, true)).With().Timestamp().Logger()
}

func init() { zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" }

// logSink is what a logger the gateway builds writes to: it applies
// logging.format and, for the process log, logging.level, so that a reload
// can change both without replacing the loggers handed out to listeners,
// scripts and plugins. The access log's sink has no level: it writes one
// line per request whatever the process log's level.
type logSink struct {
	out    io.Writer
	levels bool         // drop lines below min (the process log)
	min    atomic.Int32 // a zerolog.Level
	w      atomic.Pointer[formatted]
}

// formatted is out in one logging.format: as it is (json) or through a
// zerolog.ConsoleWriter (console).
type formatted struct {
	format string
	w      io.Writer
}

func newLogSink(out io.Writer, l config.Logging, levels bool) *logSink {
	s := &logSink{out: out, levels: levels}
	s.apply(l)
	return s
}

// apply switches the sink to l's level and format; lines being written
// finish in the previous ones.
func (s *logSink) apply(l config.Logging) {
	if s.levels {
		lvl, err := zerolog.ParseLevel(l.Level)
		if err != nil || l.Level == "" {
			lvl = zerolog.InfoLevel // NewLogger may get settings config.Validate has not seen
		}
		s.min.Store(int32(lvl))
	}
	if cur := s.w.Load(); cur != nil && cur.format == l.Format {
		return
	}
	f := &formatted{format: l.Format, w: s.out}
	if l.Format == "console" {
		f.w = zerolog.ConsoleWriter{Out: s.out, TimeFormat: "15:04:05.000"}
	}
	s.w.Store(f)
}

func (s *logSink) Write(p []byte) (int, error) { return s.w.Load().w.Write(p) }

func (s *logSink) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if s.levels && int32(l) < s.min.Load() {
		return len(p), nil
	}
	return s.Write(p)
}

// applyLogging applies a reload's logging settings to the loggers the
// gateway built, and says what changed. g.mu is held.
func (g *Gateway) applyLogging(old, next config.Logging) {
	if g.logSink != nil {
		g.logSink.apply(next)
	}
	if g.accessSink != nil {
		g.accessSink.apply(next)
	}
	g.accessOn.Store(next.AccessLog)
	if old == next {
		return
	}
	g.log.Info().Str("log_level", next.Level).Str("log_format", next.Format).Bool("access_log", next.AccessLog).
		Msg("logging settings applied")
	if g.givenLog && (old.Level != next.Level || old.Format != next.Format) {
		g.log.Warn().Msg("logging.level and logging.format do not apply to the process logger the embedding program gave (WithLogger); it keeps its own")
	}
	if g.givenAccess && old.Format != next.Format {
		g.log.Warn().Msg("logging.format does not apply to the access logger the embedding program gave (WithAccessLog); it keeps its own")
	}
}

// New validates cfg, binds the listeners and the admin listener, and
// returns a Gateway ready to Serve.
func New(cfg Config, opts ...Option) (*Gateway, error) {
	c := cfg.Clone()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: c, shared: &proxy.Shared{}, listeners: map[string]*inbound.Listener{}, stop: make(chan struct{}),
		logOut: os.Stderr, accessOut: os.Stdout}
	g.metrics = metrics.NewWithOptions(metrics.Options{InFlight: func() float64 { return float64(g.shared.InFlight()) },
		Passports: c.Observe.Passports})
	g.metrics.Registry.MustRegister(metrics.EndpointCollector{Endpoints: g.endpointStats}, metrics.TraceCollector{Stats: g.traceStats})
	g.metrics.Registry.MustRegister(metrics.HookCollector{Hooks: g.hookStats, Scripts: g.scriptStats})
	g.metrics.Registry.MustRegister(metrics.ShapingCollector{Shaping: func() ([]proxy.AdmissionStat, []proxy.RateLimitStat, *ratelimit.Redis) {
		return g.current().Shaping()
	}})
	g.metrics.Registry.MustRegister(g.plugins.collector())
	g.reloads.applied(c, time.Now())
	g.metrics.Registry.MustRegister(metrics.ConfigCollector{Stat: g.reloads.stat})
	// g.accessLog is set once the options are applied, before any request.
	g.shared.Observers = []proxy.Observer{proxy.ObserverFunc(func(r *proxy.Record) {
		if g.accessOn.Load() {
			g.accessLog.Observe(r)
		}
	})}
	if c.Observe.Metrics {
		g.shared.Observers = append([]proxy.Observer{g.metrics}, g.shared.Observers...)
	}
	for _, o := range opts {
		o(g)
	}
	if !g.givenLog {
		g.logSink = newLogSink(g.logOut, c.Logging, true)
		g.log = zerolog.New(g.logSink).With().Timestamp().Logger()
	}
	if !g.givenAccess {
		g.accessSink = newLogSink(g.accessOut, c.Logging, false)
		g.access = zerolog.New(g.accessSink).With().Timestamp().Logger()
	}
	g.accessLog = accesslog.New(g.access)
	if err := g.startTracing(c.Observe.Tracing); err != nil {
		return nil, err
	}
	g.accessOn.Store(c.Logging.AccessLog)
	g.shared.Log = g.log
	g.ctx, g.cancel = context.WithCancel(context.Background())
	hosts, err := g.openScripts(c)
	if err != nil {
		g.cancel()
		return nil, err
	}
	g.scripts = hosts
	g.shared.Scripts = scriptSource(hosts)
	starting := g.gate.Hold("plugins starting")
	plan, err := g.openPlugins(c)
	starting()
	if err != nil {
		closeScripts(hosts, nil)
		g.cancel()
		return nil, err
	}
	g.plugins.commit(plan)
	g.shared.Plugins = g.plugins.source(plan.next)
	rt, err := proxy.Build(c, g.shared)
	if err != nil {
		closeScripts(hosts, nil)
		g.plugins.closeAll()
		g.cancel()
		return nil, err
	}
	g.rt.Store(rt)
	rt.Activate()
	for i, lc := range c.Listeners {
		l, err := inbound.Listen(inbound.Config{Listener: lc, Limits: c.Limits.Server}, g.current, g.shared, g.log)
		if err != nil {
			g.closeListeners()
			g.abandon()
			return nil, listenError(c, i, err)
		}
		g.listeners[lc.Address] = l
	}
	a, err := admin.Listen(c.Admin.Address, c.Admin.Token, admin.Deps{
		Metrics: g.metrics,
		Ready:   func() bool { return g.serving.Load() && !g.draining.Load() },
		Config:  func() any { g.mu.Lock(); defer g.mu.Unlock(); return g.cfg.Redacted() },
		Reload:  g.reloadFromSource,
		Log:     g.log,

		Gate:  &g.gate,
		Hooks: g.hookStats,
		Admission: func() []proxy.AdmissionStat {
			if rt := g.current(); rt != nil {
				adm, _, _ := rt.Shaping()
				return adm
			}
			return nil
		},
		Observing: c.Observe.Metrics,
		Status:    g.status,
	})
	if err != nil {
		g.closeListeners()
		g.abandon()
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	g.admin = a
	return g, nil
}

func (g *Gateway) current() *proxy.Runtime { return g.rt.Load() }

// Readiness returns the readiness gate: while anything holds it, /readyz
// answers 503 with the holds' reasons (for example plugins starting).
func (g *Gateway) Readiness() *admin.Gate { return &g.gate }

// startTracing starts the tracer when tracing is enabled: the proxy then
// reads and sends trace context, and sampled requests become spans.
func (g *Gateway) startTracing(t config.Tracing) error {
	if !t.Enabled {
		return nil
	}
	exp := g.spanExp
	if exp == nil {
		var err error
		if exp, err = trace.NewOTLP(t.Endpoint, t.ExportTimeout.Std()); err != nil {
			return fmt.Errorf("observe.tracing: %w", err)
		}
	}
	tr, err := trace.New(trace.Options{Exporter: exp, Queue: t.Queue, BatchSize: t.BatchSize, ExportTimeout: t.ExportTimeout.Std(),
		BatchDelay: t.BatchDelay.Std(), ServiceName: t.ServiceName, Version: Version})
	if err != nil {
		return fmt.Errorf("observe.tracing: %w", err)
	}
	g.tracer = tr
	s := traceparent.NewSampler(float64(t.SamplePerMillion) / 1e6)
	g.shared.Tracing.Store(&s)
	g.shared.Observers = append(g.shared.Observers, tr)
	return nil
}

func (g *Gateway) traceStats() metrics.TraceStat {
	if g.tracer == nil {
		return metrics.TraceStat{}
	}
	s := g.tracer.Stats()
	return metrics.TraceStat{Built: s.Built, Dropped: s.Dropped, Queued: s.Queued, Capacity: s.Capacity}
}

// endpointStats lists every endpoint of the running configuration for /metrics.
func (g *Gateway) endpointStats() []metrics.EndpointStat {
	rt := g.current()
	if rt == nil {
		return nil
	}
	var out []metrics.EndpointStat
	for name, svc := range rt.Services() {
		for _, ep := range svc.Endpoints {
			out = append(out, metrics.EndpointStat{Service: name, Addr: ep.Addr, Stats: ep.Stats()})
		}
	}
	return out
}

// hookStats lists the running configuration's hook bindings for /metrics
// and /admin/api/hooks: one entry per binding and version, each with the
// calls and failures that version ran (the current one, and the last ones
// before it: see hook.MaxVersions).
func (g *Gateway) hookStats() []metrics.HookStat {
	rt := g.current()
	if rt == nil {
		return nil
	}
	scopes, bs := rt.HookBindings()
	out := make([]metrics.HookStat, 0, len(bs))
	for i, b := range bs {
		cur := ""
		if v := b.Source.Current(); v != nil {
			cur = v.ID
		}
		for _, vs := range b.Versions() {
			out = append(out, metrics.HookStat{Hook: b.Name, Scope: scopes[i], Version: vs.Version, Current: vs.Version == cur, Stats: &vs.Stats})
		}
	}
	return out
}

func init() { hook.RegisterErrorKinds(pluginErrorKind) }

// pluginErrorKind says which hook failure a plugin call's error is, so that
// a binding's failures (gatehouse_hook_failures_total) are counted under
// the kind the plugin's own counters (gatehouse_plugin_failures_total) give
// them: overloaded, timeout, unavailable and invalid are theirs; a plugin's
// error, a message over its bound and any other failure of the call are
// errors.
func pluginErrorKind(err error) (hook.FailureKind, bool) {
	var e *wire.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	switch e.Kind {
	case wire.KindOverloaded:
		return hook.FailOverloaded, true
	case wire.KindTimeout:
		return hook.FailTimeout, true
	case wire.KindUnavailable:
		return hook.FailUnavailable, true
	case wire.KindInvalid:
		return hook.FailInvalid, true
	}
	return hook.FailError, true
}

// scriptStats lists the script hosts' reloads and refusals for /metrics.
func (g *Gateway) scriptStats() []metrics.ScriptStat {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]metrics.ScriptStat, 0, len(g.scripts))
	for name, sh := range g.scripts {
		st := sh.host.Stats()
		out = append(out, metrics.ScriptStat{Name: name, Version: st.Version, Reloads: st.Reloads, Refusals: st.Refusals, Missing: st.Missing})
	}
	return out
}

// abandon releases what New opened before it failed.
func (g *Gateway) abandon() {
	closeScripts(g.scripts, nil)
	g.plugins.closeAll()
	g.cancel()
	if o := g.shared.HookObservers; o != nil {
		o.Close()
	}
	g.shared.Close()
	if g.tracer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g.tracer.Shutdown(ctx)
		cancel()
	}
}

func (g *Gateway) closeListeners() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, l := range g.listeners {
		l.Shutdown(ctx)
	}
}

// Addr returns the bound address of the listener with the given name.
func (g *Gateway) Addr(name string) net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.listeners {
		if l.Config().Name == name {
			return l.Addr()
		}
	}
	return nil
}

// AdminAddr returns the admin listener's bound address.
func (g *Gateway) AdminAddr() net.Addr { return g.admin.Addr() }

// Logger returns the process logger: the one given with WithLogger, or the
// gateway's own, whose level and format follow reloads. A program that logs
// its own lines about the gateway (reloads on SIGHUP) should use it, so that
// they follow logging.level and logging.format too.
func (g *Gateway) Logger() zerolog.Logger { return g.log }

// Metrics returns the gateway's metrics (for embedding programs).
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// Serve serves until ctx ends or Shutdown is called; when ctx ends it
// drains within limits.server.drain_timeout.
func (g *Gateway) Serve(ctx context.Context) error {
	g.mu.Lock()
	if g.draining.Load() {
		g.mu.Unlock()
		return errors.New("gateway is shut down")
	}
	for _, l := range g.listeners {
		l.Start()
	}
	g.bg.Add(2) // under mu, so that Shutdown's Wait comes after it
	g.serving.Store(true)
	g.mu.Unlock()
	go func() { defer g.bg.Done(); g.metrics.Run(g.stop) }()
	adminErr := make(chan error, 1)
	go func() { adminErr <- g.admin.Serve() }()
	go g.janitor()
	g.log.Info().Str("version", Version).Str("admin", g.admin.Addr().String()).Msg("gatehouse serving")
	select {
	case <-ctx.Done():
		g.mu.Lock()
		drain := g.cfg.Limits.Server.DrainTimeout.Std()
		g.mu.Unlock()
		sctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		return g.Shutdown(sctx)
	case <-g.stop:
		return nil
	case err := <-adminErr:
		if err != nil {
			g.log.Error().Err(err).Msg("admin listener failed")
		}
		<-g.stop
		return err
	}
}

// janitor closes upstream connections idle past their timeout.
func (g *Gateway) janitor() {
	defer g.bg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.current().CloseIdle(false)
		case <-g.stop:
			return
		}
	}
}

// Reload validates cfg and applies it: routes, services and limits switch
// atomically for new requests (requests in flight finish on the version they
// began with); listeners whose address is unchanged keep their sockets.
// An invalid cfg is refused with every error and the running version stays.
//
// Reloads run one at a time. The slow part of a reload (compiling scripts,
// starting plugins, binding listeners) holds no lock that /metrics or the
// admin endpoints take: they keep answering from the running version until
// the new one is swapped in.
func (g *Gateway) Reload(cfg Config) error {
	c := cfg.Clone()
	err := g.reload(c)
	if err != nil {
		g.reloads.refused(err, time.Now())
	}
	return err
}

// ReloadRefused records a reload refused before it reached Reload: the
// configuration file could not be read or parsed. It counts in
// gatehouse_config_reloads_total{result="refused"} and the admin status
// like a configuration Reload refuses.
func (g *Gateway) ReloadRefused(err error) { g.reloads.refused(err, time.Now()) }

func (g *Gateway) reload(c *Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.draining.Load() {
		return errShuttingDown
	}
	// g.scripts, g.listeners and g.cfg change only under reloadMu, which is
	// held: they are read here without mu.
	hosts, err := g.openScripts(c)
	if err != nil {
		return err
	}
	plan, err := g.openPlugins(c)
	if err != nil {
		closeScripts(hosts, g.scripts)
		return err
	}
	prevScripts, prevPlugins := g.shared.Scripts, g.shared.Plugins
	g.shared.Scripts = scriptSource(hosts)
	g.shared.Plugins = g.plugins.source(plan.next)
	// refuse undoes what this reload opened, for a configuration refused.
	var added map[string]*inbound.Listener
	refuse := func(err error) error {
		for _, a := range added {
			a.Shutdown(context.Background())
		}
		g.shared.Scripts, g.shared.Plugins = prevScripts, prevPlugins
		closeScripts(hosts, g.scripts)
		g.rollbackPlugins(plan)
		return err
	}
	rt, err := proxy.Build(c, g.shared)
	if err != nil {
		return refuse(err)
	}
	// Listeners: bind new addresses first, so a failure leaves everything as it was.
	// A listener is the same when its address is, or when the new address
	// is what a port-0 listener is bound to.
	kept := map[string]*inbound.Listener{}
	keptCfg := map[*inbound.Listener]config.Listener{}
	added = map[string]*inbound.Listener{}
	for i, lc := range c.Listeners {
		if l := g.findListener(lc.Address); l != nil {
			kept[lc.Address] = l
			keptCfg[l] = lc
			continue
		}
		l, err := inbound.Listen(inbound.Config{Listener: lc, Limits: c.Limits.Server}, g.current, g.shared, g.log)
		if err != nil {
			return refuse(listenError(c, i, err))
		}
		added[lc.Address] = l
	}
	if c.Admin != g.cfg.Admin {
		g.log.Warn().Msg("admin listener settings change on restart only; keeping the running admin listener")
	}

	g.mu.Lock()
	if g.draining.Load() {
		g.mu.Unlock()
		return refuse(errShuttingDown)
	}
	old := g.rt.Swap(rt)
	rt.Activate()
	old.Retire()
	prevHosts := g.scripts
	g.scripts = hosts
	g.plugins.commit(plan)
	for addr, l := range g.listeners {
		lc, keep := keptCfg[l]
		if !keep {
			delete(g.listeners, addr)
			drain := g.cfg.Limits.Server.DrainTimeout.Std()
			g.bg.Add(1)
			go func() {
				defer g.bg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), drain)
				defer cancel()
				l.Shutdown(ctx)
			}()
			continue
		}
		if err := l.Update(inbound.Config{Listener: lc, Limits: c.Limits.Server}); err != nil {
			g.log.Error().Err(err).Str("listener", lc.Name).Msg("listener keeps its previous settings")
		}
	}
	for addr, l := range kept {
		for old, x := range g.listeners {
			if x == l && old != addr {
				delete(g.listeners, old)
			}
		}
		g.listeners[addr] = l
	}
	for addr, l := range added {
		g.listeners[addr] = l
		if g.serving.Load() {
			l.Start()
		}
	}
	prev := g.cfg
	g.cfg = c
	g.applyLogging(prev.Logging, c.Logging)
	g.mu.Unlock()
	// Closing a script host waits for its watcher (a compile in progress):
	// outside mu.
	closeScripts(prevHosts, hosts)
	g.reloads.applied(c, time.Now())
	g.log.Info().Int("routes", len(c.Routes)).Int("services", len(c.Services)).Msg("configuration applied")
	return nil
}

var errShuttingDown = errors.New("gateway is shutting down")

// listenError is the error of listener i of c that did not bind, at the
// position of its address in the configuration file.
func listenError(c *Config, i int, err error) error {
	return config.Errors{c.ErrorAt(fmt.Sprintf("listeners[%d].address", i), err.Error())}
}

// findListener returns the listener configured with, or bound to, addr.
// g.mu or g.reloadMu is held.
func (g *Gateway) findListener(addr string) *inbound.Listener {
	if l := g.listeners[addr]; l != nil {
		return l
	}
	for _, l := range g.listeners {
		if l.Addr().String() == addr {
			return l
		}
	}
	return nil
}

func (g *Gateway) reloadFromSource() error {
	if g.source == nil {
		return errors.New("this gateway has no configuration source to reload from")
	}
	cfg, err := g.source()
	if err != nil {
		g.ReloadRefused(err)
		return err
	}
	return g.Reload(*cfg)
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes what is left. It is safe to call more than once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.log.Info().Int64("in_flight", g.shared.InFlight()).Msg("draining: no new connections; waiting for the requests in flight")
	g.mu.Lock()
	g.draining.Store(true)
	ls := make([]*inbound.Listener, 0, len(g.listeners))
	for _, l := range g.listeners {
		ls = append(ls, l)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = l.Shutdown(ctx) }()
	}
	wg.Wait()
	g.admin.Shutdown(ctx)
	g.stopOnce.Do(func() { close(g.stop) })
	g.bg.Wait()
	g.current().CloseIdle(true)
	g.current().Retire()
	// After a reload in progress, which sees draining and refuses itself.
	g.reloadMu.Lock()
	g.mu.Lock()
	hosts := g.scripts
	g.scripts = nil
	g.mu.Unlock()
	closeScripts(hosts, nil)
	g.plugins.closeAll()
	g.reloadMu.Unlock()
	g.cancel()
	if o := g.shared.HookObservers; o != nil {
		o.Close()
	}
	g.shared.Close()
	if g.tracer != nil {
		g.tracer.Shutdown(ctx) // exports what is queued, within ctx
	}
	g.serving.Store(false)
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the drain ended with requests still in flight (limits.server.drain_timeout); they were cut (outcome shutting_down): %w", err)
		}
		g.log.Warn().Err(err).Msg("stopped")
		return err
	}
	g.log.Info().Msg("stopped: every request finished")
	return nil
}

// reloadRecord is the record of the configuration's reloads, for /metrics
// and /admin/api/status.
type reloadRecord struct {
	mu      sync.Mutex
	st      metrics.ConfigStat
	lastErr string
}

func (r *reloadRecord) applied(c *Config, at time.Time) {
	h := c.Hash()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.st.LastApplied.IsZero() {
		r.st.Applied++
		r.st.LastAttempt = at
	}
	r.st.LastOK, r.st.LastApplied, r.st.Hash, r.lastErr = true, at, h, ""
}

func (r *reloadRecord) refused(err error, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Refused++
	r.st.LastOK, r.st.LastAttempt, r.lastErr = false, at, err.Error()
}

func (r *reloadRecord) stat() metrics.ConfigStat {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// status is the record for /admin/api/status.
func (r *reloadRecord) status() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]any{"hash": r.st.Hash, "applied": r.st.Applied, "refused": r.st.Refused,
		"last_reload_ok": r.st.LastOK, "last_applied": r.st.LastApplied}
	if !r.st.LastAttempt.IsZero() {
		m["last_reload"] = r.st.LastAttempt
	}
	if r.lastErr != "" {
		m["last_error"] = r.lastErr
	}
	return m
}

// status is what /admin/api/status adds to readiness: the configuration's
// reload record, and each plugin's and script's state with the last error
// it met (a version refused, a restart that failed).
func (g *Gateway) status() map[string]any {
	ps := []map[string]any{}
	for _, st := range g.plugins.stats() {
		p := map[string]any{"name": st.Name, "version": st.Version, "up": st.Up, "pid": st.PID, "transport": st.Transport,
			"restarts": st.Restarts, "reloads": st.Reloads, "refusals": st.Refusals}
		if st.LastError != "" {
			p["last_error"] = st.LastError
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b map[string]any) int { return strings.Compare(a["name"].(string), b["name"].(string)) })
	g.mu.Lock()
	ss := make([]map[string]any, 0, len(g.scripts))
	for name, sh := range g.scripts {
		st := sh.host.Stats()
		m := map[string]any{"name": name, "version": st.Version, "missing": st.Missing, "reloads": st.Reloads, "refusals": st.Refusals}
		if st.LastError != "" {
			m["last_error"] = st.LastError
		}
		ss = append(ss, m)
	}
	g.mu.Unlock()
	slices.SortFunc(ss, func(a, b map[string]any) int { return strings.Compare(a["name"].(string), b["name"].(string)) })
	return map[string]any{"config": g.reloads.status(), "plugins": ps, "scripts": ss}
}
