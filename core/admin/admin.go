// Package admin serves the operator's endpoints on their own listener
// (loopback by default): health, readiness, Prometheus metrics, the running
// configuration with secrets redacted, recent passports, the overhead
// distribution, and reload.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/core/metrics"
)

// Deps is what the admin endpoints read and do.
type Deps struct {
	Metrics *metrics.Metrics
	// Ready reports whether the gateway serves traffic (false while draining).
	Ready func() bool
	// Config returns the running configuration with secrets redacted.
	Config func() any
	// Reload re-reads the configuration source and applies it.
	Reload func() error
	Log    zerolog.Logger
}

// Server is the admin listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr. A token, when set, is required on mutating endpoints.
func Listen(addr, token string, d Deps) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if d.Ready != nil && !d.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /admin/config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		yaml.NewEncoder(w).Encode(d.Config())
	})
	mux.HandleFunc("GET /admin/api/overhead", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.Metrics.Overhead(r.URL.Query().Get("reset") == "1"))
	})
	mux.HandleFunc("GET /admin/passports", func(w http.ResponseWriter, r *http.Request) {
		route, outcome := r.URL.Query().Get("route"), r.URL.Query().Get("outcome")
		type item struct {
			ID, Route, Service, Endpoint, Method, Path, Outcome, Error, Passport string
			Status                                                               int
			Start                                                                time.Time
			TotalMs, OverheadMs                                                  float64
		}
		var out []item
		for _, e := range d.Metrics.Recent.Snapshot() {
			if route != "" && e.Route != route || outcome != "" && e.Outcome != outcome {
				continue
			}
			out = append(out, item{ID: e.ID, Route: e.Route, Service: e.Service, Endpoint: e.Endpoint, Method: e.Method,
				Path: e.Path, Outcome: e.Outcome, Error: e.Err, Passport: e.Passport(), Status: e.Status, Start: e.Start,
				TotalMs: float64(e.Total.Microseconds()) / 1000, OverheadMs: float64(e.Overhead.Microseconds()) / 1000})
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("POST /admin/reload", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, token) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if err := d.Reload(); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Write([]byte("reloaded\n"))
	})
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		WriteTimeout: time.Minute, MaxHeaderBytes: 16 << 10}}
	return s, nil
}

// authorized checks the bearer token; with no token configured, only
// loopback clients may call mutating endpoints.
func authorized(r *http.Request, token string) bool {
	if token == "" {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
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
