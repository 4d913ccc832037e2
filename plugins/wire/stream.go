package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// sendQueue bounds the calls waiting for the stream's sender. A caller
// waits for room only within its own deadline.
const sendQueue = 1024

// directSendBytes bounds the request bytes on the stream that are not yet
// answered for a caller to send its call itself. gRPC's SendMsg blocks
// when the stream's write quota (64 KiB) is used up, which only happens
// when the plugin stops reading; while less than 32 KiB is unanswered (a
// bound on what is unread), a send cannot block, and the caller saves the
// hand-off to the sender goroutine. Over it, calls go through the sender
// goroutine and wait for it within their own deadline.
const directSendBytes = 32 << 10

// mux multiplexes calls over one long-lived Calls stream. Every call has an
// id; the plugin answers in any order and the receiver hands each answer to
// its waiting caller. A caller waits only within its deadline: a call that
// times out is forgotten (and a cancel is sent), its late answer dropped.
// On the framed call socket there is no receiver goroutine while calls are
// made one at a time: a caller with no other call in flight reads its own
// answer (session.lead), saving a goroutine hand-off and, with more than
// one P, a thread wake-up per call; the receiver goroutine runs only while
// calls overlap.
//
// When the stream breaks while the process lives on, calls go unary while
// a new stream is opened in the background. When the process dies, its
// Conn is dropped as a whole.
type mux struct {
	client pluginpb.PluginClient
	sess   atomic.Pointer[session]
	ids    atomic.Uint64
	// max bounds every call sent (MaxMessageBytes): a larger one fails
	// alone (too_large) instead of breaking the stream for every call on
	// it (gRPC fails the whole stream on an oversized SendMsg; the plugin
	// would drop the framed call socket).
	max  int
	name string

	mu       sync.Mutex
	closed   bool
	reopen   bool // a background re-open is running
	stop     chan struct{}
	reopened sync.WaitGroup
}

// callStream is the host's end of the Calls stream (gRPC) or of the
// framed call socket. Send is called by one goroutine at a time, Recv by
// one goroutine.
type callStream interface {
	Send(*pluginpb.CallRequest) error
	Recv() (*pluginpb.CallResponse, error)
}

// session is one open stream.
type session struct {
	stream callStream
	// transport is the session's: TransportFrames or TransportStream.
	transport Transport
	cancel    func()
	sendq     chan *pluginpb.CallRequest
	done      chan struct{}
	// sendMu serialises SendMsg (direct senders and the sender goroutine).
	sendMu sync.Mutex
	// unanswered counts the bytes of calls sent and not answered.
	unanswered atomic.Int64

	// frames is the framed call socket (nil on a Calls stream): there a
	// caller with no other call in flight reads its answer itself (see
	// lead) instead of waiting for the receiver goroutine to hand it over.
	frames *frameStream

	mu   sync.Mutex
	dead bool
	err  error
	// reader says who reads answers now (frames; the Calls stream has its
	// receiver goroutine for good): nobody, the receiver goroutine
	// (recvLoop), or a caller reading its own answer (leader, its id).
	reader  readerKind
	leader  uint64
	pending map[uint64]*waiter
	// forgotten holds the sizes of calls that timed out, until their late
	// answer comes (or the session ends).
	forgotten map[uint64]int64
}

// waiter receives exactly one value from whoever removes it from pending:
// the answer, or nil when the session died.
type waiter struct {
	ch   chan *pluginpb.CallResponse
	size int64
}

type readerKind uint8

const (
	readerNone readerKind = iota
	readerLoop
	readerLeader
)

var waiters = sync.Pool{New: func() any { return &waiter{ch: make(chan *pluginpb.CallResponse, 1)} }}

