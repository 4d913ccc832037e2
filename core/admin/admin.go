// Package admin serves the operator's endpoints on their own listener
// (loopback by default): health, readiness, Prometheus metrics, the running
// configuration with secrets redacted, recent, slowest and failed passports
// and those of requests on which a hook call failed, the key numbers, the
// live state machine, reload, and a web page that shows them (assets
// embedded in the binary).
//
// Security: binding to a non-loopback address without a token is refused.
// Mutating endpoints (POST /admin/reload, POST /admin/api/overhead/reset and
// its older form GET /admin/api/overhead?reset=1) always require
// "Authorization: Bearer <token>", and are refused when no token is
// configured. Off loopback,
// every endpoint but /healthz and /readyz requires the token too; from
// loopback without it, the Host must be a loopback name (DNS rebinding).
package admin

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/metrics"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/core/trace"
)

// Deps is what the admin endpoints read and do.
type Deps struct {
	Metrics *metrics.Metrics
	// Ready reports whether the gateway serves traffic (false before it
	// starts, while draining, or while plugins are not up).
	Ready func() bool
	// Gate holds readiness too: /readyz is 200 only when Ready says so and
	// nothing holds the gate.
	Gate *Gate
	// Config returns the running configuration with secrets redacted.
	Config func() any
	// Reload re-reads the configuration source and applies it.
	Reload func() error
	// Hooks lists the hook bindings with their counters (may be nil).
	Hooks func() []metrics.HookStat
	// Admission lists the services with an adaptive concurrency limit
	// (may be nil): /admin/api/status and the page show their state.
	Admission func() []proxy.AdmissionStat
	// Status adds entries to /admin/api/status (may be nil): the
	// configuration's reload record and the extensions' state.
	Status func() map[string]any
	// Observing is false when observe.metrics is off: the page says so.
	Observing bool
	Log       zerolog.Logger
}

// Gate is the readiness gate: anyone (plugin startup, draining) may hold it
// with a reason, and /readyz answers 503 naming the reasons until every
// hold is released.
type Gate struct {
	mu    sync.Mutex
	holds map[string]int
}

// Hold adds a hold with reason; release (idempotent) removes it.
func (g *Gate) Hold(reason string) (release func()) {
	g.mu.Lock()
	if g.holds == nil {
		g.holds = map[string]int{}
	}
	g.holds[reason]++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.holds[reason]--; g.holds[reason] <= 0 {
				delete(g.holds, reason)
			}
			g.mu.Unlock()
		})
	}
}

// Ready reports whether nothing holds the gate, and the reasons otherwise.
func (g *Gate) Ready() (bool, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var why []string
	for r := range g.holds {
		why = append(why, r)
	}
	slices.Sort(why)
	return len(why) == 0, why
}

// Server is the admin listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

//go:embed ui
var ui embed.FS

// ErrTokenRequired is returned by Listen for a non-loopback address without a token.
var ErrTokenRequired = errors.New("admin: a token (admin.token) is required to listen on a non-loopback address")

