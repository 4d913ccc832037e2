package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/core/balance"
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/pool"
	"github.com/gatehouse/gatehouse/core/retry"
)

// bufPool holds the copy buffers of both directions.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// aLongTimeAgo is a deadline in the past, to unblock a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// expectContinueWait bounds the wait for an endpoint's "100 Continue"
// before the body is sent anyway (as net/http's Transport does).
const expectContinueWait = time.Second

// Responses of these requests carry no body; the codec needs the method.
var (
	headReq  = &http.Request{Method: http.MethodHead}
	otherReq = &http.Request{Method: http.MethodGet}
)

// forward sends the request to an endpoint of the route's service and
// streams the response back, retrying failed attempts when that is safe,
// there is time left and the service's retry budget allows.
func (st *reqState) forward() {
	req, svc := st.req, st.svc
	upgrade := st.upgrade // stripped in serve
	if strings.EqualFold(upgrade, "h2c") {
		// HTTP/2 is the gateway's to speak with clients: an endpoint that
		// took the upgrade would give the client a tunnel past the
		// routes and hooks.
		upgrade = ""
	}
	if req.ProtoMajor != 1 || req.Body != nil && req.ContentLength != 0 {
		upgrade = "" // only bodiless HTTP/1.1 requests may switch protocols
	}
	setForwarded(req.Header, req)
	st.idValue[0] = req.ID
	req.Header["X-Request-Id"] = st.idValue[:]
	if st.rec.Trace.On() {
		st.rec.Trace.Inject(req.Header)
	}
	grpc := len(req.Header["Grpc-Timeout"]) > 0
	// Both paths (the HTTP/1.1 pool and HTTP/2) go through this loop: one
	// attempt per turn, the next only if it is safe, granted by the budget
	// and there is time for its backoff and the attempt.
	svc.Budget.Request()
	var exclude *balance.Endpoint
	fresh := false
	for try := 1; ; try++ {
		left := time.Until(st.deadline)
		if left < svc.MinAttemptTime {
			k := failure.DeadlineExceeded
			if try == 1 {
				k = failure.DeadlineTooShort
			}
			st.fail(failure.New(k, "route %q: %s left of the deadline, less than retry.min_attempt_time = %s of service %q",
				st.route.Name, left.Round(time.Microsecond), svc.MinAttemptTime, svc.Name))
			return
		}
		setTimeLeft(req.Header, left, grpc)
		ep := svc.Balancer.Pick(exclude)
		if ep == nil {
			st.fail(failure.New(failure.NoEndpoint, "service %q has no endpoint available", svc.Name))
			return
		}
		st.rec.Endpoint = ep.Addr
		st.rec.Attempts++
		st.m.ToNote(passport.EndpointPicked, ep.Addr)
		mayRetry := try < svc.Retry.MaxAttempts
		// Drawn now, so that an attempt keeps a 5xx answer for the client
		// rather than discard it for a retry whose backoff would not fit.
		st.wait = svc.Retry.Backoff(try, nil)
		var res attempt
		if svc.transport != nil {
			res = st.transportAttempt(ep, mayRetry)
		} else {
			// The exchange lives in the pooled request state: one per
			// attempt, and attempts never overlap (run joins its upload
			// goroutine).
			x := &st.x
			*x = exchange{st: st, ep: ep, pool: svc.pools[ep.Addr], upgrade: upgrade, mayRetry: mayRetry}
			res = x.run(fresh)
		}
		switch {
		case res.err == nil && !res.stale && !res.retryStatus:
			return // done, or failed after the response started (handled in run)
		case res.stale:
			// The endpoint closed a kept-alive connection as we reused it:
			// the request provably did not reach it. Once, on a new
			// connection, outside the budget.
			st.m.ToNote(passport.AttemptFailed, "stale_connection")
			fresh = true
			try--
			continue
		case res.retryStatus:
			// run took the retry from the budget already.
		case !res.safe || !mayRetry || !svc.Budget.TryRetry():
			st.fail(res.err)
			return
		}
		note := res.note
		if note == "" {
			note = res.err.Kind.String()
		}
		st.m.ToNote(passport.AttemptFailed, note)
		if !st.replayBody() {
			st.fail(res.err)
			return
		}
		if !st.backoff() {
			if res.err == nil {
				res.err = failure.New(failure.DeadlineExceeded, "route %q: no time left to retry", st.route.Name)
			}
			st.fail(res.err)
			return
		}
		exclude = ep
		fresh = false
	}
}