// newMux opens the Calls stream and multiplexes calls over it; with a
// framed call socket (frames non-nil), calls go there first, and to a
// Calls stream if it breaks.
func newMux(client pluginpb.PluginClient, frames *frameStream, maxMessageBytes int, name string) (*mux, error) {
	m := &mux{client: client, stop: make(chan struct{}), max: maxMessageBytes, name: name}
	if frames != nil {
		m.sess.Store(newSession(frames, TransportFrames, func() { frames.conn.Close() }))
		return m, nil
	}
	s, err := m.open()
	if err != nil {
		return nil, err
	}
	m.sess.Store(s)
	return m, nil
}

func (m *mux) open() (*session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := m.client.Calls(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return newSession(st, TransportStream, cancel), nil
}

func newSession(st callStream, tr Transport, cancel func()) *session {
	s := &session{stream: st, transport: tr, cancel: cancel, sendq: make(chan *pluginpb.CallRequest, sendQueue), done: make(chan struct{}),
		pending: map[uint64]*waiter{}, forgotten: map[uint64]int64{}}
	s.frames, _ = st.(*frameStream)
	go s.sendLoop()
	if s.frames == nil {
		s.reader = readerLoop
		go s.recvLoop()
	}
	return s
}

func (m *mux) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.stop)
	m.mu.Unlock()
	m.reopened.Wait()
	if s := m.sess.Load(); s != nil {
		s.fail(errors.New("closed"))
	}
}

// reopenLater opens a new stream in the background, with backoff, while
// calls go unary.
func (m *mux) reopenLater() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.reopen {
		return
	}
	m.reopen = true
	m.reopened.Add(1)
	go func() {
		defer m.reopened.Done()
		wait := 10 * time.Millisecond
		for {
			t := time.NewTimer(wait)
			select {
			case <-m.stop:
				t.Stop()
				return
			case <-t.C:
			}
			if s, err := m.open(); err == nil {
				m.mu.Lock()
				if m.closed {
					m.mu.Unlock()
					s.fail(errors.New("closed"))
					return
				}
				m.sess.Store(s)
				m.reopen = false
				m.mu.Unlock()
				return
			}
			wait = min(2*wait, time.Second)
		}
	}()
}

// transport returns the transport calls take now: the session's, or
// TransportUnary while there is no live session.
func (m *mux) transport() Transport {
	if s := m.sess.Load(); s != nil && !s.isDead() {
		return s.transport
	}
	return TransportUnary
}

func (m *mux) call(ctx context.Context, req *pluginpb.CallRequest) (*pluginpb.CallResponse, error) {
	// The id is set before the size is taken: the frame sent includes it.
	req.Id = m.ids.Add(1)
	size := pluginpb.SizeCallRequest(req)
	if size > m.max {
		return nil, &Error{Kind: KindTooLarge, Err: fmt.Errorf("call to plugin %q of %d bytes over the bound of %d bytes (max_message_bytes)", m.name, size, m.max)}
	}
	s := m.sess.Load()
	if s == nil || s.isDead() {
		m.reopenLater()
		req.Id = 0 // as on Call
		return m.client.Call(ctx, req)
	}
	w := waiters.Get().(*waiter)
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		waiters.Put(w)
		m.reopenLater()
		req.Id = 0 // as on Call
		return m.client.Call(ctx, req)
	}
	w.size = int64(size)
	s.pending[req.Id] = w
	s.mu.Unlock()

	if !s.sendDirect(req, w.size, size) {
		select {
		case s.sendq <- req:
		case <-ctx.Done():
			s.forget(req.Id, w)
			return nil, &Error{Kind: KindTimeout, Err: errors.New("the call stream was full until the deadline")}
		case <-s.done:
			s.forget(req.Id, w)
			return nil, s.deadErr()
		}
	}
	if s.frames != nil {
		if s.mu.Lock(); s.reader == readerNone && len(s.pending) == 1 && s.pending[req.Id] == w {
			// Alone: read the answer here, saving the receiver
			// goroutine's wake-up and hand-off.
			s.reader, s.leader = readerLeader, req.Id
			s.mu.Unlock()
			return s.lead(ctx, req.Id, w)
		}
		if s.reader == readerNone && !s.dead {
			s.reader = readerLoop
			go s.recvLoop()
		}
		s.mu.Unlock()
	}
	select {
	case resp := <-w.ch:
		waiters.Put(w)
		if resp == nil {
			return nil, s.deadErr()
		}
		return resp, nil
	case <-ctx.Done():
		s.forget(req.Id, w)
		select {
		case s.sendq <- &pluginpb.CallRequest{Id: req.Id, Cancel: true}:
		default:
		}
		return nil, &Error{Kind: KindTimeout, Err: ctx.Err()}
	}
}

