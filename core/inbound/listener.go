// Package inbound is the edge between net/http's server and the engine:
// listeners with bounded connections, header read timeout, max header bytes
// and idle timeout; HTTP/1.1, HTTP/2 over TLS (ALPN) and h2c; sockets kept
// across reloads; and the handler that turns an *http.Request into the
// engine's request view. Nothing past this package sees net/http's server
// types.
package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/proxy"
)

// Config is one listener's settings.
type Config struct {
	config.Listener
	Limits config.ServerLimits
}

// Listener is one public socket and the server that currently serves it.
type Listener struct {
	current func() *proxy.Runtime
	log     zerolog.Logger
	sock    *socket
	cert    atomic.Pointer[tls.Certificate]
	// h2Refused records what net/http's HTTP/2 server refused itself.
	h2Refused func(errType string)

	mu      sync.Mutex
	cfg     Config
	srv     *http.Server
	h       *handler
	view    *view
	retired []*http.Server // replaced servers still finishing their connections
	closed  chan struct{}  // closed by Shutdown
	wg      sync.WaitGroup // server goroutines
}

// Listen binds cfg.Address. Serving starts with Start.
func Listen(cfg Config, current func() *proxy.Runtime, shared *proxy.Shared, lg zerolog.Logger) (*Listener, error) {
	l := &Listener{current: current, cfg: cfg, log: lg.With().Str("listener", cfg.Name).Logger(), closed: make(chan struct{})}
	if cfg.TLS != nil {
		if err := l.loadCert(cfg.TLS); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", cfg.Name, err)
	}
	l.sock = newSocket(ln, cfg.Limits.MaxConnections, cfg.TLS != nil)
	name := cfg.Name
	l.sock.onAbandoned = func(remote string, start time.Time, k failure.Kind, status int, msg string) {
		shared.Abandoned(name, remote, start, k, status, msg)
	}
	l.h2Refused = func(errType string) {
		shared.Abandoned(name, "", time.Now(), failure.Malformed, 0, h2RefusedMsg(errType))
	}
	return l, nil
}

// Addr returns the bound address (useful with port 0).
func (l *Listener) Addr() net.Addr { return l.sock.ln.Addr() }

// Config returns the listener's current settings.
func (l *Listener) Config() Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

func (l *Listener) loadCert(t *config.TLS) error {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return fmt.Errorf("listener tls: %w", err)
	}
	l.cert.Store(&cert)
	return nil
}

// Start serves the socket with a server built from the current settings.
func (l *Listener) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.startLocked()
}

func (l *Listener) startLocked() {
	cfg := l.cfg
	lim := cfg.Limits
	h := &handler{name: cfg.Name, trustForwarded: cfg.TrustForwarded, tls: cfg.TLS != nil, current: l.current,
		maxHeaderBytes: int(lim.MaxHeaderBytes), keepEscapedSlashes: cfg.KeepEscapedSlashes}
	var protos http.Protocols
	protos.SetHTTP1(true)
	if cfg.TLS != nil {
		protos.SetHTTP2(true)
	}
	if cfg.H2C {
		protos.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.HeaderTimeout.Std(),
		IdleTimeout:       lim.IdleTimeout.Std(),
		MaxHeaderBytes:    int(lim.MaxHeaderBytes),
		ConnContext:       connContext,
		// "OPTIONS *" reaches the handler, which checks its framing.
		DisableGeneralOptionsHandler: true,
		Protocols:                    &protos,
		HTTP2:                        &http.HTTP2Config{MaxConcurrentStreams: 250, CountError: l.h2Refused},
		ErrorLog:                     log.New(errorLogWriter{l.log}, "", 0),
	}
	v := l.sock.newView()
	l.srv, l.view, l.h = srv, v, h
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		var err error
		if cfg.TLS != nil {
			srv.TLSConfig = &tls.Config{
				MinVersion:     tls.VersionTLS12,
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.Load(), nil },
			}
			err = srv.ServeTLS(v, "", "")
		} else {
			err = srv.Serve(v)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			l.log.Error().Err(err).Msg("listener stopped")
		}
	}()
}

// Update applies new settings for the same address without closing the
// socket. Certificates and the connection limit change in place; other
// server settings start a new server on the same socket while the old one
// drains its connections within limits.server.drain_timeout.
func (l *Listener) Update(cfg Config) error {
	if cfg.TLS != nil {
		if err := l.loadCert(cfg.TLS); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cfg
	l.cfg = cfg
	l.sock.setLimit(cfg.Limits.MaxConnections)
	if sameServer(old, cfg) {
		return nil
	}
	oldSrv, oldView, oldH := l.srv, l.view, l.h
	l.startLocked()
	// The old server takes no new connections; its clients are told to
	// reconnect after their current request; after the drain time, whatever
	// is left is shut down.
	oldH.retiring.Store(true)
	oldView.Close()
	l.retired = append(l.retired, oldSrv)
	drain := old.Limits.DrainTimeout.Std()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.closed:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if oldSrv.Shutdown(ctx) != nil {
			oldH.cut.Store(true)
			oldSrv.Close()
		}
	}()
	return nil
}

func sameServer(a, b Config) bool {
	return a.Name == b.Name && a.H2C == b.H2C && (a.TLS == nil) == (b.TLS == nil) &&
		a.TrustForwarded == b.TrustForwarded && a.KeepEscapedSlashes == b.KeepEscapedSlashes && a.Limits.HeaderTimeout == b.Limits.HeaderTimeout &&
		a.Limits.IdleTimeout == b.Limits.IdleTimeout && a.Limits.MaxHeaderBytes == b.Limits.MaxHeaderBytes
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes every connection left (upgraded tunnels included).
func (l *Listener) Shutdown(ctx context.Context) error {
	l.sock.close()
	l.mu.Lock()
	srvs := append([]*http.Server{l.srv}, l.retired...)
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(srvs))
	for i, srv := range srvs {
		if srv == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = srv.Shutdown(ctx); errs[i] != nil {
				if h, ok := srv.Handler.(*handler); ok {
					h.cut.Store(true)
				}
				srv.Close()
			}
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	l.sock.closeAll()
	<-l.sock.done
	l.wg.Wait()
	return err
}

// h2RefusedMsg describes an HTTP/2 error net/http's server answered itself,
// before any handler ran, from the name it gives it: "stream_" errors reset
// one request (an invalid header field or pseudo-header, a frame on a
// closed stream, more streams than allowed), "conn_" errors end the
// connection with GOAWAY (a broken frame, a flow-control violation, too
// many early resets). Both are the client's protocol errors; net/http names
// the error but not the connection, so the record has no client address.
func h2RefusedMsg(errType string) string {
	what := "HTTP/2 protocol error"
	switch {
	case strings.HasPrefix(errType, "stream_"):
		what = "HTTP/2 request reset by the server before the gateway saw it"
	case strings.HasPrefix(errType, "conn_"):
		what = "HTTP/2 connection ended by the server (GOAWAY)"
	}
	return what + " (" + errType + ")"
}

// errorLogWriter sends net/http's own log lines (TLS handshake errors,
// panics other than ErrAbortHandler) to the structured log.
type errorLogWriter struct{ log zerolog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.log.Debug().Str("source", "net/http").Msg(msg)
	return len(p), nil
}
