package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

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

	mu      sync.Mutex
	dead    bool
	err     error
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
	go s.sendLoop()
	go s.recvLoop()
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
	size := proto.Size(req)
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

	if !s.sendDirect(req, w.size) {
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
func (s *session) sendDirect(req *pluginpb.CallRequest, size int64) bool {
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
		s.unanswered.Add(int64(proto.Size(req)))
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

func (s *session) recvLoop() {
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		w := s.pending[resp.Id]
		if w != nil {
			delete(s.pending, resp.Id)
			s.unanswered.Add(-w.size)
		} else if size, ok := s.forgotten[resp.Id]; ok {
			delete(s.forgotten, resp.Id)
			s.unanswered.Add(-size)
		}
		s.mu.Unlock()
		if w != nil {
			w.ch <- resp
		}
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
