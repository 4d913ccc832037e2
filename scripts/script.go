package scripts

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/gatehouse/gatehouse/sdk"
)

// Script is one compiled, immutable version of a script. It implements every
// sdk phase interface; sdk.PhasesOf reports only the phases the script
// defines (calling another phase returns the zero decision). It is safe for
// concurrent use: each call checks a runtime out of the version's bounded
// pool.
type Script struct {
	name       string
	path       string
	bundle     *bundle
	opts       Options
	configJSON []byte
	phases     sdk.PhaseSet
	logs       *logLimiter
	pool       *pool

	calls, failures, timeouts, discarded atomic.Uint64
	replaced                             atomic.Uint64
}

// Compile reads, checks and compiles the script at path (a .js file, or a
// directory bundle with index.js), runs its top-level code once and returns
// the version. A script is refused with a *LoadError ("file:line:column:
// message") when it does not parse, requires anything but a relative file of
// its bundle, mentions fetch, XMLHttpRequest, setTimeout, setInterval or
// another missing global, fails at its top level, or exports anything but
// phase functions.
func Compile(path string, opts Options) (*Script, error) {
	cfg, err := opts.validate()
	if err != nil {
		return nil, err
	}
	b, err := loadBundle(path)
	if err != nil {
		return nil, err
	}
	s := &Script{
		name:       scriptName(path),
		path:       path,
		bundle:     b,
		opts:       opts,
		configJSON: cfg,
		logs:       opts.logs,
	}
	if s.logs == nil {
		s.logs = newLogLimiter(opts.LogRate, opts.LogBurst)
	}
	st, err := newVMState(s)
	if err != nil {
		return nil, err
	}
	s.phases = st.phases
	s.pool = newPool(opts.PoolSize, opts.MaxRuntimeCalls, st, s.newRuntime, s.dropRuntime)
	return s, nil
}

// withConfig returns the same version with another config (for a cases
// file that brings its own), sharing the compiled programs.
func (s *Script) withConfig(cfg map[string]any) (*Script, error) {
	opts := s.opts
	opts.Config = cfg
	cj, err := opts.validate()
	if err != nil {
		return nil, err
	}
	c := &Script{name: s.name, path: s.path, bundle: s.bundle, opts: opts, configJSON: cj, logs: s.logs}
	st, err := newVMState(c)
	if err != nil {
		return nil, err
	}
	c.phases = st.phases
	c.pool = newPool(opts.PoolSize, opts.MaxRuntimeCalls, st, c.newRuntime, c.dropRuntime)
	return c, nil
}

// newRuntime makes a runtime for the pool's maker.
func (s *Script) newRuntime() (*vmState, error) { return newVMState(s) }

// dropRuntime ends a runtime the pool replaced.
func (s *Script) dropRuntime(st *vmState) {
	st.watch.stop()
	s.replaced.Add(1)
}

func scriptName(p string) string {
	base := filepath.Base(filepath.Clean(p))
	return strings.TrimSuffix(base, ".js")
}

// ID returns the version ID: the first 12 hex digits of the xxhash of the
// bundle's files. It tags every log line of the version.
func (s *Script) ID() string { return s.bundle.id }

// Name returns the script's name: its file name without ".js", or its
// directory's name for a bundle.
func (s *Script) Name() string { return s.name }

// Path returns the path the script was compiled from.
func (s *Script) Path() string { return s.path }

// Phases returns the phases whose functions the script exports.
func (s *Script) Phases() sdk.PhaseSet { return s.phases }

// CasesPath returns the path of the cases file the bundle ships
// ("<name>.cases.yaml" beside a file, "cases.yaml" in a bundle directory),
// or "" when it ships none.
func (s *Script) CasesPath() string { return s.bundle.cases }

// ScriptStats counts the calls into one version.
type ScriptStats struct {
	Calls       uint64 // calls of defined phases
	Failures    uint64 // calls that returned an error (including timeouts)
	Timeouts    uint64 // calls stopped at their deadline or cancellation
	Discarded   uint64 // runtimes thrown away after an interrupt or a panic
	Replaced    uint64 // runtimes replaced after Options.MaxRuntimeCalls calls
	LogsDropped uint64 // console lines dropped by the rate limit
}

// Stats returns the version's counters.
func (s *Script) Stats() ScriptStats {
	return ScriptStats{
		Calls: s.calls.Load(), Failures: s.failures.Load(), Timeouts: s.timeouts.Load(),
		Discarded: s.discarded.Load(), Replaced: s.replaced.Load(), LogsDropped: s.logs.dropped.Load(),
	}
}

