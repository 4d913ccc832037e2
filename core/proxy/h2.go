package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/gatehouse/gatehouse/core/failure"
)

// h2Upstream sends requests to a service's endpoints over HTTP/2 (h2c or
// h2 over TLS), exactly one attempt per call, on connections of its own.
//
// It does not use http.Transport.RoundTrip (nor x/net's
// http2.Transport.RoundTrip): both re-send on their own a request that was
// refused with REFUSED_STREAM, cut by a GOAWAY before the endpoint processed
// it, or reset with a PROTOCOL_ERROR — up to six more times, the first at
// once and then after about 1s, 2s, 4s … 32s (net/http's h2_bundle.go,
// RoundTripOpt and shouldRetryRequest; a bodiless request always qualifies).
// Those attempts would escape the retry budget, the deadline's backoff rule
// and the passport. http2.ClientConn.RoundTrip makes one attempt and returns
// the typed error, so the retry loop in forward decides, as for HTTP/1.1.
type h2Upstream struct {
	t        *http2.Transport
	tls      *tls.Config // nil for h2c
	connect  time.Duration
	maxConns int
	service  string

	mu      sync.Mutex
	conns   map[string][]*http2.ClientConn // by endpoint address
	dialing map[string]int                 // dials in progress, by address
}

func newH2Upstream(service string, connect, idle, header time.Duration, maxConns int, maxHeader int64, tlsConf *tls.Config) *h2Upstream {
	// t1 only carries settings the HTTP/2 client conns read from it (the
	// response header timeout, which runs from the end of the upload, the
	// header size bound and compression); it never sends a request.
	t1 := &http.Transport{ResponseHeaderTimeout: header, MaxResponseHeaderBytes: maxHeader, DisableCompression: true,
		IdleConnTimeout: idle}
	t2, err := http2.ConfigureTransports(t1)
	if err != nil {
		panic("proxy: configuring HTTP/2: " + err.Error()) // a fresh Transport cannot be configured already
	}
	t2.AllowHTTP = tlsConf == nil
	t2.IdleConnTimeout = idle
	var tc *tls.Config
	if tlsConf != nil {
		tc = tlsConf.Clone()
		tc.NextProtos = []string{http2.NextProtoTLS}
	}
	return &h2Upstream{t: t2, tls: tc, connect: connect, maxConns: maxConns, service: service,
		conns: map[string][]*http2.ClientConn{}, dialing: map[string]int{}}
}

// get returns a connection to addr with a stream reserved for one request
// (ClientConn.RoundTrip takes the reservation), reusing one when it can
// take another stream, and whether it was reused.
func (u *h2Upstream) get(ctx context.Context, deadline time.Time, addr string) (*http2.ClientConn, bool, error) {
	u.mu.Lock()
	list := u.conns[addr]
	live := list[:0]
	for _, cc := range list {
		if s := cc.State(); !s.Closed && !s.Closing {
			live = append(live, cc)
		}
	}
	clear(list[len(live):])
	u.conns[addr] = live
	for _, cc := range live {
		if cc.ReserveNewRequest() {
			u.mu.Unlock()
			return cc, true, nil
		}
	}
	if len(live)+u.dialing[addr] >= u.maxConns {
		u.mu.Unlock()
		return nil, false, &failure.Error{Kind: failure.ConnectFailed, Retryable: true,
			Msg: fmt.Sprintf("service %q endpoint %s: limits.upstream.max_conns_per_endpoint = %d HTTP/2 connections, all busy", u.service, addr, u.maxConns)}
	}
	u.dialing[addr]++
	u.mu.Unlock()

	cc, err := u.dial(ctx, deadline, addr)

	u.mu.Lock()
	defer u.mu.Unlock()
	u.dialing[addr]--
	if err != nil {
		return nil, false, err
	}
	if !cc.ReserveNewRequest() {
		cc.Close()
		return nil, false, &failure.Error{Kind: failure.ConnectFailed, Retryable: true,
			Msg: fmt.Sprintf("service %q endpoint %s: new HTTP/2 connection refused a first stream", u.service, addr)}
	}
	u.conns[addr] = append(u.conns[addr], cc)
	return cc, false, nil
}

// dial connects to addr within the connect timeout and the deadline.
func (u *h2Upstream) dial(ctx context.Context, deadline time.Time, addr string) (*http2.ClientConn, error) {
	bound := time.Now().Add(u.connect)
	byDeadline := deadline.Before(bound)
	if byDeadline {
		bound = deadline
	}
	dctx, cancel := context.WithDeadline(ctx, bound)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err == nil && u.tls != nil {
		tc := u.tls.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		c := tls.Client(conn, tc)
		if err = c.HandshakeContext(dctx); err == nil && c.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
			err = errors.New("endpoint did not negotiate h2 (ALPN)")
		}
		if err != nil {
			conn.Close()
			return nil, failure.Wrap(failure.ConnectFailed, err, "service %q endpoint %s: TLS", u.service, addr)
		}
		conn = c
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, failure.Wrap(failure.ClientGone, err, "client went away while connecting to %s", addr)
		case isTimeout(err) && byDeadline:
			return nil, failure.New(failure.DeadlineExceeded, "deadline exceeded connecting to service %q endpoint %s", u.service, addr)
		case isTimeout(err):
			return nil, &failure.Error{Kind: failure.ConnectTimeout, Retryable: true, Err: err,
				Msg: fmt.Sprintf("service %q endpoint %s: connect timeout (limits.upstream.connect_timeout = %s) exceeded", u.service, addr, u.connect)}
		case isRefused(err):
			return nil, &failure.Error{Kind: failure.ConnectRefused, Retryable: true, Err: err, Msg: "service " + u.service + " endpoint " + addr}
		}
		return nil, &failure.Error{Kind: failure.ConnectFailed, Retryable: true, Err: err, Msg: "service " + u.service + " endpoint " + addr}
	}
	cc, err := u.t.NewClientConn(conn)
	if err != nil {
		conn.Close()
		return nil, &failure.Error{Kind: failure.ConnectFailed, Retryable: true, Err: err,
			Msg: fmt.Sprintf("service %q endpoint %s: HTTP/2 preface", u.service, addr)}
	}
	return cc, nil
}

// CloseIdleConnections closes the connections with no stream open or
// reserved (reservations are made under u.mu, so none can slip in).
func (u *h2Upstream) CloseIdleConnections() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for addr, list := range u.conns {
		live := list[:0]
		for _, cc := range list {
			s := cc.State()
			if s.Closed || s.StreamsActive+s.StreamsReserved+s.StreamsPending == 0 {
				cc.Close()
				continue
			}
			live = append(live, cc)
		}
		clear(list[len(live):])
		u.conns[addr] = live
	}
}

// notProcessed reports whether err from ClientConn.RoundTrip proves that
// the endpoint did not process the request, so that any request may be
// retried: the stream was refused (REFUSED_STREAM, RFC 9113 §8.7), a
// GOAWAY named a last stream below it (the two messages x/net aborts such
// streams with), or the connection could take no new stream before the
// request was sent.
func notProcessed(err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) {
		return se.Code == http2.ErrCodeRefusedStream
	}
	switch msg := err.Error(); {
	case msg == "http2: Transport received Server's graceful shutdown GOAWAY",
		msg == "http2: client conn not usable",
		strings.HasPrefix(msg, "http2: Transport received GOAWAY from server "):
		return true
	}
	return false
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
