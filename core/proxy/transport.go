package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	"github.com/gatehouse/gatehouse/core/retry"
)

// transportAttempt makes one attempt on ep over the service's HTTP/2
// connections (h2c or h2; see h2Upstream: exactly one attempt, the retry
// loop in forward decides about the next). The passport still gets separate
// stamps for the connection, the request head and the response head; the
// head's comes from an httptrace callback recorded as an offset and stamped
// afterwards (callbacks run on the transport's goroutines; only this
// goroutine writes the passport).
func (st *reqState) transportAttempt(ep *balance.Endpoint, mayRetry bool) attempt {
	req, svc := st.req, st.svc
	m := &st.m
	start := balance.Now()
	ep.Begin(start)
	defer ep.End(start)
	began := time.Now()

	scheme := "http"
	if svc.transport.tls != nil {
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
		return attempt{}
	}
	u.RawQuery = req.RawQuery

	cc, reused, err := svc.transport.get(req.Ctx, st.deadline, ep.Addr)
	if err != nil {
		fe := failure.As(err)
		clientSide := fe.Kind == failure.ClientGone || fe.Kind == failure.DeadlineExceeded
		svc.Balancer.Done(ep, balance.Result{Failed: !clientSide, Canceled: clientSide, LatencyNanos: int64(time.Since(began))})
		return attempt{err: fe, safe: fe.Retryable}
	}
	if reused {
		m.ToNote(passport.ConnAcquired, "reused")
	} else {
		m.ToNote(passport.ConnAcquired, "new")
	}

	var headAt, bodyAt atomic.Int64
	p := m.P
	trace := &httptrace.ClientTrace{
		WroteHeaders: func() { headAt.Store(int64(p.Now())) },
		WroteRequest: func(httptrace.WroteRequestInfo) { bodyAt.Store(int64(p.Now())) },
	}
	ctx, cancel := context.WithDeadline(httptrace.WithClientTrace(req.Ctx, trace), st.deadline)
	defer cancel()
	out := (&http.Request{Method: req.Method, URL: u, Header: req.Header, Host: req.Host, ProtoMajor: 1, ProtoMinor: 1,
		Proto: "HTTP/1.1", ContentLength: 0}).WithContext(ctx)
	var body *limitedBody
	hasBody := req.Body != nil && req.ContentLength != 0
	if hasBody {
		rule := st.route.Limits.Body
		rule.hard = st.deadline
		body = &limitedBody{st: st, r: req.Body, rule: rule, max: st.route.Limits.MaxBodyBytes}
		out.Body = body
		out.ContentLength = req.ContentLength
		if req.ProtoMajor == 1 {
			st.cs.EnableFullDuplex()
		}
	}
	// The response header timeout (limits.upstream.header_timeout) runs
	// from the end of the upload, like the pool's.
	resp, err := cc.RoundTrip(out)
	if off := headAt.Load(); off > 0 {
		m.ToAt(passport.ReqHeadersSent, time.Duration(off), "")
	}
	// bodyState settles what the next attempt may do with the body: use it
	// untouched, replay the kept copy, or nothing (read in part).
	bodyState := func() (replayOK bool) {
		if body == nil {
			return true
		}
		switch body.detach() {
		case bodyUntouched:
			return true
		case bodyEOF:
			st.bodyRead = true
			st.replayable = st.replayOK
			return st.replayable
		}
		st.bodyRead, st.replayable = true, false
		return false
	}
	if err != nil {
		replayOK := bodyState()
		if body != nil {
			st.rec.BytesIn = body.n.Load()
			if e := body.failure(); e != nil {
				svc.Balancer.Done(ep, balance.Result{Canceled: true}) // the client's doing, not the endpoint's
				return attempt{err: e}
			}
		}
		headerTimedOut := strings.Contains(err.Error(), "timeout awaiting response headers")
		fe := st.transportErr(err, ep.Addr, headerTimedOut)
		clientSide := fe.Kind == failure.ClientGone || fe.Kind == failure.DeadlineExceeded
		svc.Balancer.Done(ep, balance.Result{Failed: !clientSide, Canceled: clientSide, LatencyNanos: int64(time.Since(began))})
		a := attempt{err: fe}
		if notProcessed(err) && !clientSide {
			// Provably not processed: any method may go again.
			a.safe, a.note = replayOK, "refused_stream"
		} else {
			a.safe = !clientSide && replayOK && retry.Idempotent(req.Method)
		}
		return a
	}
	svc.Balancer.Done(ep, balance.Result{Failed: resp.StatusCode >= 500, LatencyNanos: int64(time.Since(began))})
	if m.State() != passport.ReqHeadersSent {
		// The trace did not report the head (it does not on every path);
		// stamp it now so the machine stays in order.
		m.To(passport.ReqHeadersSent)
	}
	m.To(passport.RespHeadersReceived)
	if note := retryStatusNote(resp.StatusCode); note != "" && mayRetry && st.retryFits() && retry.Idempotent(req.Method) {
		// The transport stopped the upload on this answer (it does on any
		// status over 299), so the body settles at once.
		if bodyState() && svc.Budget.TryRetry() {
			resp.Body.Close() // discard the answer; waits for the stream to end
			if body != nil {
				st.rec.BytesIn = body.n.Load()
			}
			return attempt{retryStatus: true, note: note,
				err: failure.New(failure.UpstreamReset, "service %q endpoint %s answered %d", svc.Name, ep.Addr, resp.StatusCode)}
		}
	}
	defer resp.Body.Close()

	h := st.sendHead(resp)
	if body != nil {
		st.uploadErr = body.failure
		defer func() { st.uploadErr = nil }()
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
		return attempt{}
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	m.To(passport.RespBodySent)
	m.To(passport.Done)
	return attempt{}
}

// retryStatusNote is the ATTEMPT_FAILED note of a discarded answer with a
// status that may be retried, "" for other statuses.
func retryStatusNote(status int) string {
	switch status {
	case http.StatusBadGateway:
		return "upstream_502"
	case http.StatusServiceUnavailable:
		return "upstream_503"
	case http.StatusGatewayTimeout:
		return "upstream_504"
	}
	return ""
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
	case notProcessed(err):
		return &failure.Error{Kind: failure.UpstreamReset, Retryable: true, Err: err,
			Msg: fmt.Sprintf("service %q endpoint %s refused the request before processing it", svc.Name, addr)}
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
	phase  atomic.Int32 // bodyUntouched, bodyReading, bodyEOF or bodyDetached
}

// The phases of a limitedBody.
const (
	bodyUntouched = iota // no read yet
	bodyReading          // read in part
	bodyEOF              // read whole (and kept, if it fits the replay bound)
	bodyDetached         // the attempt is over; reads fail
)

// errDetached is what a read after the attempt ended gets.
var errDetached = errors.New("request body detached from a finished attempt")

// detach ends the transport's use of the body (a late read fails rather
// than take bytes from the next attempt) and returns its phase then.
func (b *limitedBody) detach() int32 {
	if b.phase.CompareAndSwap(bodyUntouched, bodyDetached) {
		return bodyUntouched
	}
	return b.phase.Load()
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if !b.phase.CompareAndSwap(bodyUntouched, bodyReading) && b.phase.Load() == bodyDetached {
		return 0, errDetached
	}
	moved := b.n.Load()
	began := time.Now()
	dl, hard := b.rule.next(began, moved, b.waited)
	b.st.cs.SetReadDeadline(dl)
	nr, er := b.r.Read(p)
	b.waited += time.Since(began)
	if nr > 0 {
		n := b.n.Add(int64(nr))
		if n > b.max {
			e := failure.New(failure.BodyTooLarge, "route %q: request body over limits.request.max_body_bytes = %d", b.st.route.Name, b.max)
			b.err.Store(e)
			return 0, e
		}
		b.st.keep(p[:nr], n)
	}
	if er == io.EOF {
		b.st.cs.SetReadDeadline(time.Time{})
		b.phase.Store(bodyEOF)
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
