package scripts

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
	"github.com/gatehouse/gatehouse/sdk"
)

// vmState is one runtime of a script version with everything a call needs,
// created once and reused by the calls that check it out of the pool.
type vmState struct {
	s  *Script
	rt *goja.Runtime

	fns    [len(sdk.Phases)]goja.Callable
	phases sdk.PhaseSet

	req                *requestView
	reqObj             *goja.Object
	headersObj         *goja.Object
	headerFn           goja.Value
	headerValuesFn     goja.Value
	labelsObj          *goja.Object
	tlsObj             *goja.Object
	resp               *responseView
	respObj            *goja.Object
	respHeadersObj     *goja.Object
	respHeaderFn       goja.Value
	respHeaderValuesFn goja.Value
	obs                *observationView
	obsObj             *goja.Object

	// The arguments of the phase functions, made once: the views are the
	// same objects on every call. A call passes them as they are only to
	// a function whose shareArgs is set, one that copies its arguments
	// before running (a plain or arrow function, a built-in); any other
	// callable (a Proxy, whose apply trap sees them as an array) gets a
	// copy, so that nothing a script keeps aliases them.
	reqArgs   []goja.Value // [req]
	respArgs  []goja.Value // [req, resp]
	obsArgs   []goja.Value // [obs]
	shareArgs [len(sdk.Phases)]bool

	rangeErrorCtor goja.Value
	builtinExecObj goja.Value                         // RegExp.prototype.exec as installed
	builtinExec    func(goja.FunctionCall) goja.Value // and its Go function
	joining        []*goja.Object                     // arrays being joined, for cycles and nesting
	guard          guardState                         // state of the other guarded built-ins
	canon          map[string]string                  // header names asked for → canonical form (maxCanonCache)
	strCache       [strCacheSlots]cachedString        // label and header values converted (jsString)

	// Per call.
	deadline   time.Time
	reqID      string
	watch      *watchdog   // interrupts the runtime at the call's deadline
	stopCancel func() bool // stops the context.AfterFunc that interrupts the runtime (contexts without a deadline)
	onDone     func()      // interrupts the runtime; made once so a call allocates no closure

	// The pool's (put): calls served, and whether (and in which
	// of its epochs) the runtime was marked for replacement.
	calls    int
	retiring bool
	epoch    int
}

// funcType is the ExportType of an ordinary function (JavaScript or
// built-in), as opposed to a Proxy or a class constructor.
var funcType = reflect.TypeOf((func(goja.FunctionCall) goja.Value)(nil))

// sandboxJS removes what a script must not have: dynamic code (eval, the
// Function constructors), binary buffers (whose constructors allocate
// gigabytes in one call) and BigInt (whose ** runs unbounded in one
// instruction).
const sandboxJS = `(function (g) {
	"use strict";
	function deny(what) {
		var f = function () { throw new EvalError(what + " is not available in gatehouse scripts"); };
		return f;
	}
	["ArrayBuffer", "SharedArrayBuffer", "DataView", "Atomics", "BigInt",
	 "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
	 "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
	 "WeakRef", "FinalizationRegistry"].forEach(function (n) { delete g[n]; });
	var F = deny("the Function constructor");
	F.prototype = Function.prototype;
	var protos = [Object.getPrototypeOf(function () {})];
	try { protos.push(Object.getPrototypeOf(function* () {})); } catch (e) {}
	try { protos.push(Object.getPrototypeOf(async function () {})); } catch (e) {}
	protos.forEach(function (p) {
		Object.defineProperty(p, "constructor", { value: F, writable: false, configurable: false });
	});
	Object.defineProperty(g, "Function", { value: F, writable: false, configurable: false });
	Object.defineProperty(g, "eval", { value: deny("eval"), writable: false, configurable: false });
})(globalThis);`

