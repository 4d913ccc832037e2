package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/core/balance"
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
)

// forwardTransport sends the request through the service's http.Transport
// (HTTP/2 to the endpoint: h2c or h2). The passport still gets separate
// stamps for the connection, the request head and the response head, from
// httptrace callbacks recorded as offsets and stamped afterwards (callbacks
// run on the transport's goroutines; only this goroutine writes the passport).
func (st *reqState) forwardTransport(_ string) {
	req, svc := st.req, st.svc
	m := &st.m
	ep := svc.Balancer.Pick(nil)
	if ep == nil {
		st.fail(failure.New(failure.NoEndpoint, "service %q has no endpoint available", svc.Name))
		return
	}
	st.rec.Endpoint = ep.Addr
	st.rec.Attempts++
	m.ToNote(passport.EndpointPicked, ep.Addr)
	start := balance.Now()
	ep.Begin(start)
	defer ep.End(start)
	began := time.Now()

	var connAt, headAt, bodyAt atomic.Int64
	var reused atomic.Bool
	p := m.P
	trace := &httptrace.ClientTrace{
		GotConn:      func(i httptrace.GotConnInfo) { reused.Store(i.Reused); connAt.Store(int64(p.Now())) },
		WroteHeaders: func() { headAt.Store(int64(p.Now())) },
		WroteRequest: func(httptrace.WroteRequestInfo) { bodyAt.Store(int64(p.Now())) },
	}
	ctx, cancel := context.WithDeadline(httptrace.WithClientTrace(req.Ctx, trace), st.deadline)
	defer cancel()

	scheme := "http"
	if svc.transport.TLSClientConfig != nil {
		scheme = "https"
	}
	path := req.Path
	if pfx := st.route.StripPrefix; pfx != "" && !st.rewrote {
		path = strings.TrimPrefix(path, pfx)
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	}
	u, err := url.Parse(scheme + "://" + ep.Addr + path)
	if err != nil {
		svc.Balancer.Done(ep, balance.Result{Canceled: true})
		st.fail(failure.Wrap(failure.Malformed, err, "request path cannot be forwarded"))
		return
	}
	u.RawQuery = req.RawQuery
	out := (&http.Request{Method: req.Method, URL: u, Header: req.Header, Host: req.Host, ProtoMajor: 1, ProtoMinor: 1,
		Proto: "HTTP/1.1", ContentLength: 0}).WithContext(ctx)
	var body *limitedBody
	if req.Body != nil && req.ContentLength != 0 {
		rule := st.route.Limits.Body
		rule.hard = st.deadline
		body = &limitedBody{st: st, r: req.Body, rule: rule, max: st.route.Limits.MaxBodyBytes}
		out.Body = body
		out.ContentLength = req.ContentLength
		if req.ProtoMajor == 1 {
			st.cs.EnableFullDuplex()
		}
	}
	// The transport's ResponseHeaderTimeout (limits.upstream.header_timeout)
	// runs from the end of the upload, like the pool's.
	resp, err := svc.transport.RoundTrip(out)
	headerTimedOut := err != nil && strings.Contains(err.Error(), "timeout awaiting response headers")
	stampAt := func(s passport.State, v *atomic.Int64, note string) {
		if off := v.Load(); off > 0 {
			m.ToAt(s, time.Duration(off), note)
		}
	}
	note := "new"
	if reused.Load() {
		note = "reused"
	}
	stampAt(passport.ConnAcquired, &connAt, note)
	if m.State() == passport.ConnAcquired {
		stampAt(passport.ReqHeadersSent, &headAt, "")
	}
	if err != nil {
		gone := st.gone()
		svc.Balancer.Done(ep, balance.Result{Failed: !gone, Canceled: gone, LatencyNanos: int64(time.Since(began))})
		if body != nil {
			if e := body.failure(); e != nil {
				st.fail(e)
				return
			}
		}
		st.fail(st.transportErr(err, ep.Addr, headerTimedOut))
		return
	}
	defer resp.Body.Close()
	svc.Balancer.Done(ep, balance.Result{Failed: resp.StatusCode >= 500, LatencyNanos: int64(time.Since(began))})
	if m.State() != passport.ReqHeadersSent {
		// The trace did not report the steps (it does not for every
		// transport path); stamp them now so the machine stays in order.
		if m.State() == passport.EndpointPicked {
			m.ToNote(passport.ConnAcquired, note)
		}
		m.To(passport.ReqHeadersSent)
	}
	m.To(passport.RespHeadersReceived)

	h := st.sendHead(resp)
	if body != nil {
		st.uploadErr = body.failure
	}
	src := &timerBody{body: resp.Body, cancel: cancel}
	ok := st.copyResponse(src, resp.ContentLength, svc.Limits, ep.Addr)
	src.stop()
	if body != nil {
		st.rec.BytesIn = body.n.Load()
		if off := bodyAt.Load(); off > 0 {
			m.BodySent(time.Duration(off))
		}
	}
	if !ok {
		return
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	m.To(passport.RespBodySent)
	m.To(passport.Done)
}

func (st *reqState) transportErr(err error, addr string, headerTimedOut bool) *failure.Error {
	svc := st.svc
	switch {
	case st.gone():
		return failure.Wrap(failure.ClientGone, err, "client went away")
	case headerTimedOut:
		return failure.New(failure.UpstreamHeaderTimeout, "service %q endpoint %s: upstream response header timeout (limits.upstream.header_timeout = %s) exceeded", svc.Name, addr, svc.Limits.HeaderTimeout)
	case errors.Is(err, context.DeadlineExceeded):
		return failure.New(failure.DeadlineExceeded, "route %q: deadline (limits.request.deadline = %s) exceeded", st.route.Name, st.route.Limits.Deadline)
	case errors.Is(err, syscall.ECONNREFUSED):
		return &failure.Error{Kind: failure.ConnectRefused, Retryable: true, Err: err, Msg: "service " + svc.Name + " endpoint " + addr}
	}
	var te *tls.CertificateVerificationError
	if errors.As(err, &te) {
		return failure.Wrap(failure.ConnectFailed, err, "service %q endpoint %s: TLS", svc.Name, addr)
	}
	return failure.Wrap(failure.UpstreamReset, err, "service %q endpoint %s", svc.Name, addr)
}

// limitedBody is the request body as the transport reads it: bounded in
// size and by the minimum rate (through read deadlines on the client side).
type limitedBody struct {
	st     *reqState
	r      io.Reader
	rule   rateRule
	max    int64
	waited time.Duration // time blocked reading the client
	n      atomic.Int64
	err    atomic.Pointer[failure.Error]
}

func (b *limitedBody) Read(p []byte) (int, error) {
	moved := b.n.Load()
	began := time.Now()
	dl, hard := b.rule.next(began, moved, b.waited)
	b.st.cs.SetReadDeadline(dl)
	nr, er := b.r.Read(p)
	b.waited += time.Since(began)
	if nr > 0 {
		if b.n.Add(int64(nr)) > b.max {
			e := failure.New(failure.BodyTooLarge, "route %q: request body over limits.request.max_body_bytes = %d", b.st.route.Name, b.max)
			b.err.Store(e)
			return 0, e
		}
	}
	if er == io.EOF {
		b.st.cs.SetReadDeadline(time.Time{})
	} else if er != nil {
		var e *failure.Error
		switch {
		case isTimeout(er) && hard:
			e = failure.New(failure.DeadlineExceeded, "route %q: deadline exceeded reading the request body", b.st.route.Name)
		case isTimeout(er):
			e = failure.New(failure.BodyTooSlow, "route %q: request body slower than limits.request.body_min_rate = %d B/s", b.st.route.Name, b.rule.rate)
		default:
			e = failure.Wrap(failure.ClientGone, er, "client went away during the request body")
		}
		b.err.Store(e)
	}
	return nr, er
}

func (b *limitedBody) Close() error { return nil }

func (b *limitedBody) failure() *failure.Error { return b.err.Load() }

// timerBody bounds reads of a transport's response body with a timer that
// cancels the request (a stream has no read deadline to set).
type timerBody struct {
	body   io.Reader
	cancel context.CancelFunc
	timer  *time.Timer
	fired  atomic.Bool
}

func (b *timerBody) setDeadline(t time.Time) {
	d := time.Until(t)
	if b.timer == nil {
		b.timer = time.AfterFunc(d, func() { b.fired.Store(true); b.cancel() })
		return
	}
	b.timer.Reset(d)
}

func (b *timerBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && err != io.EOF && b.fired.Load() {
		err = timeoutError{}
	}
	return n, err
}

func (b *timerBody) stop() {
	if b.timer != nil {
		b.timer.Stop()
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
