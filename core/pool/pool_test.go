package pool

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
)

// listen starts a TCP server on loopback that accepts and holds connections;
// closeAll closes every accepted connection from the server side.
func listen(t *testing.T) (addr string, accepted *atomic.Int64, closeAll func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	conns := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), accepted, func() {
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	}
}

func opts() Options {
	return Options{ConnectTimeout: time.Second, MaxConns: 2, MaxIdle: 2, IdleTimeout: time.Minute, Service: "svc"}
}

func TestReuseAndLimit(t *testing.T) {
	addr, accepted, _ := listen(t)
	p := New(addr, opts())
	ctx := context.Background()
	far := time.Now().Add(time.Minute)
	c1, err := p.Acquire(ctx, far, false)
	if err != nil {
		t.Fatal(err)
	}
	p.Release(c1, true)
	c2, err := p.Acquire(ctx, far, false)
	if err != nil || c2 != c1 || !c2.Reused {
		t.Fatalf("want the idle connection back, got %v %v", c2, err)
	}
	c3, err := p.Acquire(ctx, far, false)
	if err != nil {
		t.Fatal(err)
	}
	// Both slots in use: a third Acquire waits, then times out at the deadline.
	start := time.Now()
	_, err = p.Acquire(ctx, time.Now().Add(50*time.Millisecond), false)
	if failure.KindOf(err) != failure.ConnectTimeout {
		t.Fatalf("err = %v, want connect_timeout", err)
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Fatalf("waited %v, past the deadline", time.Since(start))
	}
	// A waiter gets a released connection handed over.
	got := make(chan *Conn)
	go func() {
		c, _ := p.Acquire(ctx, far, false)
		got <- c
	}()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Waiting == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Release(c3, true)
	if c := <-got; c != c3 {
		t.Fatalf("waiter got %v, want the released connection", c)
	}
	// A waiter whose slot is freed by a closed connection dials anew.
	go func() {
		c, _ := p.Acquire(ctx, far, false)
		got <- c
	}()
	for p.Stats().Waiting == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Release(c2, false)
	if c := <-got; c == nil || c == c2 {
		t.Fatalf("waiter got %v, want a new connection", c)
	}
	waitFor(t, func() bool { return accepted.Load() == 3 }, "3 accepted connections")
	if s := p.Stats(); s.Open != 2 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRefusedAndTimeoutClassified(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := New(addr, opts())
	_, err := p.Acquire(context.Background(), time.Now().Add(time.Second), false)
	fe := failure.As(err)
	if fe.Kind != failure.ConnectRefused || !fe.Retryable {
		t.Fatalf("err = %v, want retryable connect_refused", err)
	}
	if p.Stats().Open != 0 {
		t.Fatalf("a failed dial left a slot taken: %+v", p.Stats())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Acquire(ctx, time.Now().Add(time.Second), false)
	if k := failure.KindOf(err); k != failure.ClientGone {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestStaleIdleConnectionIsReplaced(t *testing.T) {
	old := staleCheckAfter
	staleCheckAfter = 0
	defer func() { staleCheckAfter = old }()
	addr, accepted, closeAll := listen(t)
	p := New(addr, opts())
	far := time.Now().Add(time.Minute)
	c1, err := p.Acquire(context.Background(), far, false)
	if err != nil {
		t.Fatal(err)
	}
	p.Release(c1, true)
	for accepted.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	closeAll()
	// The peek sees EOF once the FIN arrives; poll until the pool notices.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := p.Acquire(context.Background(), far, false)
		if err != nil {
			t.Fatal(err)
		}
		if c != c1 {
			break
		}
		p.Release(c, true)
		if time.Now().After(deadline) {
			t.Fatal("closed idle connection was never detected")
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, func() bool { return accepted.Load() == 2 }, "a second connection")
}

func TestCloseFailsAcquire(t *testing.T) {
	addr, _, _ := listen(t)
	p := New(addr, opts())
	c, _ := p.Acquire(context.Background(), time.Now().Add(time.Second), false)
	p.Close()
	p.Release(c, true) // closed pool: the connection is closed, not kept
	if s := p.Stats(); s.Open != 0 || s.Idle != 0 {
		t.Fatalf("stats after close %+v", s)
	}
	if _, err := p.Acquire(context.Background(), time.Now().Add(time.Second), false); failure.KindOf(err) != failure.NoEndpoint {
		t.Fatalf("acquire on closed pool: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
