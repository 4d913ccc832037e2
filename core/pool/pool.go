// Package pool keeps connections to upstream endpoints: keep-alive always,
// every operation bounded. Acquire connects or reuses within a deadline and
// under a per-endpoint connection limit; the caller writes the request head
// with the connection's pooled buffered writer and reads the response with
// its buffered reader (net/http's public codec), then releases the
// connection as reusable or not.
package pool

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
)

// Options bound one endpoint's pool. Every field is required and positive
// (MaxIdle may be zero only if you never want reuse).
type Options struct {
	// ConnectTimeout bounds a dial plus TLS handshake, and the wait for a free
	// connection when MaxConns are in use (limits.upstream.connect_timeout).
	ConnectTimeout time.Duration
	// MaxConns is the most connections open to the endpoint (limits.upstream.max_conns_per_endpoint).
	MaxConns int
	// MaxIdle is the most idle connections kept (limits.upstream.max_idle_per_endpoint).
	MaxIdle int
	// IdleTimeout closes a connection idle this long (limits.upstream.idle_timeout).
	IdleTimeout time.Duration
	// TLS, when non-nil, wraps connections in TLS with this config.
	TLS *tls.Config
	// Service names the service in errors.
	Service string
}

// staleCheckAfter is the idle time after which a reused connection is
// checked (one non-blocking peek) for a close by the endpoint. Below it, a
// close racing with reuse is covered by the retry-once-on-fresh rule.
var staleCheckAfter = 500 * time.Millisecond

// bufSize is the size of each connection's reader and writer.
const bufSize = 4 << 10

// Conn is one upstream connection with its codec buffers.
type Conn struct {
	net.Conn
	BR *bufio.Reader
	BW *bufio.Writer
	// Reused is true when the connection served an earlier request.
	Reused bool
	// NRead counts bytes read from the connection (to tell "nothing
	// received" apart from a cut response).
	NRead int64
	// ReadLimit, when non-zero, fails reads once NRead reaches it: it bounds
	// a response head, which net/http's codec reads without a limit.
	ReadLimit int64
	pool      *Pool
	raw       net.Conn // the TCP connection under TLS, for the stale check
	idleAt    time.Time
}

// Pool is the pool of one endpoint.
type Pool struct {
	addr   string
	opts   Options
	dialer net.Dialer

	mu      sync.Mutex
	idle    []*Conn
	total   int // open connections, idle or in use, plus dials under way
	waiters []chan *Conn
	closed  bool
}

// New returns the pool for addr.
func New(addr string, opts Options) *Pool {
	return &Pool{addr: addr, opts: opts, dialer: net.Dialer{KeepAlive: 30 * time.Second}}
}

// Addr returns the endpoint's address.
func (p *Pool) Addr() string { return p.addr }

// Stats is a snapshot of a pool.
type Stats struct{ Open, Idle, Waiting int }

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Open: p.total, Idle: len(p.idle), Waiting: len(p.waiters)}
}

// slotFreed tells a waiter that a slot was freed and it may dial.
var slotFreed = (*Conn)(nil)

// Acquire returns a connection to the endpoint, reusing an idle one when it
// can. It waits at most until the earlier of deadline and now+ConnectTimeout,
// and gives up when ctx ends. Errors are *failure.Error of kind
// ConnectTimeout, ConnectRefused, ConnectFailed or ClientGone.
// With fresh set, idle connections are skipped (a retry after a stale one).
func (p *Pool) Acquire(ctx context.Context, deadline time.Time, fresh bool) (*Conn, error) {
	now := time.Now()
	if d := now.Add(p.opts.ConnectTimeout); d.Before(deadline) {
		deadline = d
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, failure.New(failure.NoEndpoint, "service %q endpoint %s was removed", p.opts.Service, p.addr)
	}
	for len(p.idle) > 0 && !fresh {
		c := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		age := now.Sub(c.idleAt)
		if age >= p.opts.IdleTimeout {
			p.total--
			p.mu.Unlock()
			c.Conn.Close()
			p.mu.Lock()
			continue
		}
		p.mu.Unlock()
		if age >= staleCheckAfter && !alive(c.raw) {
			c.Conn.Close()
			p.forget()
			p.mu.Lock()
			continue
		}
		return c, nil
	}
	if p.total < p.opts.MaxConns {
		p.total++
		p.mu.Unlock()
		return p.dial(ctx, deadline)
	}
	w := make(chan *Conn, 1)
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case c := <-w:
		if c != slotFreed {
			return c, nil
		}
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			p.forget()
			return nil, failure.New(failure.NoEndpoint, "service %q endpoint %s was removed", p.opts.Service, p.addr)
		}
		return p.dial(ctx, deadline)
	case <-timer.C:
		p.abandon(w)
		return nil, &failure.Error{Kind: failure.ConnectTimeout, Retryable: true,
			Msg: fmt.Sprintf("service %q endpoint %s: no free connection within %s (limits.upstream.max_conns_per_endpoint = %d)",
				p.opts.Service, p.addr, p.opts.ConnectTimeout, p.opts.MaxConns)}
	case <-ctx.Done():
		p.abandon(w)
		return nil, failure.New(failure.ClientGone, "client went away waiting for a connection to %s", p.addr)
	}
}

