package scripts

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
)

// goja's Interrupt only acts between bytecode instructions: one call into a
// built-in runs to its end however long it takes or however much it
// allocates ('x'.repeat(1e9) takes 6 s and 1 GB; Array.from({length: 1e9})
// never returns). The sandbox therefore replaces or wraps every built-in
// whose work is not bounded by the size of its input, with Go versions that
// check the size bounds of Options (throwing a RangeError the script may
// catch) and the call's deadline (aborting the call; no try/catch sees it).

// RegexpMatchTimeout bounds one match of a regular expression. Each match
// runs with min(RegexpMatchTimeout, time left until the call's deadline)
// on regexp2, goja's backtracking engine (patterns with lookaround or
// backreferences, and global or sticky matching from a non-zero
// lastIndex; the rest run on Go's linear-time regexp and are timed the
// same way). A match that runs that long fails the call, uncatchably: at
// the deadline with context.DeadlineExceeded, else with errRegexpTimeout
// (regexptime.go). regexp2 checks its clock coarsely: a match may
// overrun the timeout by up to about 150 ms.
const RegexpMatchTimeout = 50 * time.Millisecond

func init() {
	// Only goja uses regexp2 in the gateway; its default is "forever".
	regexp2.DefaultMatchTimeout = RegexpMatchTimeout
}

// errDeadline is the cause of a call stopped at its context's deadline.
var errDeadline = fmt.Errorf("script interrupted at its deadline: %w", context.DeadlineExceeded)

// checkDeadline aborts the call when its deadline has passed. Guarded
// built-ins call it in their loops.
func (st *vmState) checkDeadline() {
	if !st.deadline.IsZero() && time.Now().After(st.deadline) {
		panic(&abortError{err: errDeadline})
	}
}

// native returns the Go function behind a built-in function value, so a
// wrapper calls it directly and its panics (exceptions) propagate unchanged.
func (st *vmState) native(v goja.Value) func(goja.FunctionCall) goja.Value {
	o, ok := v.(*goja.Object)
	if !ok {
		panic(fmt.Sprintf("scripts: built-in %v is not a function", v))
	}
	if f, ok := o.Export().(func(goja.FunctionCall) goja.Value); ok {
		return f
	}
	call, ok := goja.AssertFunction(o)
	if !ok {
		panic(fmt.Sprintf("scripts: built-in %v is not callable", v))
	}
	return func(c goja.FunctionCall) goja.Value {
		return st.callOrThrow(call, c.This, c.Arguments...)
	}
}

// callOrThrow calls a function from a native one, rethrowing its exception.
func (st *vmState) callOrThrow(fn goja.Callable, this goja.Value, args ...goja.Value) goja.Value {
	v, err := fn(this, args...)
	if err != nil {
		panic(err)
	}
	return v
}