// Listen binds addr. Off loopback a token is required; see the package doc.
func Listen(addr, token string, d Deps) (*Server, error) {
	if token == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if !loopbackHost(host) {
			return nil, fmt.Errorf("%w (got %q)", ErrTokenRequired, addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if token == "" {
		// A name such as "localhost" may resolve off loopback; check what was bound.
		if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
			ln.Close()
			return nil, fmt.Errorf("%w (bound %s)", ErrTokenRequired, ta)
		}
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: Handler(token, d), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		WriteTimeout: time.Minute, MaxHeaderBytes: 16 << 10}}
	return s, nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handler returns the admin endpoints and the page.
func Handler(token string, d Deps) http.Handler {
	if d.Gate == nil {
		d.Gate = &Gate{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	ready := func() (bool, []string) {
		ok, why := d.Gate.Ready()
		if d.Ready != nil && !d.Ready() {
			ok, why = false, append([]string{"not serving (starting, draining, or plugins not up)"}, why...)
		}
		return ok, why
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := ready(); !ok {
			http.Error(w, "not ready: "+strings.Join(why, ", "), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /admin/config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		yaml.NewEncoder(w).Encode(d.Config())
	})
	// The overhead since the last reset; resetting it changes what the next
	// reader sees (the bench reads and resets around each run), so it is a
	// mutating action: POST /admin/api/overhead/reset, or the older
	// GET /admin/api/overhead?reset=1, both with the token.
	resetOverhead := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.Metrics.Overhead(true))
		d.Log.Info().Str("client", r.RemoteAddr).Msg("overhead histogram reset through the admin API")
	}
	mux.HandleFunc("GET /admin/api/overhead", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("reset") {
			mutating(token, resetOverhead)(w, r)
			return
		}
		writeJSON(w, d.Metrics.Overhead(false))
	})
	mux.HandleFunc("POST /admin/api/overhead/reset", mutating(token, resetOverhead))
	mux.HandleFunc("GET /admin/api/key", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, d.Metrics.Key(true))
	})
	mux.HandleFunc("GET /admin/api/graph", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, d.Metrics.Graph())
	})
	mux.HandleFunc("GET /admin/api/hooks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, hookRows(d.Hooks))
	})
	mux.HandleFunc("GET /admin/api/status", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready()
		st := map[string]any{}
		if d.Status != nil {
			st = d.Status()
		}
		st["ready"], st["holds"], st["observing"], st["admission"] = ok, why, d.Observing, admissionRows(d.Admission)
		writeJSON(w, st)
	})
	mux.HandleFunc("GET /admin/passports", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, passports(d.Metrics, r))
	})
	mux.HandleFunc("POST /admin/reload", mutating(token, func(w http.ResponseWriter, r *http.Request) {
		if err := d.Reload(); err != nil {
			logRefusal(d.Log, r.RemoteAddr, err)
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		d.Log.Info().Str("client", r.RemoteAddr).Msg("configuration reloaded through the admin API")
		w.Write([]byte("reloaded\n"))
	}))
	static, _ := fs.Sub(ui, "ui")
	files := http.FileServerFS(static)
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
		http.ServeFileFS(w, r, static, "index.html")
	})
	return guard(token, mux)
}

// logRefusal logs a configuration that POST /admin/reload refused, as a
// reload on SIGHUP or a file change does: one line per error with its file,
// line, column and key, then the refusal. The client gets the same text,
// but an operator reading the gateway's log must see it too.
func logRefusal(lg zerolog.Logger, client string, err error) {
	var es config.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			lg.Warn().Str("file", e.File).Int("line", e.Line).Int("column", e.Col).Str("key", e.Path).Msg(e.Msg)
		}
	}
	lg.Warn().Str("client", client).Err(err).Msg("configuration refused through the admin API; the previous version keeps serving")
}

// mutating wraps an action that changes the gateway's state: it runs only
// with the bearer token, from anywhere (loopback included), and never while
// no token is configured (403: set admin.token).
func mutating(token string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			http.Error(w, "forbidden: mutating endpoints need admin.token to be set", http.StatusForbidden)
			return
		}
		if !tokenOK(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next(w, r)
	}
}