// abandon removes waiter w; if a connection or slot was handed to it in the
// meantime, passes it on.
func (p *Pool) abandon(w chan *Conn) {
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	// Already handed something: give it back.
	if c := <-w; c != slotFreed {
		p.Release(c, true)
	} else {
		p.forget()
	}
}

func (p *Pool) dial(ctx context.Context, deadline time.Time) (*Conn, error) {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	raw, err := p.dialer.DialContext(dctx, "tcp", p.addr)
	if err == nil && p.opts.TLS != nil {
		tc := tls.Client(raw, p.opts.TLS)
		if err = tc.HandshakeContext(dctx); err != nil {
			raw.Close()
		} else {
			c := p.wrap(tc, raw)
			return c, nil
		}
	}
	if err != nil {
		p.forget()
		return nil, p.classify(ctx, err)
	}
	return p.wrap(raw, raw), nil
}

func (p *Pool) wrap(c, raw net.Conn) *Conn {
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	pc := &Conn{Conn: c, raw: raw, pool: p}
	pc.BR = bufio.NewReaderSize(pc, bufSize)
	pc.BW = bufio.NewWriterSize(c, bufSize)
	return pc
}

// ErrReadLimit is returned by Read past ReadLimit.
var ErrReadLimit = errors.New("pool: read limit reached")

// Read reads from the connection, counting bytes.
func (c *Conn) Read(b []byte) (int, error) {
	if c.ReadLimit > 0 {
		if c.NRead >= c.ReadLimit {
			return 0, ErrReadLimit
		}
		if rest := c.ReadLimit - c.NRead; int64(len(b)) > rest {
			b = b[:rest]
		}
	}
	n, err := c.Conn.Read(b)
	c.NRead += int64(n)
	return n, err
}

func (p *Pool) classify(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return failure.Wrap(failure.ClientGone, err, "client went away while connecting to %s", p.addr)
	case errors.Is(err, syscall.ECONNREFUSED):
		return &failure.Error{Kind: failure.ConnectRefused, Retryable: true, Err: err,
			Msg: fmt.Sprintf("service %q endpoint %s", p.opts.Service, p.addr)}
	case isTimeout(err):
		return &failure.Error{Kind: failure.ConnectTimeout, Retryable: true, Err: err,
			Msg: fmt.Sprintf("service %q endpoint %s: connect timeout (limits.upstream.connect_timeout = %s)", p.opts.Service, p.addr, p.opts.ConnectTimeout)}
	}
	return &failure.Error{Kind: failure.ConnectFailed, Retryable: true, Err: err,
		Msg: fmt.Sprintf("service %q endpoint %s", p.opts.Service, p.addr)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// forget drops one slot (a failed dial or a closed connection) and lets a
// waiter dial in its place.
func (p *Pool) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total--
	p.wakeDialer()
}

// wakeDialer hands a free slot to the first waiter. p.mu is held.
func (p *Pool) wakeDialer() {
	if len(p.waiters) > 0 && p.total < p.opts.MaxConns && !p.closed {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.total++
		w <- slotFreed
	}
}

// Release returns c to the pool. reusable must be false unless the last
// response was read to its end, the request was fully written, and neither
// side asked to close; a connection that is not reusable is closed.
func (p *Pool) Release(c *Conn, reusable bool) {
	if reusable {
		c.SetDeadline(time.Time{})
		p.mu.Lock()
		if !p.closed {
			c.Reused = true
			if len(p.waiters) > 0 {
				w := p.waiters[0]
				p.waiters = p.waiters[1:]
				p.mu.Unlock()
				w <- c
				return
			}
			if len(p.idle) < p.opts.MaxIdle {
				c.idleAt = time.Now()
				p.idle = append(p.idle, c)
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
	}
	c.Conn.Close()
	p.forget()
}

// CloseIdle closes idle connections older than the idle timeout; with all
// set, every idle connection.
func (p *Pool) CloseIdle(all bool) {
	now := time.Now()
	p.mu.Lock()
	var drop []*Conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if all || now.Sub(c.idleAt) >= p.opts.IdleTimeout {
			drop = append(drop, c)
			p.total--
		} else {
			keep = append(keep, c)
		}
	}
	for i := len(keep); i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = keep
	p.mu.Unlock()
	for _, c := range drop {
		c.Conn.Close()
	}
}

// Close stops reuse: idle connections are closed now, connections in use are
// closed when released, and Acquire fails.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	waiters := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, w := range waiters {
		p.mu.Lock()
		p.total++
		p.mu.Unlock()
		w <- slotFreed // the waiter sees the pool closed and gives up
	}
	p.CloseIdle(true)
}
