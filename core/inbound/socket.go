package inbound

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
)

// socket owns a bound net.Listener and accepts on it for whichever
// http.Server currently serves it: on a reload that changes server settings
// but not the address, a new server takes over the same socket (views) and
// the old one drains, so no connection is refused in between.
type socket struct {
	ln    net.Listener
	tls   bool
	conns chan net.Conn
	done  chan struct{}

	mu    sync.Mutex
	cond  *sync.Cond
	open  int
	limit int
	live  map[*trackedConn]struct{}

	onAbandoned func(remote string, start time.Time, k failure.Kind, status int, msg string)
}

func newSocket(ln net.Listener, limit int, isTLS bool) *socket {
	s := &socket{ln: ln, tls: isTLS, conns: make(chan net.Conn), done: make(chan struct{}), limit: limit,
		live: map[*trackedConn]struct{}{}}
	s.cond = sync.NewCond(&s.mu)
	go s.loop()
	return s
}

// loop accepts connections while fewer than limit are open; at the limit
// new connections wait in the kernel's backlog.
func (s *socket) loop() {
	defer close(s.done)
	backoff := 5 * time.Millisecond
	for {
		s.mu.Lock()
		for s.open >= s.limit {
			s.cond.Wait()
		}
		s.open++
		s.mu.Unlock()
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and go on.
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		tc := &trackedConn{Conn: c, sock: s}
		tc.scan.Store(!s.tls)
		s.mu.Lock()
		s.live[tc] = struct{}{}
		s.mu.Unlock()
		select {
		case s.conns <- tc:
		case <-s.done:
			c.Close()
			return
		}
	}
}

func (s *socket) release(c *trackedConn) {
	s.mu.Lock()
	s.open--
	delete(s.live, c)
	s.cond.Signal()
	s.mu.Unlock()
}

func (s *socket) setLimit(n int) {
	s.mu.Lock()
	s.limit = n
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *socket) abandoned(c *trackedConn, start time.Time) {
	if s.onAbandoned == nil {
		return
	}
	k, status, msg := c.abandonedKind()
	s.onAbandoned(c.RemoteAddr().String(), start, k, status, msg)
}

// closeAll closes every connection still open (upgraded tunnels, which the
// server no longer tracks, among them).
func (s *socket) closeAll() {
	s.mu.Lock()
	live := make([]*trackedConn, 0, len(s.live))
	for c := range s.live {
		live = append(live, c)
	}
	s.mu.Unlock()
	for _, c := range live {
		c.Close()
	}
}

// close stops accepting.
func (s *socket) close() error { return s.ln.Close() }

// view is the net.Listener one http.Server serves: it takes connections
// from the socket until it is closed, without closing the socket.
type view struct {
	s      *socket
	closed chan struct{}
	once   sync.Once
}

func (s *socket) newView() *view { return &view{s: s, closed: make(chan struct{})} }

func (v *view) Accept() (net.Conn, error) {
	select {
	case c := <-v.s.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.s.done:
		return nil, net.ErrClosed
	}
}

func (v *view) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *view) Addr() net.Addr { return v.s.ln.Addr() }