func (s *session) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

func (s *session) deadErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Error{Kind: KindUnavailable, Err: errors.New("the call stream broke: " + s.err.Error())}
}

// sendDirect sends req from the caller's goroutine when that cannot block
// (see directSendBytes) and the stream is free; it reports whether it did.
//
// On the framed call socket, a call waits until the goroutines ready to run
// have run (one scheduling round; a yield when none is) and goes out in one
// write with the calls they made (pluginpb.FrameWriter). On a busy gateway
// most requests reach their hook in the same round as others; a write per
// call wakes the plugin per call, and where the two share a CPU (at
// saturation they do) each wake-up is two context switches. Coalesced,
// the plugin reads the calls with one read and answers them with one
// write: in the hooks bench scenario, one plugin hook's cost at saturation
// fell from 54 to 15 µs per request. Deferring only calls made while
// others were in flight halved that gain: the plugin, woken by the first
// call's write, answers it before the gateway runs again, so the next
// call finds none in flight.
func (s *session) sendDirect(req *pluginpb.CallRequest, size int64, n int) bool {
	if s.frames != nil {
		// The FrameWriter serialises the writes, and a caller never
		// waits for another's.
		if s.unanswered.Add(size) > directSendBytes {
			s.unanswered.Add(-size)
			return false
		}
		if err := s.frames.sendSized(req, n, true); err != nil { // sized by call just before
			s.fail(err)
		}
		return true
	}
	if !s.sendMu.TryLock() {
		return false
	}
	if s.unanswered.Load()+size > directSendBytes {
		s.sendMu.Unlock()
		return false
	}
	s.unanswered.Add(size)
	err := s.stream.Send(req)
	s.sendMu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return true
}