// define replaces a built-in method, keeping the built-in's attributes
// (writable, configurable, not enumerable).
func (st *vmState) define(o *goja.Object, name string, f func(goja.FunctionCall) goja.Value) {
	fn := st.rt.ToValue(f).(*goja.Object)
	_ = fn.DefineDataProperty("name", st.rt.ToValue(name), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	if err := o.DefineDataProperty(name, fn, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		panic(err)
	}
}

func (st *vmState) defineSym(o *goja.Object, sym *goja.Symbol, f func(goja.FunctionCall) goja.Value) {
	if err := o.DefineDataPropertySymbol(sym, st.rt.ToValue(f), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		panic(err)
	}
}

// checkLength returns the length of an array-like, throwing a RangeError
// beyond MaxArrayLength.
func (st *vmState) checkLength(o *goja.Object, what string) int64 {
	if o.ClassName() != "Array" {
		st.dataLength(o, what)
	}
	l := o.Get("length")
	if l == nil {
		return 0
	}
	n := l.ToInteger()
	if n < 0 {
		return 0
	}
	if max := int64(st.s.opts.MaxArrayLength); n > max {
		panic(st.rangeError("%s: length %d exceeds the array limit (MaxArrayLength = %d)", what, n, max))
	}
	return n
}

// dataLength refuses an array-like whose length is an accessor or an
// object (anywhere on its prototype chain): the guards read the length,
// then the built-in reads it again, and a getter or valueOf could answer 1
// the first time and 1e9 the second. A data property holding a primitive
// reads the same both times, as no script code runs in between. A Proxy
// (whose get trap could do the same) is refused as an array-like, and so
// is an object that inherits from one.
func (st *vmState) dataLength(o *goja.Object, what string) {
	key := st.rt.ToValue("length")
	for p, depth := o, 0; p != nil && depth < 1024; p, depth = p.Prototype(), depth+1 {
		if p.ExportType() == proxyType {
			panic(st.rt.NewTypeError("%s: a Proxy is not supported as an array-like in gatehouse scripts", what))
		}
		d := st.callOrThrow(st.guard.gopd, goja.Undefined(), p, key)
		if absent(d) {
			continue
		}
		do := d.ToObject(st.rt)
		if _, isData := do.Get("value").(*goja.Object); isData || do.Get("get") != nil || do.Get("set") != nil {
			panic(st.rt.NewTypeError("%s: an array-like whose length is an accessor or an object is not supported in gatehouse scripts", what))
		}
		return
	}
}

// thisString returns the receiver of a String.prototype method, throwing a
// RangeError beyond MaxStringLength.
func (st *vmState) thisString(c goja.FunctionCall, what string) goja.String {
	if absent(c.This) {
		panic(st.rt.NewTypeError("String.prototype.%s called on null or undefined", what))
	}
	// A string receiver is its own ToString: taking it as it is saves
	// boxing it again, and the name is joined only for the error.
	s, ok := c.This.(goja.String)
	if !ok {
		s = st.str(c.This.ToString())
	}
	if s.Length() > st.s.opts.MaxStringLength {
		st.checkString(s, "String.prototype."+what)
	}
	return s
}

func (st *vmState) checkString(v goja.Value, what string) goja.String {
	s := st.str(v)
	if s.Length() > st.s.opts.MaxStringLength {
		panic(st.rangeError("%s: string of length %d exceeds the string limit (MaxStringLength = %d)", what, s.Length(), st.s.opts.MaxStringLength))
	}
	return s
}

// checkResult throws a RangeError when a result would exceed the string limit.
func (st *vmState) checkResult(n int64, what string) {
	if n > int64(st.s.opts.MaxStringLength) {
		panic(st.rangeError("%s: result of length %d would exceed the string limit (MaxStringLength = %d)", what, n, st.s.opts.MaxStringLength))
	}
}

func (st *vmState) proto(ctor string) *goja.Object {
	return st.rt.Get(ctor).ToObject(st.rt).Get("prototype").ToObject(st.rt)
}

// functionNames lists the own function-valued string properties of o.
func functionNames(o *goja.Object) []string {
	var out []string
	for _, k := range o.GetOwnPropertyNames() {
		if k == "constructor" {
			continue
		}
		if _, ok := goja.AssertFunction(o.Get(k)); ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// installGuards replaces the unbounded built-ins of this runtime.
var proxyType = reflect.TypeOf(goja.Proxy{})

func (st *vmState) installGuards() {
	rt := st.rt
	obj := rt.Get("Object").ToObject(rt)
	st.guard.gopd, _ = goja.AssertFunction(obj.Get("getOwnPropertyDescriptor"))
	st.guard.propIsEnum, _ = goja.AssertFunction(obj.Get("prototype").ToObject(rt).Get("propertyIsEnumerable"))
	st.guard.ownKeys, _ = goja.AssertFunction(rt.Get("Reflect").ToObject(rt).Get("ownKeys"))
	st.guardArrays()
	st.guardStrings()
	st.guardRegExps()
	st.guardFunctions()
	st.guardJSON()
	st.guardWork()
	st.installSpreadGuard()
}

func (st *vmState) guardArrays() {
	rt := st.rt
	ap := st.proto("Array")
	special := map[string]func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value{
		"join": func(func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(c goja.FunctionCall) goja.Value { return st.join(c, false) }
		},
		"toLocaleString": func(func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(c goja.FunctionCall) goja.Value { return st.join(c, true) }
		},
		"sort": func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(c goja.FunctionCall) goja.Value {
				o := c.This.ToObject(rt)
				n := st.checkLength(o, "Array.prototype.sort")
				if goja.IsUndefined(c.Argument(0)) {
					st.sortDefault(o, n)
					return o
				}
				return orig(c)
			}
		},
		"toSorted": func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(c goja.FunctionCall) goja.Value {
				o := c.This.ToObject(rt)
				n := st.checkLength(o, "Array.prototype.toSorted")
				if goja.IsUndefined(c.Argument(0)) {
					vals := make([]any, n)
					for i := int64(0); i < n; i++ {
						vals[i] = o.Get(strconv.FormatInt(i, 10))
					}
					a := rt.NewArray(vals...)
					st.sortDefault(a, n)
					return a
				}
				return orig(c)
			}
		},
		"flatMap": func(func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return st.flatMap
		},
	}
	for _, name := range functionNames(ap) {
		orig := st.native(ap.Get(name))
		if mk, ok := special[name]; ok {
			st.define(ap, name, mk(orig))
			continue
		}
		what := "Array.prototype." + name
		st.define(ap, name, func(c goja.FunctionCall) goja.Value {
			if o, ok := c.This.(*goja.Object); ok {
				st.checkLength(o, what)
			} else if !absent(c.This) {
				st.checkLength(c.This.ToObject(rt), what)
			}
			return orig(c)
		})
	}
	// Spread, for-of, destructuring, Array.from, new Set(array) ... all
	// iterate through Array.prototype[Symbol.iterator], which is
	// Array.prototype.values: the guarded one.
	if err := ap.DefineDataPropertySymbol(goja.SymIterator, ap.Get("values"), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		panic(err)
	}

	arr := rt.Get("Array").ToObject(rt)
	from := st.native(arr.Get("from"))
	st.define(arr, "from", func(c goja.FunctionCall) goja.Value {
		o, ok := c.Argument(0).(*goja.Object)
		if !ok {
			return from(c) // a string steps through the guarded string iterator
		}
		// Symbol.iterator and the length are read once, here: a getter
		// that answers differently the second time must not reach the
		// array-like path with an unchecked length.
		args := append([]goja.Value(nil), c.Arguments...)
		if it := o.GetSymbol(goja.SymIterator); !absent(it) {
			fn, ok := goja.AssertFunction(it)
			if !ok {
				panic(rt.NewTypeError("Array.from: Symbol.iterator is not a function"))
			}
			iter := st.callOrThrow(fn, o)
			holder := rt.NewObject()
			_ = holder.SetSymbol(goja.SymIterator, func(goja.FunctionCall) goja.Value { return iter })
			args[0] = holder
		} else {
			n := st.checkLength(o, "Array.from")
			vals := make([]any, n)
			for i := int64(0); i < n; i++ {
				if i&255 == 255 {
					st.checkDeadline()
				}
				v := o.Get(strconv.FormatInt(i, 10))
				if v == nil {
					v = goja.Undefined()
				}
				vals[i] = v
			}
			args[0] = rt.NewArray(vals...)
		}
		return from(goja.FunctionCall{This: c.This, Arguments: args})
	})
}

// flatMap is Array.prototype.flatMap with a bounded result. The callbacks'
// arrays are counted as they come and copied at the end, so an oversized
// result fails before anything is copied.
func (st *vmState) flatMap(c goja.FunctionCall) goja.Value {
	rt := st.rt
	o := c.This.ToObject(rt)
	n := st.checkLength(o, "Array.prototype.flatMap")
	fn, ok := goja.AssertFunction(c.Argument(0))
	if !ok {
		panic(rt.NewTypeError("Array.prototype.flatMap: callback is not a function"))
	}
	max := int64(st.s.opts.MaxArrayLength)
	type part struct {
		arr *goja.Object // an array to flatten, or
		v   goja.Value   // a single value
		n   int64
	}
	var parts []part
	total := int64(0)
	for i := int64(0); i < n; i++ {
		e := o.Get(strconv.FormatInt(i, 10))
		if e == nil {
			continue // a hole
		}
		r := st.callOrThrow(fn, c.Argument(1), e, rt.ToValue(i), o)
		p := part{v: r, n: 1}
		if ro, ok := r.(*goja.Object); ok && ro.ClassName() == "Array" {
			p = part{arr: ro, n: st.checkLength(ro, "Array.prototype.flatMap")}
		}
		if total += p.n; total > max {
			panic(st.rangeError("Array.prototype.flatMap: result exceeds the array limit (MaxArrayLength = %d)", max))
		}
		parts = append(parts, p)
	}
	out := make([]any, 0, total)
	for _, p := range parts {
		if p.arr == nil {
			out = append(out, p.v)
			continue
		}
		for j := int64(0); j < p.n; j++ {
			if j&1023 == 1023 {
				st.checkDeadline()
			}
			if v := p.arr.Get(strconv.FormatInt(j, 10)); v != nil {
				out = append(out, v)
			}
		}
	}
	return rt.NewArray(out...)
}

// join is Array.prototype.join (and toLocaleString) with a bounded result,
// a nesting bound and cycle detection (a cyclic element joins as "").
func (st *vmState) join(c goja.FunctionCall, locale bool) goja.Value {
	rt := st.rt
	o := c.This.ToObject(rt)
	n := st.checkLength(o, "Array.prototype.join")
	for _, p := range st.joining {
		if p == o {
			return rt.ToValue("")
		}
	}
	if len(st.joining) >= st.s.opts.MaxCallStackSize {
		panic(st.rangeError("Array.prototype.join: nesting deeper than %d (MaxCallStackSize)", st.s.opts.MaxCallStackSize))
	}
	st.joining = append(st.joining, o)
	defer func() { st.joining = st.joining[:len(st.joining)-1] }()

	sep := st.str(rt.ToValue(","))
	if s := c.Argument(0); !locale && !goja.IsUndefined(s) {
		sep = st.checkString(s, "Array.prototype.join")
	}
	var sb goja.StringBuilder
	total := int64(0)
	limit := int64(st.s.opts.MaxStringLength)
	for i := int64(0); i < n; i++ {
		if i&1023 == 1023 {
			st.checkDeadline()
		}
		if i > 0 {
			total += int64(sep.Length())
			if total > limit {
				st.checkResult(total, "Array.prototype.join")
			}
			sb.WriteString(sep)
		}
		e := o.Get(strconv.FormatInt(i, 10))
		if absent(e) {
			continue
		}
		var s goja.String
		if locale {
			if eo, ok := e.(*goja.Object); ok {
				if f, ok := goja.AssertFunction(eo.Get("toLocaleString")); ok {
					e = st.callOrThrow(f, eo)
				}
			}
		}
		s = st.str(e.ToString())
		total += int64(s.Length())
		st.checkResult(total, "Array.prototype.join")
		sb.WriteString(s)
	}
	return sb.String()
}

// str converts a value to a string value (ToString of ECMA-262: goja's
// Value.ToString only turns objects into primitives).
func (st *vmState) str(v goja.Value) goja.String {
	switch x := v.(type) {
	case goja.String:
		return x
	case *goja.Object:
		if p, ok := x.ToString().(goja.String); ok {
			return p
		}
		return st.rt.ToValue(x.String()).(goja.String)
	case nil:
		return st.rt.ToValue("undefined").(goja.String)
	}
	return st.rt.ToValue(v.String()).(goja.String)
}

// sortDefault sorts an array-like by the string form of its elements (the
// default comparator), stably, undefined last and holes removed, checking the
// deadline as it goes: goja's sorts 10^7 elements in 9 s without a break.
func (st *vmState) sortDefault(o *goja.Object, n int64) {
	type item struct {
		v goja.Value
		s goja.String
	}
	items := make([]item, 0, n)
	undef := 0
	for i := int64(0); i < n; i++ {
		if i&1023 == 1023 {
			st.checkDeadline()
		}
		v := o.Get(strconv.FormatInt(i, 10))
		switch {
		case v == nil:
		case goja.IsUndefined(v):
			undef++
		default:
			items = append(items, item{v: v, s: st.str(v.ToString())})
		}
	}
	steps := 0
	sort.SliceStable(items, func(i, j int) bool {
		if steps++; steps&1023 == 0 {
			st.checkDeadline()
		}
		return items[i].s.CompareTo(items[j].s) < 0
	})
	k := int64(0)
	for _, it := range items {
		_ = o.Set(strconv.FormatInt(k, 10), it.v)
		k++
	}
	for ; undef > 0; undef-- {
		_ = o.Set(strconv.FormatInt(k, 10), goja.Undefined())
		k++
	}
	for ; k < n; k++ {
		_ = o.Delete(strconv.FormatInt(k, 10))
	}
}

func (st *vmState) guardStrings() {
	rt := st.rt
	sp := st.proto("String")
	special := map[string]func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value{
		"repeat": func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(c goja.FunctionCall) goja.Value {
				s := st.thisString(c, "repeat")
				if n := c.Argument(0).ToFloat(); n > 0 && s.Length() > 0 {
					st.checkResult(int64(min(n, 1<<53)*float64(s.Length())), "String.prototype.repeat")
				}
				return orig(c)
			}
		},
		"padStart": st.padGuard("padStart"),
		"padEnd":   st.padGuard("padEnd"),
		"concat": func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(c goja.FunctionCall) goja.Value {
				total := int64(st.thisString(c, "concat").Length())
				for _, a := range c.Arguments {
					total += int64(st.str(a.ToString()).Length())
					st.checkResult(total, "String.prototype.concat")
				}
				return orig(c)
			}
		},
		"replace":    st.replaceGuard("replace", false),
		"replaceAll": st.replaceGuard("replaceAll", true),
		"split": func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(c goja.FunctionCall) goja.Value {
				s := st.thisString(c, "split")
				sep := c.Argument(0)
				if o, ok := sep.(*goja.Object); ok && !absent(o.GetSymbol(goja.SymSplit)) {
					return orig(c) // RegExp.prototype[Symbol.split] checks
				}
				if absent(sep) {
					return orig(c)
				}
				count := int64(s.Length())
				if sepS := st.str(sep.ToString()); sepS.Length() > 0 {
					count = int64(strings.Count(s.String(), sepS.String())) + 1
				}
				st.checkSplit(count, c.Argument(1))
				return orig(c)
			}
		},
	}
	for _, name := range functionNames(sp) {
		if name == "toString" || name == "valueOf" {
			// They return the primitive of a String object and nothing
			// else; ToString of such an object calls them, so a length
			// check here would recurse in Go until the stack overflows.
			continue
		}
		orig := st.native(sp.Get(name))
		if mk, ok := special[name]; ok {
			st.define(sp, name, mk(orig))
			continue
		}
		what := name
		st.define(sp, name, func(c goja.FunctionCall) goja.Value {
			st.thisString(c, what)
			r := orig(c)
			// toUpperCase and the like grow a string up to 3 times.
			if rs, ok := r.(goja.String); ok && rs.Length() > st.s.opts.MaxStringLength {
				st.checkResult(int64(rs.Length()), "String.prototype."+what)
			}
			return r
		})
	}
	iter := st.native(sp.GetSymbol(goja.SymIterator))
	st.defineSym(sp, goja.SymIterator, func(c goja.FunctionCall) goja.Value {
		s := st.thisString(c, "[Symbol.iterator]")
		if max := st.s.opts.MaxArrayLength; s.Length() > max {
			panic(st.rangeError("String iterator: string of length %d exceeds the array limit (MaxArrayLength = %d)", s.Length(), max))
		}
		return iter(c)
	})

	str := rt.Get("String").ToObject(rt)
	st.define(str, "raw", st.stringRaw)
}

