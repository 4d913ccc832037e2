package hook

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// callCtx is a hook call's context: its parent (the request's) with the
// call's deadline. It is context.WithDeadline made lazy: the timer, the
// Done channel and the registration with the parent exist only once
// something asks for Done — a Go hook or plugin that waits — so the common
// call (a script, which has its own interrupt timer, or a Go hook that
// returns at once) costs one small allocation instead of a timer, a
// channel and a child context in the parent.
type callCtx struct {
	parent   context.Context
	deadline time.Time

	once   sync.Once
	made   atomic.Bool
	inner  context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*callCtx)(nil)

func newCallCtx(parent context.Context, deadline time.Time) *callCtx {
	return &callCtx{parent: parent, deadline: deadline}
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *callCtx) Value(key any) any { return c.parent.Value(key) }

// Done returns a channel closed at the deadline or when the parent is done.
func (c *callCtx) Done() <-chan struct{} {
	c.once.Do(func() {
		c.inner, c.cancel = context.WithDeadline(c.parent, c.deadline)
		c.made.Store(true)
	})
	return c.inner.Done()
}

// Err is DeadlineExceeded once the deadline has passed, the parent's error
// once it is done, nil before.
func (c *callCtx) Err() error {
	if c.made.Load() {
		return c.inner.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// canceled is the context of a call released before anything asked for Done.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// release ends the call: its context is canceled from now on, and the timer
// and the parent's registration are freed if Done made them. Once only.
func (c *callCtx) release() {
	c.once.Do(func() {
		c.inner, c.cancel = canceled, func() {}
		c.made.Store(true)
	})
	c.cancel()
}