// guard requires the token from clients off loopback, except for health
// and readiness probes. A loopback client without the token must also name
// a loopback host: a web page elsewhere can make a browser on this machine
// send requests here through DNS rebinding (its own name, now resolving to
// 127.0.0.1), and read the answers, which would bear that name as Host.
func guard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || tokenOK(r, token) {
			next.ServeHTTP(w, r)
			return
		}
		if !fromLoopback(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if !loopbackName(r.Host) {
			http.Error(w, fmt.Sprintf("forbidden: Host %q is not a loopback name (use localhost or 127.0.0.1, or the token): a page elsewhere could be reading the admin endpoints through DNS rebinding", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackName reports whether a Host field names this machine: localhost
// (or a name under .localhost) or a loopback address, with any port.
func loopbackName(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func fromLoopback(r *http.Request) bool {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tokenOK checks the bearer token in constant time; an empty token never matches.
func tokenOK(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// HookRow is one version of a hook binding on the page: calls and failures
// are those the version ran. Current marks the version serving new requests.
type HookRow struct {
	Hook, Scope, Version string
	Current              bool
	Calls                int64
	Failures             map[string]int64
	ErrorRate            float64
	MeanUs               float64
}

// AdmissionRow is one service's admission state in /admin/api/status.
type AdmissionRow struct {
	Service string `json:"service"`
	// Limit is the adaptive concurrency limit now; InFlight the requests
	// admitted and not finished; Queue those waiting.
	Limit    int `json:"limit"`
	InFlight int `json:"in_flight"`
	Queue    int `json:"queue"`
}

func admissionRows(f func() []proxy.AdmissionStat) []AdmissionRow {
	out := []AdmissionRow{}
	if f == nil {
		return out
	}
	for _, a := range f() {
		l := a.Limiter
		out = append(out, AdmissionRow{Service: a.Service, Limit: l.Limit(), InFlight: l.InFlight(), Queue: l.QueueLen()})
	}
	slices.SortFunc(out, func(a, b AdmissionRow) int { return strings.Compare(a.Service, b.Service) })
	return out
}

func hookRows(f func() []metrics.HookStat) []HookRow {
	out := []HookRow{}
	if f == nil {
		return out
	}
	for _, h := range f() {
		n := h.Stats.Load()
		row := HookRow{Hook: h.Hook, Scope: h.Scope, Version: h.Version, Current: h.Current, Calls: n.Calls, Failures: map[string]int64{}}
		for _, k := range hook.FailureKinds() {
			row.Failures[k.String()] = n.Failures[k]
		}
		if row.Calls > 0 {
			row.ErrorRate = float64(n.Failed()) / float64(row.Calls)
			row.MeanUs = float64(n.Nanos) / float64(row.Calls) / 1e3
		}
		out = append(out, row)
	}
	return out
}

// PassportItem is one kept request in /admin/passports.
type PassportItem struct {
	ID, Route, Service, Endpoint, Method, Path, Outcome, Error, Passport string
	Status, Attempts                                                     int
	Start                                                                time.Time
	TotalMs, OverheadMs                                                  float64
	// HookFailures are the hook calls that failed during the request (an
	// open failure leaves the outcome success), read from the passport.
	HookFailures []HookFailure
	// Segments are the passport's intervals, hook calls and attempts, for a waterfall.
	Segments []Segment
}

// HookFailure is one failed hook call of a kept request.
type HookFailure struct {
	Hook, Version, Phase string
	// Kind is how the call failed (timeout, error, panic, invalid,
	// overloaded, unavailable); Policy the policy applied (open, closed).
	Kind, Policy string
}

// Segment is one bar of a waterfall, in ms from the request's start. A
// hook call that failed has Failed set, its label as Name and how it
// failed as Note ("failed=timeout,policy=open", then "+wait" for an
// out-of-process hook).
type Segment struct {
	Kind, Name, Note string
	StartMs, EndMs   float64
	Failed           bool
}

// passports answers
// /admin/passports?kind=recent|slowest|failed|hook_failed&route=&outcome=&hook_failed=&limit=.
// kind=hook_failed lists the requests on which a hook call failed, whatever
// their outcome; hook_failed=true (false) keeps, of any kind, only the
// requests on which a hook call failed (did not).
func passports(m *metrics.Metrics, r *http.Request) []PassportItem {
	q := r.URL.Query()
	var src []metrics.Entry
	switch q.Get("kind") {
	case "slowest":
		src = m.Slowest.Snapshot()
	case "failed":
		src = m.Failed.Snapshot()
	case "hook_failed":
		src = m.HookFailed.Snapshot()
	default:
		src = m.Recent.Snapshot()
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = len(src)
	}
	route, outcome := q.Get("route"), q.Get("outcome")
	hookFailed, err := strconv.ParseBool(q.Get("hook_failed"))
	byHookFailure := err == nil
	out := []PassportItem{}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for i := range src {
		e := &src[i]
		if route != "" && e.Route != route || outcome != "" && e.Outcome != outcome || byHookFailure && (e.HookFailures > 0) != hookFailed {
			continue
		}
		if len(out) == limit {
			break
		}
		it := PassportItem{ID: e.ID, Route: e.Route, Service: e.Service, Endpoint: e.Endpoint, Method: e.Method,
			Path: e.Path, Outcome: e.Outcome, Error: e.Err, Passport: e.Passport(), Status: e.Status, Attempts: e.Attempts,
			Start: e.Start, TotalMs: ms(e.Total), OverheadMs: ms(e.Overhead), HookFailures: []HookFailure{}, Segments: []Segment{}}
		stamps := e.Stamps()
		for _, st := range stamps {
			if st.State != passport.HookExit || !hook.ExitFailed(st.Note) {
				continue
			}
			x := hook.ParseExit(st.Note)
			it.HookFailures = append(it.HookFailures, HookFailure{Hook: x.Hook, Version: x.Version, Phase: x.Phase, Kind: x.Kind, Policy: x.Policy})
		}
		for _, s := range trace.Segments(stamps) {
			it.Segments = append(it.Segments, Segment{Kind: s.Kind.String(), Name: s.Name, Note: s.Note, StartMs: ms(s.Start), EndMs: ms(s.End), Failed: s.Failed})
		}
		out = append(out, it)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the admin listener.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