// checkSplit throws when a split would produce more elements than allowed.
func (st *vmState) checkSplit(count int64, limit goja.Value) {
	if !goja.IsUndefined(limit) {
		if l := int64(uint32(limit.ToInteger())); l < count {
			count = l
		}
	}
	if max := int64(st.s.opts.MaxArrayLength); count > max {
		panic(st.rangeError("String.prototype.split: %d parts exceed the array limit (MaxArrayLength = %d)", count, max))
	}
}

func (st *vmState) padGuard(name string) func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
	return func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
		return func(c goja.FunctionCall) goja.Value {
			s := st.thisString(c, name)
			if n := c.Argument(0).ToFloat(); n > float64(s.Length()) {
				st.checkResult(int64(min(n, 1<<53)), "String.prototype."+name)
			}
			return orig(c)
		}
	}
}

// replaceBound is an upper bound of the length of s with count matches
// replaced by the template repl: literal text counts once per match, $& and
// $n insert (part of) a match, at most len(s) over all matches together, and
// $` and $' insert up to len(s) per match.
func replaceBound(s, repl goja.String, count int64) int64 {
	r := repl.String()
	var lit, perMatch, matched int64
	for i := 0; i < len(r); i++ {
		if r[i] != '$' || i+1 == len(r) {
			lit++
			continue
		}
		switch c := r[i+1]; {
		case c == '$':
			lit++
			i++
		case c == '&' || c >= '0' && c <= '9' || c == '<':
			matched++
			i++
		case c == '`' || c == '\'':
			perMatch++
			i++
		default:
			lit++
		}
	}
	n := int64(s.Length())
	return n + count*lit + matched*n + count*perMatch*n
}