var (
	_ sdk.Validator     = (*Script)(nil)
	_ sdk.Shaper        = (*Script)(nil)
	_ sdk.Router        = (*Script)(nil)
	_ sdk.Responder     = (*Script)(nil)
	_ sdk.Observer      = (*Script)(nil)
	_ sdk.PhaseReporter = (*Script)(nil)
)

// Validate calls the script's validate function with the request view.
func (s *Script) Validate(ctx context.Context, req *sdk.Request) (d sdk.ValidateDecision, err error) {
	if !s.phases.Has(sdk.PhaseValidate) {
		return d, nil
	}
	st, err := s.enter(ctx, sdk.PhaseValidate, req)
	if err != nil {
		return d, err
	}
	defer s.leave(ctx, st, sdk.PhaseValidate, &err)
	d = st.toValidate(st.call(sdk.PhaseValidate, st.reqArgs))
	return d, nil
}

// Shape calls the script's shape function with the request view.
func (s *Script) Shape(ctx context.Context, req *sdk.Request) (d sdk.ShapeDecision, err error) {
	if !s.phases.Has(sdk.PhaseShape) {
		return d, nil
	}
	st, err := s.enter(ctx, sdk.PhaseShape, req)
	if err != nil {
		return d, err
	}
	defer s.leave(ctx, st, sdk.PhaseShape, &err)
	d = st.toShape(st.call(sdk.PhaseShape, st.reqArgs))
	return d, nil
}

// Route calls the script's route function with the request view.
func (s *Script) Route(ctx context.Context, req *sdk.Request) (d sdk.RouteDecision, err error) {
	if !s.phases.Has(sdk.PhaseRoute) {
		return d, nil
	}
	st, err := s.enter(ctx, sdk.PhaseRoute, req)
	if err != nil {
		return d, err
	}
	defer s.leave(ctx, st, sdk.PhaseRoute, &err)
	d = st.toRoute(st.call(sdk.PhaseRoute, st.reqArgs))
	return d, nil
}

// Respond calls the script's respond function with the request and
// response views.
func (s *Script) Respond(ctx context.Context, req *sdk.Request, resp *sdk.Response) (d sdk.RespondDecision, err error) {
	if !s.phases.Has(sdk.PhaseRespond) {
		return d, nil
	}
	st, err := s.enter(ctx, sdk.PhaseRespond, req)
	if err != nil {
		return d, err
	}
	st.resp.resp = resp
	defer s.leave(ctx, st, sdk.PhaseRespond, &err)
	d = st.toRespond(st.call(sdk.PhaseRespond, st.respArgs))
	return d, nil
}

// Observe calls the script's observe function with the observation view.
// Its return value is ignored; a failure is logged (rate-limited) and
// counted.
func (s *Script) Observe(ctx context.Context, obs *sdk.Observation) {
	if !s.phases.Has(sdk.PhaseObserve) {
		return
	}
	err := s.observe(ctx, obs)
	if err != nil {
		if ok, _ := s.logs.allow(time.Now()); ok {
			s.opts.Logger.Warn().Str("file", s.name).Str("version", s.bundle.id).Err(err).Msg("observe failed")
		}
	}
}

func (s *Script) observe(ctx context.Context, obs *sdk.Observation) (err error) {
	st, err := s.enter(ctx, sdk.PhaseObserve, obs.Request)
	if err != nil {
		return err
	}
	st.obs.obs = obs
	defer s.leave(ctx, st, sdk.PhaseObserve, &err)
	st.call(sdk.PhaseObserve, st.obsArgs)
	return nil
}

// call runs a phase function with args (st.reqArgs, st.respArgs or
// st.obsArgs); a failure panics and is handled by leave.
func (st *vmState) call(p sdk.Phase, args []goja.Value) goja.Value {
	if !st.shareArgs[p] {
		args = slices.Clone(args)
	}
	v, err := st.fns[p](goja.Undefined(), args...)
	if err != nil {
		panic(err)
	}
	return v
}