// replayBody prepares the request body for another attempt: nothing to do
// without a body or when no attempt read it yet, the kept copy when the
// whole body was kept.
func (st *reqState) replayBody() bool {
	req := st.req
	if req.Body == nil || req.ContentLength == 0 || !st.bodyRead {
		return true
	}
	if !st.replayable {
		return false
	}
	st.replayReader.Reset(st.replay)
	req.Body = &st.replayReader
	req.ContentLength = int64(len(st.replay))
	st.rec.BytesIn = 0
	return true
}

// retryFits reports whether the backoff before the next attempt (st.wait)
// leaves it at least retry.min_attempt_time of the deadline.
func (st *reqState) retryFits() bool {
	return time.Until(st.deadline)-st.wait >= st.svc.MinAttemptTime
}

// backoff waits the jittered backoff drawn for the next attempt, if it
// fits in the time left; it gives up when the client goes away.
func (st *reqState) backoff() bool {
	d := st.wait
	if !st.retryFits() {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-st.req.Ctx.Done():
		return false
	}
}

// attempt is how an attempt ended when nothing reached the client yet.
type attempt struct {
	// err is the failure, nil when the request is finished (success, or a
	// failure after the response started, already recorded).
	err *failure.Error
	// safe: the failure allows a retry (the request provably did not reach
	// the endpoint, or it is idempotent and its body can be replayed).
	safe bool
	// stale: a reused keep-alive connection turned out closed.
	stale bool
	// retryStatus: the endpoint answered 502/503/504 to an idempotent
	// request and a retry was granted; the answer was discarded.
	retryStatus bool
	// note, when set, is the ATTEMPT_FAILED note instead of err's kind:
	// the status of a discarded answer ("upstream_503"), "refused_stream".
	note string
}

// exchange is one attempt over an HTTP/1.1 connection of the pool.
type exchange struct {
	st       *reqState
	ep       *balance.Endpoint
	pool     *pool.Pool
	c        *pool.Conn
	upgrade  string
	resp     *http.Response
	mayRetry bool // attempts are left: a 5xx may be retried
	body     connBody
	left     sync.WaitGroup // the client-left callback, if it started

	// The upload goroutine's results, read after upDone is closed.
	upDone     chan struct{}
	upErr      *failure.Error // a client-side failure (too large, too slow, gone)
	upComplete bool           // the whole body was written upstream
	upEnd      time.Duration  // passport offset when the body was sent
	stopping   atomic.Bool
	stopCh     chan struct{} // closed by stopUpload
	readMu     sync.Mutex    // orders "about to read the client" with stopUpload
	inRead     bool          // the upload is in a client read (under readMu)
	noBody     atomic.Bool   // a final response came before "100 Continue"
	cont       chan struct{} // closed to start an Expect: 100-continue upload
	contOnce   sync.Once

	dlMu          sync.Mutex // orders the head deadline between the two goroutines
	headerTimeout time.Duration
	headRead      bool
	uploadDone    bool
}

// retrySafe reports whether a failure after the request was (maybe) sent
// may be retried: an idempotent method whose body, if any, can be replayed.
func (x *exchange) retrySafe(hasBody bool) bool {
	st := x.st
	return retry.Idempotent(st.req.Method) && (!hasBody || st.replayable)
}