// boundedReplacer wraps a replace callback so that the result stays within
// the string limit: the unmatched text is at most len(s), the rest is what
// the callbacks return. Without it a callback returning a 1 MB string for
// each of a million matches fills a builder with a terabyte.
func (st *vmState) boundedReplacer(fn goja.Callable, s goja.String, what string) goja.Value {
	total := int64(s.Length())
	return st.rt.ToValue(func(c goja.FunctionCall) goja.Value {
		r := st.str(st.callOrThrow(fn, c.This, c.Arguments...).ToString())
		total += int64(r.Length())
		st.checkResult(total, what)
		return r
	})
}

func (st *vmState) replaceGuard(name string, all bool) func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
	what := "String.prototype." + name
	return func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
		return func(c goja.FunctionCall) goja.Value {
			s := st.thisString(c, name)
			pat, repl := c.Argument(0), c.Argument(1)
			if o, ok := pat.(*goja.Object); ok && !absent(o.GetSymbol(goja.SymReplace)) {
				return orig(c) // RegExp.prototype[Symbol.replace] checks
			}
			p := st.str(pat.ToString())
			fn, functional := goja.AssertFunction(repl)
			long := s.Length() > fastPathLength && len(s.String()) == s.Length() && len(p.String()) == p.Length()
			if functional {
				if long {
					return st.stringReplace(s, p, repl, all, what)
				}
				return orig(goja.FunctionCall{This: c.This, Arguments: []goja.Value{pat, st.boundedReplacer(fn, s, what)}})
			}
			r := st.checkString(repl, what)
			count := int64(1)
			if all {
				if p.Length() == 0 {
					count = int64(s.Length()) + 1
				} else {
					count = int64(strings.Count(s.String(), p.String()))
				}
			}
			st.checkResult(replaceBound(s, r, count), what)
			if long {
				return st.stringReplace(s, p, r, all, what)
			}
			return orig(c)
		}
	}
}