// newVMState creates a runtime, installs the sandbox, runs the bundle's
// top-level code and finds its phase functions. It runs under CallTimeout.
func newVMState(s *Script) (st *vmState, err error) {
	rt := goja.New()
	rt.SetMaxCallStackSize(s.opts.MaxCallStackSize)
	rt.SetParserOptions(parser.WithDisableSourceMaps)
	st = &vmState{s: s, rt: rt, rangeErrorCtor: rt.Get("RangeError")}
	watch := newWatchdog(rt, s.opts.MaxCallMemory)
	st.watch = watch
	st.onDone = func() { rt.Interrupt(errDeadline) }

	// The top level of a script runs like a call: under a deadline (armed
	// below, once the sandbox is installed), with panics of the guarded
	// built-ins turned into errors.
	built := st
	defer func() {
		cause := watch.disarm()
		built.deadline = time.Time{}
		if r := recover(); r != nil {
			st, err = nil, loadFailure(s, r)
		} else if cause != nil && err == nil {
			// Interrupted after the code had finished: the interrupt is
			// pending in the runtime.
			st, err = nil, loadFailure(s, cause)
		}
		if st == nil {
			watch.stop()
		}
	}()
	if _, err := rt.RunString(sandboxJS); err != nil {
		return nil, fmt.Errorf("scripts: installing the sandbox: %w", err)
	}
	st.installGuards()
	if err := st.installConcatGuard(); err != nil {
		return nil, fmt.Errorf("scripts: installing the concatenation guard: %w", err)
	}
	if err := st.installGatehouse(s.configJSON); err != nil {
		return nil, fmt.Errorf("scripts: installing gatehouse: %w", err)
	}
	st.installViews()
	st.deadline = time.Now().Add(s.opts.CallTimeout)
	watch.arm(st.deadline)
	exports, err := st.loadModules()
	if err != nil {
		return nil, loadFailure(s, err)
	}
	main := s.bundle.mods[s.bundle.main]
	eo, ok := exports.(*goja.Object)
	if !ok || absent(exports) {
		return nil, &LoadError{File: main.file, Msg: "module.exports is not an object"}
	}
	for _, k := range eo.Keys() {
		p, err := sdk.ParsePhase(k)
		if err != nil || k != p.String() {
			return nil, &LoadError{File: main.file, Msg: fmt.Sprintf("unknown export %q: a script exports only phase functions (validate, shape, route, respond, observe)", k)}
		}
		fv := eo.Get(k)
		fn, ok := goja.AssertFunction(fv)
		if !ok {
			return nil, &LoadError{File: main.file, Msg: fmt.Sprintf("exports.%s is %s, want a function", k, kind(eo.Get(k)))}
		}
		st.fns[p] = fn
		st.shareArgs[p] = fv.ExportType() == funcType
		st.phases = st.phases.With(p)
	}
	if st.phases.Empty() {
		return nil, &LoadError{File: main.file, Msg: "the script exports no phase function (validate, shape, route, respond, observe)"}
	}
	return st, nil
}

// loadFailure turns an error or panic of the top-level code into a
// LoadError with the script position when there is one.
func loadFailure(s *Script, r any) error {
	var err error
	switch x := r.(type) {
	case *LoadError:
		return x
	case *abortError:
		err = x.err
	case error:
		err = x
	default:
		err = fmt.Errorf("%v", x)
	}
	le := &LoadError{File: s.bundle.mods[s.bundle.main].file, Msg: exceptionMsg(err)}
	var ie *goja.InterruptedError
	var me *memoryError
	switch {
	case errors.As(err, &me):
		le.Msg = "top-level code " + me.Error()
		le.Err = me
	case errors.As(err, &ie) || errors.Is(err, errDeadline):
		le.Msg = fmt.Sprintf("top-level code did not finish within %v (Options.CallTimeout)", s.opts.CallTimeout)
	}
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		le.Msg = fmt.Sprintf("stack overflow: calls nested deeper than %d (Options.MaxCallStackSize)", s.opts.MaxCallStackSize)
	}
	if f, l, c, ok := exceptionPos(err); ok {
		le.File, le.Line, le.Column = f, l, c
	}
	return le
}

// loadModules evaluates every module's wrapper and runs the entry module,
// returning its module.exports. require is resolved against the bundle's
// static require table: nothing outside the bundle can be reached.
func (st *vmState) loadModules() (goja.Value, error) {
	rt := st.rt
	b := st.s.bundle
	wrappers := make(map[string]goja.Callable, len(b.mods))
	for key, m := range b.mods {
		v, err := rt.RunProgram(m.prg)
		if err != nil {
			return nil, err
		}
		fn, ok := goja.AssertFunction(v)
		if !ok {
			return nil, fmt.Errorf("scripts: module %s did not compile to a function", key)
		}
		wrappers[key] = fn
	}
	cache := map[string]*goja.Object{}
	var load func(key string) (goja.Value, error)
	load = func(key string) (goja.Value, error) {
		if m, ok := cache[key]; ok {
			return m.Get("exports"), nil // a cycle sees the exports so far
		}
		m := b.mods[key]
		module := rt.NewObject()
		exports := rt.NewObject()
		_ = module.Set("exports", exports)
		_ = module.Set("id", key)
		cache[key] = module
		req := rt.ToValue(func(c goja.FunctionCall) goja.Value {
			spec := c.Argument(0).String()
			dep, ok := m.requires[spec]
			if !ok {
				panic(rt.NewTypeError("require(%q): not a module of this bundle (only relative files, listed at load)", spec))
			}
			v, err := load(dep)
			if err != nil {
				panic(err)
			}
			return v
		})
		if _, err := wrappers[key](goja.Undefined(), exports, req, module, rt.ToValue(key), rt.ToValue(path.Dir(key))); err != nil {
			return nil, err
		}
		return module.Get("exports"), nil
	}
	return load(b.main)
}
