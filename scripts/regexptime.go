package scripts

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
)

// Every regexp match of a script goes through the guarded
// RegExp.prototype.exec (once exec is replaced, goja's own replace, match,
// split, search, test and matchAll call it once per match), which:
//
//   - refuses an input longer than MaxStringLength;
//   - gives the match min(RegexpMatchTimeout, time left until the call's
//     deadline), on a copy of the pattern's regexp2 program private to
//     the runtime (goja shares one program between all runtimes that run
//     a regexp literal, and regexp2 reads the timeout from the program);
//   - fails the call when the match ran that long: regexp2 gives up at the
//     timeout and goja then reports "no match", which a validate hook that
//     rejects on a match must never see. A match that runs out of the
//     deadline ends the call at the deadline; one that reaches
//     RegexpMatchTimeout first ends it with errRegexpTimeout. Neither can
//     be caught by the script.
//
// Patterns that Go's regexp can run (no lookaround, no backreferences)
// match in linear time and have no timeout of their own; they are timed
// the same way, so a single linear match over a long string that takes
// RegexpMatchTimeout fails the call too.

// errRegexpTimeout is the cause of a call stopped by a regexp match that
// ran for RegexpMatchTimeout.
var errRegexpTimeout = fmt.Errorf("a regular expression match ran for %v (RegexpMatchTimeout)", RegexpMatchTimeout)

// maxRegexpCopies bounds the per-runtime cache of private regexp2 programs;
// beyond it the cache starts again (a script building patterns in a loop).
const maxRegexpCopies = 512

// rxLayout is where goja keeps a RegExp's pattern, found once by name
// (reflect's FieldByName costs a scan per field; a match must not pay it):
// the index of Object.self, the dynamic type of a RegExp's self
// (*regexpObject), and the indexes of the pattern's fields.
type rxLayout struct {
	ok                                                       bool
	self                                                     int
	objType                                                  reflect.Type
	pattern                                                  int
	src, multiline, dotAll, ignoreCase, unicode, re, re2, rx int
}

var (
	rxLayoutMu sync.Mutex
	// rxLayoutDone is set once a RegExp's layout was looked at (found or
	// not): objects that are not RegExps do not count.
	rxLayoutDone atomic.Bool
	rxLay        rxLayout
)

// findRxLayout fills rxLay from the types of a RegExp object impl (the
// dynamic value of its self); rxLay.ok stays false when goja's layout is not
// the expected one.
func findRxLayout(objT reflect.Type, impl reflect.Value) {
	defer func() {
		if recover() != nil {
			rxLay = rxLayout{}
		}
	}()
	l := rxLayout{}
	f, ok := objT.FieldByName("self")
	if !ok || len(f.Index) != 1 {
		return
	}
	l.self = f.Index[0]
	l.objType = impl.Type()
	f, ok = impl.Elem().Type().FieldByName("pattern")
	if !ok || f.Type.Kind() != reflect.Pointer || len(f.Index) != 1 {
		return
	}
	l.pattern = f.Index[0]
	pt := f.Type.Elem()
	for name, dst := range map[string]*int{"src": &l.src, "multiline": &l.multiline, "dotAll": &l.dotAll, "ignoreCase": &l.ignoreCase,
		"unicode": &l.unicode, "regexpWrapper": &l.re, "regexp2Wrapper": &l.re2} {
		pf, ok := pt.FieldByName(name)
		if !ok || len(pf.Index) != 1 {
			return
		}
		*dst = pf.Index[0]
	}
	w := pt.Field(l.re2).Type
	if w.Kind() != reflect.Pointer {
		return
	}
	rf, ok := w.Elem().FieldByName("rx")
	if !ok || rf.Type != reflect.TypeOf((*regexp2.Regexp)(nil)) || len(rf.Index) != 1 {
		return
	}
	l.rx = rf.Index[0]
	l.ok = true
	rxLay = l
}

// learnRxLayout looks at obj's layout if it is a RegExp (goja's
// *regexpObject), once; false when obj is not one.
func learnRxLayout(obj reflect.Value) bool {
	f, ok := obj.Type().FieldByName("self")
	if !ok {
		return false
	}
	self := obj.FieldByIndex(f.Index)
	if self.Kind() != reflect.Interface || self.IsNil() {
		return false
	}
	impl := self.Elem()
	if impl.Kind() != reflect.Pointer || impl.Elem().Kind() != reflect.Struct || impl.Elem().Type().Name() != "regexpObject" {
		return false
	}
	rxLayoutMu.Lock()
	defer rxLayoutMu.Unlock()
	if !rxLayoutDone.Load() {
		findRxLayout(obj.Type(), impl)
		rxLayoutDone.Store(true)
	}
	return true
}

// regexp2Slot returns goja's regexpObject.pattern of a RegExp object, as a
// settable struct value (fields at rxLay's indexes); ok is false when o is
// not a RegExp or goja's layout is not the expected one.
func regexp2Slot(o *goja.Object) (pat reflect.Value, ok bool) {
	obj := reflect.ValueOf(o).Elem()
	if !rxLayoutDone.Load() && !learnRxLayout(obj) {
		return reflect.Value{}, false
	}
	if !rxLay.ok {
		// goja's layout is not the expected one: nothing to arm, goja's
		// own timeout applies (TestRegexpLayoutKnown fails).
		return reflect.Value{}, false
	}
	self := obj.Field(rxLay.self)
	if self.IsNil() {
		return reflect.Value{}, false
	}
	impl := self.Elem()
	if impl.Type() != rxLay.objType {
		return reflect.Value{}, false
	}
	pp := impl.Elem().Field(rxLay.pattern)
	if pp.IsNil() {
		return reflect.Value{}, false
	}
	return pp.Elem(), true
}