func (s *session) send(req *pluginpb.CallRequest) error {
	if !req.Cancel {
		s.unanswered.Add(int64(pluginpb.SizeCallRequest(req)))
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(req)
}

// forget takes w back from pending, or, when the receiver (or fail) took it
// first, drains the one value it is owed, and returns w to the pool.
func (s *session) forget(id uint64, w *waiter) {
	s.mu.Lock()
	_, mine := s.pending[id]
	if mine {
		delete(s.pending, id)
		if s.forgotten != nil {
			s.forgotten[id] = w.size
		}
	}
	s.mu.Unlock()
	if !mine {
		<-w.ch
	}
	waiters.Put(w)
}

func (s *session) sendLoop() {
	for {
		select {
		case r := <-s.sendq:
			if err := s.send(r); err != nil {
				s.fail(err)
				return
			}
		case <-s.done:
			return
		}
	}
}

// recvLoop hands each answer to its waiting caller. On a Calls stream it
// runs for the session's life; on frames, while calls wait for their
// answer and no caller reads its own (see lead), and it ends when none is
// left waiting.
func (s *session) recvLoop() {
	for {
		if s.frames != nil {
			s.mu.Lock()
			if len(s.pending) == 0 || s.dead {
				s.reader = readerNone
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			s.frames.setReadDeadline(time.Time{}) // a leader's
		}
		resp, err := s.stream.Recv()
		if err != nil {
			if s.frames != nil && isTimeout(err) {
				// A leader's deadline, or its context's end (lead).
				s.frames.rdl = time.Time{}
				s.frames.conn.SetReadDeadline(time.Time{})
				continue
			}
			s.fail(err)
			return
		}
		if w := s.take(resp.Id); w != nil {
			w.ch <- resp
		}
	}
}

// take removes the caller of call id from pending and returns it (nil for
// a call forgotten or unknown), updating the unanswered bytes.
func (s *session) take(id uint64) *waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.pending[id]
	if w != nil {
		delete(s.pending, id)
		s.unanswered.Add(-w.size)
	} else if size, ok := s.forgotten[id]; ok {
		delete(s.forgotten, id)
		s.unanswered.Add(-size)
	}
	return w
}

// lead reads answers from the framed call socket on the caller's
// goroutine, until its own (id) comes, handing the others to their
// callers, within ctx: at its deadline (the socket's read deadline) or
// when it is canceled (which moves the read deadline to now), the call
// fails, and the reading goes on in recvLoop if other calls wait. A read
// cut short keeps what it read of a frame (frameStream.Recv resumes).
func (s *session) lead(ctx context.Context, id uint64, w *waiter) (*pluginpb.CallResponse, error) {
	f := s.frames
	dl, _ := ctx.Deadline() // do gives every call one
	// The read deadline is set only when it would end the read after the
	// call's: calls with later deadlines keep it (a read it cuts short
	// before the call's deadline just goes on), which saves re-arming its
	// timer on every call.
	if f.rdl.IsZero() || f.rdl.After(dl) {
		f.setReadDeadline(dl)
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			s.mu.Lock()
			if s.reader == readerLeader && s.leader == id {
				// Not through setReadDeadline: f.rdl is the reader's.
				// The reader sets the deadline afresh after a timeout.
				f.conn.SetReadDeadline(time.Unix(1, 0))
			}
			s.mu.Unlock()
		})
	}
	resp, err := s.leadRead(ctx, id, dl)
	if stop != nil {
		stop()
	}
	s.mu.Lock()
	if s.reader == readerLeader && s.leader == id {
		s.reader = readerNone
		if len(s.pending) > 0 && !s.dead {
			s.reader = readerLoop
			go s.recvLoop()
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.forget(id, w)
		return nil, err
	}
	waiters.Put(w)
	return resp, nil
}

func (s *session) leadRead(ctx context.Context, id uint64, dl time.Time) (*pluginpb.CallResponse, error) {
	f := s.frames
	for {
		resp, err := f.Recv()
		if err != nil {
			if !isTimeout(err) {
				s.fail(err)
				return nil, s.deadErr()
			}
			if err := ctx.Err(); err != nil {
				s.sendCancel(id)
				return nil, &Error{Kind: KindTimeout, Err: err}
			}
			if !time.Now().Before(dl) {
				s.sendCancel(id)
				// The socket's deadline may come a little before the
				// context's timer: the caller sees its context ended (as
				// when it waited on Done) once the call returns.
				if done := ctx.Done(); done != nil {
					t := time.NewTimer(10 * time.Millisecond)
					select {
					case <-done:
					case <-t.C:
					}
					t.Stop()
				}
				return nil, &Error{Kind: KindTimeout, Err: context.DeadlineExceeded}
			}
			f.rdl = dl // an earlier call's deadline (or a cancel's): go on to this one's
			f.conn.SetReadDeadline(dl)
			continue
		}
		if resp.Id == id {
			if s.take(id) == nil { // the session failed meanwhile
				return nil, s.deadErr()
			}
			return resp, nil
		}
		if w := s.take(resp.Id); w != nil {
			w.ch <- resp
		}
	}
}

// sendCancel tells the plugin a call is given up, if the sender has room.
func (s *session) sendCancel(id uint64) {
	select {
	case s.sendq <- &pluginpb.CallRequest{Id: id, Cancel: true}:
	default:
	}
}

// fail ends the session: every pending caller gets nil.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead, s.err = true, err
	ws := s.pending
	s.pending, s.forgotten = nil, nil
	s.mu.Unlock()
	close(s.done)
	s.cancel()
	for _, w := range ws {
		w.ch <- nil
	}
}
