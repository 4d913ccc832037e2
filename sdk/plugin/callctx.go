package plugin

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// callCtx is the context of a call served on the Calls stream or the
// framed call socket: the stream's context with the call's deadline, and
// the call's cache slot (CacheFor). It is context.WithDeadline made lazy:
// the timer, the Done channel and the registration with the parent exist
// only once something asks for Done (a hook that waits on ctx, or derives
// a context from it), so a hook that answers at once costs no timer (whose
// arming can wake the Go netpoller) and no cancel registration.
type callCtx struct {
	parent   context.Context
	deadline time.Time
	slot     cacheSlot

	mu       sync.Mutex
	made     atomic.Bool
	inner    context.Context
	stop     context.CancelFunc
	canceled atomic.Bool // by the host's cancel, or at the call's end
}

var _ context.Context = (*callCtx)(nil)

func newCallCtx(parent context.Context, deadline time.Time) *callCtx {
	return &callCtx{parent: parent, deadline: deadline}
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *callCtx) Value(key any) any {
	if key == (cacheSlotKey{}) {
		return &c.slot
	}
	return c.parent.Value(key)
}

func (c *callCtx) make() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.stop = context.WithDeadline(c.parent, c.deadline)
		if c.canceled.Load() {
			c.stop()
		}
		c.made.Store(true)
	}
	return c.inner
}

// Done returns a channel closed at the deadline, on cancel, or when the
// parent is done.
func (c *callCtx) Done() <-chan struct{} { return c.make().Done() }

// Err is Canceled once canceled, DeadlineExceeded once the deadline has
// passed, the parent's error once it is done, nil before.
func (c *callCtx) Err() error {
	if c.made.Load() {
		return c.inner.Err()
	}
	if c.canceled.Load() {
		return context.Canceled
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// AfterFunc lets context.WithCancel and friends (and context.AfterFunc)
// derive a context from c without a goroutine watching it.
func (c *callCtx) AfterFunc(f func()) func() bool {
	return context.AfterFunc(c.make(), f)
}

// cancel cancels the call (the host gave it up, or it ended): the timer
// and the parent's registration are freed if Done made them.
func (c *callCtx) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.canceled.Store(true)
	if c.stop != nil {
		c.stop()
	}
}