// run performs the attempt.
func (x *exchange) run(fresh bool) attempt {
	st, req := x.st, x.st.req
	m := &st.m
	svc := st.svc
	start := balance.Now()
	x.ep.Begin(start)
	defer x.ep.End(start)
	began := time.Now()

	c, err := x.pool.Acquire(req.Ctx, st.deadline, fresh)
	if err != nil {
		fe := failure.As(err)
		gone := fe.Kind == failure.ClientGone
		svc.Balancer.Done(x.ep, balance.Result{Failed: !gone, Canceled: gone, LatencyNanos: int64(time.Since(began))})
		return attempt{err: fe, safe: fe.Retryable || fe.Kind == failure.NoEndpoint}
	}
	x.c = c
	if c.Reused {
		m.ToNote(passport.ConnAcquired, "reused")
	} else {
		m.ToNote(passport.ConnAcquired, "new")
	}
	// A client that goes away closes the upstream connection at once, which
	// cancels the request at the endpoint.
	x.left.Add(1)
	stop := context.AfterFunc(req.Ctx, x.clientLeft)
	reusable := false
	defer func() {
		if stop() {
			x.left.Done() // never ran
		}
		x.left.Wait() // a callback that started finishes before the state is reused
		x.pool.Release(c, reusable && !st.gone())
	}()

	hasBody := req.Body != nil && req.ContentLength != 0
	expect := hasBody && strings.EqualFold(req.Header.Get("Expect"), "100-continue")
	if !expect {
		delete(req.Header, "Expect")
	}
	readBefore := c.NRead
	c.SetWriteDeadline(st.deadline)
	if err := x.writeHead(hasBody); err != nil {
		if c.Reused && !hasBody && !st.gone() {
			svc.Balancer.Done(x.ep, balance.Result{Canceled: true})
			return attempt{stale: true}
		}
		fe := x.upstreamErr(err, "writing the request head")
		svc.Balancer.Done(x.ep, balance.Result{Failed: fe.Kind != failure.ClientGone, Canceled: fe.Kind == failure.ClientGone,
			LatencyNanos: int64(time.Since(began))})
		return attempt{err: fe, safe: x.retrySafe(hasBody)}
	}
	m.To(passport.ReqHeadersSent)
	if hasBody {
		if req.ProtoMajor == 1 {
			st.cs.EnableFullDuplex()
		}
		x.upDone = make(chan struct{})
		x.stopCh = make(chan struct{})
		st.bodyRead = true
		st.uploadErr = x.preferUpload
		defer func() { st.uploadErr = nil }()
		if expect {
			x.cont = make(chan struct{})
		}
		go x.uploadBody()
	}

	resp, err := x.readHead(svc.Limits.HeaderTimeout, hasBody)
	if err != nil {
		if hasBody {
			if e := x.preferUpload(); e != nil {
				svc.Balancer.Done(x.ep, balance.Result{Canceled: true}) // the client's doing, not the endpoint's
				return attempt{err: e}
			}
		}
		if c.Reused && !hasBody && c.NRead == readBefore && !st.gone() && isReset(err) {
			svc.Balancer.Done(x.ep, balance.Result{Canceled: true})
			return attempt{stale: true}
		}
		fe := x.headErr(err)
		clientSide := fe.Kind == failure.ClientGone || fe.Kind == failure.DeadlineExceeded
		svc.Balancer.Done(x.ep, balance.Result{Failed: !clientSide, Canceled: clientSide, LatencyNanos: int64(time.Since(began))})
		return attempt{err: fe, safe: fe.Kind != failure.ClientGone && fe.Kind != failure.DeadlineExceeded && x.retrySafe(hasBody)}
	}
	x.resp = resp
	svc.Balancer.Done(x.ep, balance.Result{Failed: resp.StatusCode >= 500, LatencyNanos: int64(time.Since(began))})
	m.To(passport.RespHeadersReceived)
	if expect {
		// A final answer before "100 Continue": the body must not follow.
		x.noBody.Store(true)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if x.mayRetry && st.retryFits() && x.retrySafe(hasBody) && (!hasBody || x.waitUpload()) && svc.Budget.TryRetry() {
			// Discard this answer; the connection goes (its body is unread).
			if hasBody {
				x.stopUpload()
			}
			return attempt{retryStatus: true, note: retryStatusNote(resp.StatusCode),
				err: failure.New(failure.UpstreamReset, "service %q endpoint %s answered %d", svc.Name, x.ep.Addr, resp.StatusCode)}
		}
	}

	if resp.StatusCode == http.StatusSwitchingProtocols {
		if x.upgrade == "" || !strings.EqualFold(resp.Header.Get("Upgrade"), x.upgrade) {
			st.fail(failure.New(failure.UpstreamMalformed, "endpoint %s switched protocols unasked", x.ep.Addr))
			return attempt{}
		}
		x.tunnel()
		return attempt{}
	}

	complete := x.respond()
	if hasBody {
		select {
		case <-x.upDone:
		default:
			// The response ended while the upload continues: stop it.
			x.stopUpload()
		}
		if x.upEnd > 0 {
			m.BodySent(x.upEnd)
		}
		if x.upErr != nil && !machineEnded(st) {
			st.fail(x.upErr)
			return attempt{}
		}
	}
	if !complete {
		return attempt{}
	}
	reusable = !resp.Close && (!hasBody || x.upComplete)
	m.To(passport.Done)
	return attempt{}
}