// enter checks a runtime out of the pool (waiting at most until the
// context is done) and arms the deadline interrupt.
func (s *Script) enter(ctx context.Context, p sdk.Phase, req *sdk.Request) (*vmState, error) {
	s.calls.Add(1)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.opts.CallTimeout)
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail(p, ctx, "not called", err)
	}
	select {
	case <-s.pool.permits:
	default:
		wait := time.NewTimer(time.Until(deadline))
		select {
		case <-s.pool.permits:
			wait.Stop()
		case <-ctx.Done():
			wait.Stop()
			return nil, s.fail(p, ctx, fmt.Sprintf("every runtime busy (Options.PoolSize = %d) until the deadline", s.opts.PoolSize), ctx.Err())
		case <-wait.C:
			return nil, s.fail(p, ctx, fmt.Sprintf("every runtime busy (Options.PoolSize = %d) until the deadline", s.opts.PoolSize), context.DeadlineExceeded)
		}
	}
	st, err := s.pool.take(deadline, ctx)
	if st == nil {
		s.pool.release()
		msg := "no runtime ready before the deadline (runtimes are made in the background: each runs the script's top-level code)"
		if err != nil {
			msg += "; the last one could not be made: " + err.Error()
		}
		cause := ctx.Err()
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		return nil, s.fail(p, ctx, msg, cause)
	}
	st.rt.ClearInterrupt()
	st.deadline = deadline
	if req != nil {
		st.reqID = req.ID
	}
	st.req.set(req)
	// The runtime's watchdog interrupts it at the deadline. A context
	// with a deadline (every hook call has one: at most its budget) is not
	// watched for an earlier cancellation: the deadline bounds the call
	// anyway, and watching would cost a registration per call. One
	// without a deadline is watched: its cancellation is its only end
	// besides CallTimeout.
	if !ok && ctx.Done() != nil {
		st.stopCancel = context.AfterFunc(ctx, st.onDone)
	}
	st.watch.arm(deadline)
	return st, nil
}

// leave disarms the interrupt, turns a panic into the call's error and
// returns the runtime to the pool, or discards it when it was interrupted,
// overflowed its stack or panicked: its state can no longer be trusted.
func (s *Script) leave(ctx context.Context, st *vmState, p sdk.Phase, errp *error) {
	r := recover()
	// A runtime interrupted at its deadline is discarded, as is one whose
	// context.AfterFunc could not be stopped: it has run or is running,
	// and its interrupt may land after this returns.
	cause := st.watch.disarm()
	if st.stopCancel != nil {
		if !st.stopCancel() && cause == nil {
			cause = errDeadline
		}
		st.stopCancel = nil
	}
	st.req.set(nil)
	st.resp.resp, st.obs.obs = nil, nil
	st.deadline, st.reqID = time.Time{}, ""
	clear(st.joining)
	st.joining = st.joining[:0]
	discard := cause != nil
	if r != nil {
		*errp, discard = s.failure(ctx, p, r, cause)
	}
	if discard {
		st.watch.stop()
		s.discarded.Add(1)
	}
	s.pool.put(st, discard)
}

// failure classifies a panic of a call; cause is what interrupted it, if
// anything did.
func (s *Script) failure(ctx context.Context, p sdk.Phase, r any, cause error) (err error, discard bool) {
	fired := cause != nil
	interrupted := "interrupted at its deadline"
	if errors.Is(ctx.Err(), context.Canceled) {
		interrupted = "interrupted: its context was canceled"
	}
	switch x := r.(type) {
	case *convError:
		return s.fail(p, ctx, x.msg, ErrInvalidDecision), fired
	case *abortError:
		if x.err == errRegexpTimeout {
			return s.fail(p, ctx, x.err.Error(), nil), true
		}
		return s.fail(p, ctx, "deadline passed in a built-in", x.err), true
	case *goja.InterruptedError:
		if me, ok := x.Value().(*memoryError); ok {
			return s.fail(p, ctx, me.Error()+at(x), me), true
		}
		return s.fail(p, ctx, interrupted+at(x), x), true
	case *goja.StackOverflowError:
		return s.fail(p, ctx, fmt.Sprintf("stack overflow: calls nested deeper than %d (Options.MaxCallStackSize)%s", s.opts.MaxCallStackSize, at(x)), x), true
	case *goja.Exception:
		if me, ok := cause.(*memoryError); ok {
			return s.fail(p, ctx, me.Error(), me), true
		}
		if fired {
			return s.fail(p, ctx, interrupted, errDeadline), true
		}
		return s.fail(p, ctx, exceptionMsg(x)+at(x), x), false
	case error:
		return s.fail(p, ctx, "internal error: "+x.Error(), x), true
	default:
		return s.fail(p, ctx, fmt.Sprintf("internal error: %v", x), nil), true
	}
}

func at(err error) string {
	if f, l, c, ok := exceptionPos(err); ok {
		return fmt.Sprintf(" at %s:%d:%d", f, l, c)
	}
	return ""
}

// fail builds a call's error and counts it.
func (s *Script) fail(p sdk.Phase, ctx context.Context, msg string, cause error) error {
	s.failures.Add(1)
	var ie *goja.InterruptedError
	if errors.Is(cause, context.DeadlineExceeded) || errors.As(cause, &ie) || errors.Is(cause, context.Canceled) {
		s.timeouts.Add(1)
		if ctxErr := ctx.Err(); ctxErr != nil {
			cause = fmt.Errorf("%w", ctxErr)
		} else {
			cause = context.DeadlineExceeded
		}
	}
	return &CallError{Script: s.name, Version: s.bundle.id, Phase: p.String(), Msg: msg, Err: cause}
}