// stringRaw is String.raw with a bounded result.
func (st *vmState) stringRaw(c goja.FunctionCall) goja.Value {
	rt := st.rt
	cooked := c.Argument(0).ToObject(rt)
	raw := prop(cooked, "raw").ToObject(rt)
	n := st.checkLength(raw, "String.raw")
	var sb goja.StringBuilder
	total := int64(0)
	for i := int64(0); i < n; i++ {
		seg := st.str(raw.Get(strconv.FormatInt(i, 10)).ToString())
		total += int64(seg.Length())
		st.checkResult(total, "String.raw")
		sb.WriteString(seg)
		if i+1 < n && int(i+1) < len(c.Arguments) {
			sub := st.str(c.Arguments[i+1].ToString())
			total += int64(sub.Length())
			st.checkResult(total, "String.raw")
			sb.WriteString(sub)
		}
	}
	return sb.String()
}

func (st *vmState) guardRegExps() {
	rt := st.rt
	rp := st.proto("RegExp")
	// exec is replaced (regexptime.go): goja's replace, match, split,
	// search, test and the matchAll iterator then call it once per match
	// instead of running all matches in one Go loop.
	st.define(rp, "exec", st.exec(st.native(rp.Get("exec"))))
	st.builtinExecObj = rp.Get("exec")
	st.builtinExec = st.native(st.builtinExecObj)
	test := st.native(rp.Get("test"))
	st.define(rp, "test", func(c goja.FunctionCall) goja.Value {
		// goja's test matches without exec: armed and timed here.
		s := st.checkString(st.str(c.Argument(0).ToString()), "RegExp.prototype.test")
		rx, ok := c.This.(*goja.Object)
		if !ok {
			return test(c)
		}
		return st.timedMatch(rx, func() goja.Value {
			return test(goja.FunctionCall{This: rx, Arguments: []goja.Value{s}})
		})
	})
	for _, sym := range []*goja.Symbol{goja.SymMatchAll, goja.SymSearch} {
		orig := st.native(rp.GetSymbol(sym))
		what := "RegExp.prototype[" + sym.String() + "]"
		st.defineSym(rp, sym, func(c goja.FunctionCall) goja.Value {
			st.checkString(c.Argument(0), what)
			return orig(c)
		})
	}
	match := st.native(rp.GetSymbol(goja.SymMatch))
	st.defineSym(rp, goja.SymMatch, func(c goja.FunctionCall) goja.Value {
		s := st.checkString(c.Argument(0), "RegExp.prototype[Symbol.match]")
		if this, ok := c.This.(*goja.Object); ok && s.Length() > fastPathLength && flag(this, "global") {
			return st.regexpMatchAll(this, s)
		}
		return match(c)
	})
	st.defineSym(rp, goja.SymSplit, func(c goja.FunctionCall) goja.Value {
		s := st.checkString(c.Argument(0), "RegExp.prototype[Symbol.split]")
		this, ok := c.This.(*goja.Object)
		if !ok {
			panic(rt.NewTypeError("RegExp.prototype[Symbol.split] called on %s", kind(c.This)))
		}
		return st.regexpSplit(this, s, c.Argument(1))
	})
	replace := st.native(rp.GetSymbol(goja.SymReplace))
	st.defineSym(rp, goja.SymReplace, func(c goja.FunctionCall) goja.Value {
		const what = "RegExp.prototype[Symbol.replace]"
		s := st.checkString(c.Argument(0), what)
		repl := c.Argument(1)
		this := c.This.ToObject(rt)
		global := flag(this, "global")
		if fn, ok := goja.AssertFunction(repl); ok {
			if global && s.Length() > fastPathLength {
				return st.regexpReplace(this, s, repl, what)
			}
			return replace(goja.FunctionCall{This: c.This, Arguments: []goja.Value{s, st.boundedReplacer(fn, s, what)}})
		}
		r := st.checkString(repl, what)
		if !global {
			st.checkResult(replaceBound(s, r, 1), what)
			return replace(c)
		}
		st.checkResult(replaceBound(s, r, 0), what)
		if s.Length() > fastPathLength || replaceBound(s, r, int64(s.Length())+1) > int64(st.s.opts.MaxStringLength) {
			return st.regexpReplace(this, s, r, what)
		}
		return replace(c)
	})
}