// clientLeft runs when the request's context ends: unless the engine cut
// the client's read itself, the client went away, and closing the upstream
// connection cancels the request at the endpoint.
func (x *exchange) clientLeft() {
	defer x.left.Done()
	if !x.st.selfStopped.Load() {
		x.st.clientGone.Store(true)
	}
	x.c.Conn.Close()
}

// waitUpload waits for the upload to end (an endpoint that answered 5xx
// may not have read it all) within a short bound, and reports whether the
// whole body is now kept for a replay.
func (x *exchange) waitUpload() bool {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-x.upDone:
	case <-t.C:
		x.stopUpload()
	}
	return x.st.replayable
}

// writeHead writes the request line and header with HTTP/1.1 framing.
func (x *exchange) writeHead(hasBody bool) error {
	st, req := x.st, x.st.req
	bw := x.c.BW
	path := req.Path
	if p := st.route.StripPrefix; p != "" && !st.rewrote {
		path = strings.TrimPrefix(path, p)
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(path)
	if req.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(req.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length":
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if x.upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.WriteString(x.upgrade)
		bw.WriteString("\r\n")
	}
	if hasBody {
		if req.ContentLength > 0 {
			bw.WriteString("Content-Length: ")
			var num [20]byte
			bw.Write(strconv.AppendInt(num[:0], req.ContentLength, 10))
			bw.WriteString("\r\n")
		} else {
			bw.WriteString("Transfer-Encoding: chunked\r\n")
		}
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

// readHead reads the response head, passing informational responses on:
// "100 Continue" starts a waiting upload, others (103) go to the client.
// The header timeout runs from the end of the upload (as net/http's
// Transport does): an endpoint may wait for the whole body before it
// answers. While the upload runs, the request deadline bounds the wait.
func (x *exchange) readHead(headerTimeout time.Duration, uploading bool) (*http.Response, error) {
	st := x.st
	x.dlMu.Lock()
	x.headerTimeout = headerTimeout
	if uploading && !x.uploadDone {
		x.c.SetReadDeadline(st.deadline)
	} else {
		x.c.SetReadDeadline(x.headDeadline())
	}
	x.dlMu.Unlock()
	defer func() {
		x.dlMu.Lock()
		x.headRead = true
		x.dlMu.Unlock()
	}()
	codecReq := otherReq
	if st.req.Method == http.MethodHead {
		codecReq = headReq
	}
	// Bound the head (informational responses included); what the reader
	// buffered of the body beyond it comes within one buffer's size.
	x.c.ReadLimit = x.c.NRead + int64(x.c.BR.Buffered()) + st.svc.Limits.MaxHeaderBytes + int64(x.c.BR.Size())
	defer func() { x.c.ReadLimit = 0 }()
	for {
		resp, err := http.ReadResponse(x.c.BR, codecReq)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if resp.StatusCode == http.StatusContinue {
			if x.cont != nil {
				x.contOnce.Do(func() { close(x.cont) })
			}
			continue
		}
		h := st.cs.Header()
		for k, vv := range resp.Header {
			h[k] = vv
		}
		st.cs.WriteHeader(resp.StatusCode)
		clear(h)
	}
}

// headDeadline is when the response head must have arrived, counted from now.
func (x *exchange) headDeadline() time.Time {
	dl := time.Now().Add(x.headerTimeout)
	if x.st.deadline.Before(dl) {
		dl = x.st.deadline
	}
	return dl
}

// uploaded is called by the upload goroutine when the body is sent: the
// header timeout starts now, unless the head is already in.
func (x *exchange) uploaded() {
	x.dlMu.Lock()
	x.uploadDone = true
	if !x.headRead && x.headerTimeout > 0 {
		x.c.SetReadDeadline(x.headDeadline())
	}
	x.dlMu.Unlock()
}

// respond sends the response head and streams the body. It reports whether
// the body was read to its end (the connection may then be reused).
func (x *exchange) respond() bool {
	st, resp := x.st, x.resp
	svc := st.svc
	h := st.sendHead(resp)

	x.body = connBody{c: x.c, body: resp.Body}
	src := &x.body
	ok := st.copyResponse(src, resp.ContentLength, svc.Limits, x.ep.Addr)
	if !ok {
		return false
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	st.m.To(passport.RespBodySent)
	return true
}

// sendHead passes the endpoint's response head on to the client: without
// hop-by-hop fields, announcing its trailers, with the request ID and the
// respond hooks' edits. It returns the client's header map (trailers go
// there after the body).
func (st *reqState) sendHead(resp *http.Response) http.Header {
	stripHopByHop(resp.Header)
	h := st.cs.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = names
	}
	st.idValue[0] = st.req.ID
	h["X-Request-Id"] = st.idValue[:]
	st.respondHooks(resp.StatusCode, h)
	st.cs.WriteHeader(resp.StatusCode)
	st.responded = true
	st.rec.Status = resp.StatusCode
	st.m.To(passport.Responded)
	return h
}

// connBody reads a response body with read deadlines on the connection.
type connBody struct {
	c    *pool.Conn
	body io.Reader
}

func (b *connBody) setDeadline(t time.Time) { b.c.SetReadDeadline(t) }
func (b *connBody) Read(p []byte) (int, error) {
	return b.body.Read(p)
}

// deadlineReader is a body whose next read can be bounded.
type deadlineReader interface {
	io.Reader
	setDeadline(time.Time)
}

// copyResponse streams the response body to the client under the upstream
// body rate, the client rate, the size limit and the request deadline.
func (st *reqState) copyResponse(src deadlineReader, contentLength int64, lim UpstreamLimits, addr string) bool {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	flush := contentLength < 0 // streamed responses go out as they come
	upRule := lim.Body
	upRule.hard = st.deadline
	cliRule := st.route.Limits.Client
	cliRule.hard = st.deadline
	var n int64
	var upWaited, cliWaited time.Duration // time blocked on each side
	for {
		began := time.Now()
		dl, hard := upRule.next(began, n, upWaited)
		src.setDeadline(dl)
		nr, er := src.Read(buf)
		upWaited += time.Since(began)
		if nr > 0 {
			if n+int64(nr) > lim.MaxResponseBytes {
				st.fail(failure.New(failure.UpstreamBodyTooLarge, "service %q endpoint %s: response body over limits.upstream.max_response_bytes = %d",
					st.svc.Name, addr, lim.MaxResponseBytes))
				return false
			}
			wbegan := time.Now()
			wdl, whard := cliRule.next(wbegan, n, cliWaited)
			// The write may also take the time its own bytes need at the rate.
			if !whard {
				wdl = wdl.Add(time.Duration(float64(nr) / float64(cliRule.rate) * float64(time.Second)))
				if !wdl.Before(st.deadline) {
					wdl, whard = st.deadline, true
				}
			}
			st.cs.SetWriteDeadline(wdl)
			nw, ew := st.cs.Write(buf[:nr])
			n += int64(nw)
			st.rec.BytesOut = n
			if ew == nil && flush {
				ew = st.cs.Flush()
			}
			cliWaited += time.Since(wbegan)
			if ew != nil {
				st.fail(st.clientWriteErr(ew, whard))
				return false
			}
		}
		if er == io.EOF {
			return true
		}
		if er != nil {
			if st.uploadErr != nil {
				if e := st.uploadErr(); e != nil {
					st.fail(e)
					return false
				}
			}
			switch {
			case st.gone():
				st.fail(failure.Wrap(failure.ClientGone, er, "client went away during the response body"))
			case isTimeout(er) && hard:
				st.fail(failure.New(failure.DeadlineExceeded, "route %q: deadline (limits.request.deadline = %s) exceeded during the response body", st.route.Name, st.route.Limits.Deadline))
			case isTimeout(er):
				st.fail(failure.New(failure.UpstreamTooSlow, "service %q endpoint %s: response body slower than limits.upstream.body_min_rate = %d B/s", st.svc.Name, addr, lim.Body.rate))
			default:
				st.fail(failure.Wrap(failure.UpstreamReset, er, "service %q endpoint %s: response body cut", st.svc.Name, addr))
			}
			return false
		}
	}
}

func (st *reqState) clientWriteErr(err error, hard bool) *failure.Error {
	switch {
	case isTimeout(err) && hard:
		return failure.New(failure.DeadlineExceeded, "route %q: deadline (limits.request.deadline = %s) exceeded writing to the client", st.route.Name, st.route.Limits.Deadline)
	case isTimeout(err):
		return failure.New(failure.ClientTooSlow, "client reads slower than limits.request.client_min_rate = %d B/s", st.route.Limits.Client.rate)
	}
	return failure.Wrap(failure.ClientGone, err, "client went away during the response")
}

// uploadBody streams the request body to the endpoint, concurrently with
// the response being read.
func (x *exchange) uploadBody() {
	defer close(x.upDone)
	st, req := x.st, x.st.req
	if x.cont != nil {
		t := time.NewTimer(expectContinueWait)
		select {
		case <-x.cont:
		case <-t.C:
		case <-x.stopCh:
		}
		t.Stop()
		if x.stopping.Load() || x.noBody.Load() {
			return
		}
	}
	rule := st.route.Limits.Body
	rule.hard = st.deadline
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	chunked := req.ContentLength < 0
	bw := x.c.BW
	var n int64
	var waited time.Duration // time blocked reading the client
	x.c.SetWriteDeadline(st.deadline)
	for {
		began := time.Now()
		dl, hard := rule.next(began, n, waited)
		st.cs.SetReadDeadline(dl)
		x.readMu.Lock()
		if x.stopping.Load() {
			x.readMu.Unlock()
			return
		}
		x.inRead = true
		x.readMu.Unlock()
		nr, er := req.Body.Read(buf)
		waited += time.Since(began)
		x.readMu.Lock()
		x.inRead = false
		x.readMu.Unlock()
		if nr > 0 {
			n += int64(nr)
			st.rec.BytesIn = n
			st.keep(buf[:nr], n)
			if n > st.route.Limits.MaxBodyBytes {
				x.upErr = failure.New(failure.BodyTooLarge, "route %q: request body over limits.request.max_body_bytes = %d", st.route.Name, st.route.Limits.MaxBodyBytes)
				x.c.Conn.Close()
				return
			}
			if chunked {
				var hdr [18]byte
				b := strconv.AppendInt(hdr[:0], int64(nr), 16)
				bw.Write(append(b, '\r', '\n'))
			}
			bw.Write(buf[:nr])
			if chunked {
				bw.WriteString("\r\n")
			}
			if err := bw.Flush(); err != nil {
				return // the endpoint stopped reading; its response (or error) tells why
			}
		}
		if er == io.EOF {
			st.cs.SetReadDeadline(time.Time{})
			if chunked {
				bw.WriteString("0\r\n\r\n")
				if bw.Flush() != nil {
					return
				}
			}
			x.upComplete = true
			x.upEnd = st.m.P.Now()
			st.replayable = st.replayOK
			x.uploaded()
			return
		}
		if er != nil {
			// A read cut by stopUpload is no failure of the client's; a read
			// that timed out at the rate deadline is, even if a stop raced
			// with it (net/http cancels the request when a body read times
			// out, which closes the upstream connection and stops us).
			genuine := isTimeout(er) && !time.Now().Before(dl)
			if x.stopping.Load() && !genuine {
				return
			}
			switch {
			case isTimeout(er) && hard:
				x.upErr = failure.New(failure.DeadlineExceeded, "route %q: deadline (limits.request.deadline = %s) exceeded reading the request body", st.route.Name, st.route.Limits.Deadline)
			case isTimeout(er):
				x.upErr = failure.New(failure.BodyTooSlow, "route %q: request body slower than limits.request.body_min_rate = %d B/s (grace %s)", st.route.Name, rule.rate, rule.grace)
			default:
				x.upErr = bodyReadFailure(er)
			}
			x.c.Conn.Close()
			return
		}
	}
}

// stopUpload ends the upload goroutine and waits for it. Idempotent. An
// upload that already ended is left alone: cutting the client's read would
// make net/http cancel the request.
func (x *exchange) stopUpload() {
	select {
	case <-x.upDone:
		x.stopping.Store(true)
		return
	default:
	}
	x.readMu.Lock()
	if x.stopping.Swap(true) {
		x.readMu.Unlock()
		<-x.upDone
		return
	}
	reading := x.inRead
	x.readMu.Unlock()
	close(x.stopCh)
	if reading {
		// Only a read blocked on the client needs cutting; net/http cancels
		// the request when it is cut, which is ours, not the client's doing.
		x.st.selfStopped.Store(true)
		x.st.cs.SetReadDeadline(aLongTimeAgo)
	}
	x.c.SetWriteDeadline(aLongTimeAgo)
	<-x.upDone
}

// preferUpload stops the upload and returns its client-side failure, if
// any: when the upload closed the upstream connection (body too large, too
// slow, client gone), that, not the cut response, is why the request failed.
func (x *exchange) preferUpload() *failure.Error {
	x.stopUpload()
	return x.upErr
}

// headErr classifies a failure to read the response head.
func (x *exchange) headErr(err error) *failure.Error {
	st := x.st
	svc := st.svc
	switch {
	case st.gone():
		return failure.Wrap(failure.ClientGone, err, "client went away waiting for %s", x.ep.Addr)
	case errors.Is(err, pool.ErrReadLimit):
		return failure.New(failure.UpstreamMalformed, "service %q endpoint %s: response head over limits.upstream.max_header_bytes = %d",
			svc.Name, x.ep.Addr, svc.Limits.MaxHeaderBytes)
	case isTimeout(err):
		if time.Until(st.deadline) <= 0 {
			return failure.New(failure.DeadlineExceeded, "route %q: deadline (limits.request.deadline = %s) exceeded waiting for service %q endpoint %s",
				st.route.Name, st.route.Limits.Deadline, svc.Name, x.ep.Addr)
		}
		return failure.New(failure.UpstreamHeaderTimeout, "service %q endpoint %s: upstream response header timeout (limits.upstream.header_timeout = %s) exceeded",
			svc.Name, x.ep.Addr, svc.Limits.HeaderTimeout)
	case isReset(err):
		return failure.Wrap(failure.UpstreamReset, err, "service %q endpoint %s closed the connection before responding", svc.Name, x.ep.Addr)
	}
	return failure.Wrap(failure.UpstreamMalformed, err, "service %q endpoint %s sent a malformed response head", svc.Name, x.ep.Addr)
}

func (x *exchange) upstreamErr(err error, doing string) *failure.Error {
	st := x.st
	if st.gone() {
		return failure.Wrap(failure.ClientGone, err, "client went away")
	}
	if isTimeout(err) {
		return failure.New(failure.DeadlineExceeded, "route %q: deadline (limits.request.deadline = %s) exceeded %s", st.route.Name, st.route.Limits.Deadline, doing)
	}
	return failure.Wrap(failure.UpstreamReset, err, "service %q endpoint %s: %s", st.svc.Name, x.ep.Addr, doing)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func machineEnded(st *reqState) bool {
	s := st.m.State()
	return s == passport.Failed || s == passport.Done
}
