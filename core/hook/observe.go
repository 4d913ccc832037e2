package hook

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// Observers runs observe hooks after requests end, on a worker of its own,
// so that they never delay a response. Its queue is bounded: when it is
// full, observations are dropped and counted.
type Observers struct {
	jobs    chan observeJob
	Dropped atomic.Int64
	wg      sync.WaitGroup
	once    sync.Once
}

type observeJob struct {
	chain *Chain
	snap  Snapshot
	obs   *sdk.Observation
}

// nopStamper is used for observe calls: the passport is already finished.
type nopStamper struct{}

func (nopStamper) Hook(bool, string) {}

// NewObservers starts a dispatcher with a queue of size entries.
func NewObservers(size int) *Observers {
	o := &Observers{jobs: make(chan observeJob, size)}
	o.wg.Add(1)
	go o.run()
	return o
}

// Enqueue schedules the chain's observe hooks for obs, or drops it.
func (o *Observers) Enqueue(c *Chain, s *Snapshot, obs *sdk.Observation) {
	select {
	case o.jobs <- observeJob{chain: c, snap: *s, obs: obs}:
	default:
		o.Dropped.Add(1)
	}
}

func (o *Observers) run() {
	defer o.wg.Done()
	for j := range o.jobs {
		j.chain.observe(&j.snap, j.obs)
	}
}

// Close stops the dispatcher after the queued observations.
func (o *Observers) Close() {
	o.once.Do(func() { close(o.jobs) })
	o.wg.Wait()
}

func (c *Chain) observe(s *Snapshot, obs *sdk.Observation) {
	for i, b := range c.Bindings {
		v := s.v[i]
		if !b.runs(v, sdk.PhaseObserve) {
			continue
		}
		cl, f := c.enter(context.Background(), time.Now().Add(b.Budget), b, v, sdk.PhaseObserve, nopStamper{})
		if f == nil {
			err, panicked := callObserve(cl.ctx, v.Impl.(sdk.Observer), obs)
			f = c.exit(cl, b, v, sdk.PhaseObserve, err, panicked)
		}
		id := ""
		if obs.Request != nil {
			id = obs.Request.ID
		}
		// The request has ended: an observe hook's failure is counted and
		// logged, never in its passport.
		c.done(nil, nopStamper{}, b, v, sdk.PhaseObserve, f, true, id)
	}
}

func callObserve(ctx context.Context, h sdk.Observer, obs *sdk.Observation) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = panicError{r}, true
		}
	}()
	h.Observe(ctx, obs)
	return nil, false
}

type panicError struct{ v any }

func (p panicError) Error() string { return "panic: " + fmtAny(p.v) }