func (st *vmState) guardFunctions() {
	rt := st.rt
	fp := st.proto("Function")
	apply := st.native(fp.Get("apply"))
	st.define(fp, "apply", func(c goja.FunctionCall) goja.Value {
		if o, ok := c.Argument(1).(*goja.Object); ok {
			st.checkLength(o, "Function.prototype.apply")
		}
		return apply(c)
	})
	refl := rt.Get("Reflect").ToObject(rt)
	for _, m := range []struct {
		name string
		arg  int
	}{{"apply", 2}, {"construct", 1}} {
		orig := st.native(refl.Get(m.name))
		what, arg := "Reflect."+m.name, m.arg
		st.define(refl, m.name, func(c goja.FunctionCall) goja.Value {
			if o, ok := c.Argument(arg).(*goja.Object); ok {
				st.checkLength(o, what)
			}
			return orig(c)
		})
	}
}

func (st *vmState) guardJSON() {
	rt := st.rt
	j := rt.Get("JSON").ToObject(rt)
	parse := st.native(j.Get("parse"))
	st.define(j, "parse", func(c goja.FunctionCall) goja.Value {
		s := st.checkString(st.str(c.Argument(0).ToString()), "JSON.parse")
		if d := jsonDepth(s.String()); d > st.s.opts.MaxCallStackSize {
			panic(st.syntaxError("JSON.parse: nesting deeper than %d (MaxCallStackSize)", st.s.opts.MaxCallStackSize))
		}
		args := append([]goja.Value{s}, c.Arguments[min(1, len(c.Arguments)):]...)
		return parse(goja.FunctionCall{This: c.This, Arguments: args})
	})
	st.define(j, "stringify", func(c goja.FunctionCall) goja.Value {
		return st.stringify(c.Argument(0), c.Argument(1), c.Argument(2), st.s.opts.MaxStringLength)
	})
}

func (st *vmState) syntaxError(format string, args ...any) *goja.Object {
	o, err := st.rt.New(st.rt.Get("SyntaxError"), st.rt.ToValue(fmt.Sprintf(format, args...)))
	if err != nil {
		panic(err)
	}
	return o
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