// settable returns a settable view of an unexported field.
func settable(f reflect.Value) reflect.Value {
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

// privateRegexp2 returns this runtime's copy of a (possibly shared) regexp2
// program.
func (st *vmState) privateRegexp2(rx *regexp2.Regexp) *regexp2.Regexp {
	if _, own := st.guard.rxOwn[rx]; own {
		return rx
	}
	if cp, ok := st.guard.rxCopies[rx]; ok {
		return cp
	}
	opts := regexp2.RegexOptions(reflect.ValueOf(rx).Elem().FieldByName("options").Int())
	cp, err := regexp2.Compile(rx.String(), opts)
	if err != nil {
		return nil
	}
	st.ownRegexp2(cp)
	st.guard.rxCopies[rx] = cp
	return cp
}

// ownRegexp2 records a regexp2 program as private to this runtime.
func (st *vmState) ownRegexp2(rx *regexp2.Regexp) {
	if st.guard.rxOwn == nil || len(st.guard.rxOwn) >= maxRegexpCopies {
		st.guard.rxCopies = map[*regexp2.Regexp]*regexp2.Regexp{}
		st.guard.rxOwn = map[*regexp2.Regexp]struct{}{}
	}
	st.guard.rxOwn[rx] = struct{}{}
}

// armRegexp gives the next match of rx (a RegExp object) its timeout and
// returns it: min(RegexpMatchTimeout, time left), ending the call when no
// time is left.
func (st *vmState) armRegexp(rx *goja.Object) time.Duration {
	timeout := RegexpMatchTimeout
	if !st.deadline.IsZero() {
		left := time.Until(st.deadline)
		if left <= 0 {
			panic(&abortError{err: errDeadline})
		}
		timeout = min(timeout, left)
	}
	p, ok := regexp2Slot(rx)
	if !ok {
		return timeout
	}
	slot := settable(p.Field(rxLay.re2))
	if slot.IsNil() {
		// goja runs a pattern that Go's regexp accepts on regexp2 only
		// from a non-zero lastIndex (global or sticky), compiling it then
		// with the default timeout: compile it here instead, as goja does.
		if !p.Field(rxLay.re).IsNil() && !((flag(rx, "global") || flag(rx, "sticky")) && prop(rx, "lastIndex").ToInteger() != 0) {
			return timeout
		}
		opts := regexp2.ECMAScript
		for _, f := range [...]struct {
			i int
			o regexp2.RegexOptions
		}{{rxLay.multiline, regexp2.Multiline}, {rxLay.dotAll, regexp2.Singleline}, {rxLay.ignoreCase, regexp2.IgnoreCase}, {rxLay.unicode, regexp2.Unicode}} {
			if p.Field(f.i).Bool() {
				opts |= f.o
			}
		}
		cp, err := regexp2.Compile(p.Field(rxLay.src).String(), opts)
		if err != nil {
			return timeout
		}
		w := reflect.New(slot.Type().Elem())
		settable(w.Elem().Field(rxLay.rx)).Set(reflect.ValueOf(cp))
		slot.Set(w)
		st.ownRegexp2(cp)
	}
	rxf := settable(slot.Elem().Field(rxLay.rx))
	cur, okT := rxf.Interface().(*regexp2.Regexp)
	if !okT || cur == nil {
		return timeout
	}
	own := st.privateRegexp2(cur)
	if own == nil {
		return timeout
	}
	if own != cur {
		rxf.Set(reflect.ValueOf(own))
	}
	own.MatchTimeout = timeout
	return timeout
}

// exec is the guarded RegExp.prototype.exec.
func (st *vmState) exec(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
	return func(c goja.FunctionCall) goja.Value {
		rx, ok := c.This.(*goja.Object)
		if !ok {
			return orig(c) // goja's TypeError
		}
		s := st.checkString(st.str(c.Argument(0).ToString()), "RegExp.prototype.exec")
		return st.timedMatch(rx, func() goja.Value {
			return orig(goja.FunctionCall{This: rx, Arguments: []goja.Value{s}})
		})
	}
}

// timedMatch runs one match of rx armed with its timeout, failing the call
// when the match ran that long.
func (st *vmState) timedMatch(rx *goja.Object, match func() goja.Value) goja.Value {
	timeout := st.armRegexp(rx)
	start := time.Now()
	r := match()
	if time.Since(start) >= timeout {
		st.checkDeadline()
		panic(&abortError{err: errRegexpTimeout})
	}
	return r
}

// guardState is the per-runtime state of the guarded built-ins.
type guardState struct {
	rxCopies map[*regexp2.Regexp]*regexp2.Regexp // shared program -> private copy
	rxOwn    map[*regexp2.Regexp]struct{}        // private copies
	ticks    uint                                // steps of native iterators, for tick
	// Built-ins the guards call, captured before any script runs.
	gopd, propIsEnum, ownKeys goja.Callable
}
