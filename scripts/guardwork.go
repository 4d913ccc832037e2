package scripts

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
	"golang.org/x/text/unicode/norm"
)

// Bounds on work, not only on size: within the size limits one call can
// still do MaxArrayLength × MaxStringLength steps (new Set of 2^18
// references to one 1 MB string hashes 256 GB) or turn a 1 MB string into
// a million properties. The guards here keep such calls inside the
// deadline: native iterators check it every few steps, the searches and
// Object.* copies run here and check it as they go, and a string receiver
// of Object.* counts as an array of its length.

// tick checks the deadline every 8 steps of a native loop.
func (st *vmState) tick() {
	if st.guard.ticks++; st.guard.ticks&7 == 0 {
		st.checkDeadline()
	}
}

// guardWork installs the guards of this file.
func (st *vmState) guardWork() {
	rt := st.rt
	// The native iterators: every built-in that takes an iterable (new
	// Set/Map/WeakMap, Array.from, Object.fromEntries, Promise.all, spread,
	// destructuring) steps through their next, which now checks the
	// deadline. An array iterator reads the length at each step, so an
	// element getter that sets length = 1e9 would otherwise run 1e9 steps.
	for _, src := range []string{"[].values()", "new Set().values()", "new Map().entries()", `""[Symbol.iterator]()`} {
		it, err := rt.RunString("Object.getPrototypeOf(" + src + ")")
		if err != nil {
			panic(err)
		}
		proto := it.ToObject(rt)
		next := st.native(proto.Get("next"))
		st.define(proto, "next", func(c goja.FunctionCall) goja.Value {
			st.tick()
			return next(c)
		})
	}

	ap := st.proto("Array")
	st.define(ap, "includes", st.search("includes"))
	st.define(ap, "indexOf", st.search("indexOf"))
	st.define(ap, "lastIndexOf", st.search("lastIndexOf"))
	st.define(ap, "concat", st.concat)
	st.define(ap, "flat", st.flat)

	obj := rt.Get("Object").ToObject(rt)
	for _, name := range []string{"keys", "getOwnPropertyNames", "getOwnPropertyDescriptors", "defineProperties", "create", "freeze", "seal"} {
		orig := st.native(obj.Get(name))
		what := "Object." + name
		st.define(obj, name, func(c goja.FunctionCall) goja.Value {
			for _, a := range c.Arguments {
				st.checkKeys(a, what)
			}
			return orig(c)
		})
	}
	keys := st.native(obj.Get("keys"))
	st.define(obj, "values", func(c goja.FunctionCall) goja.Value { return st.objectValues(keys, c, false) })
	st.define(obj, "entries", func(c goja.FunctionCall) goja.Value { return st.objectValues(keys, c, true) })
	assign := st.native(obj.Get("assign"))
	st.define(obj, "assign", func(c goja.FunctionCall) goja.Value {
		if len(c.Arguments) == 0 {
			return assign(c)
		}
		target := assign(goja.FunctionCall{This: c.This, Arguments: c.Arguments[:1]})
		for _, src := range c.Arguments[1:] {
			st.checkDeadline()
			st.checkKeys(src, "Object.assign")
			if o, ok := src.(*goja.Object); ok && o.ClassName() != "String" {
				st.assignChunked(target.(*goja.Object), o)
				continue
			}
			target = assign(goja.FunctionCall{This: c.This, Arguments: []goja.Value{target, src}})
		}
		return target
	})
	refl := rt.Get("Reflect").ToObject(rt)
	ownKeys := st.native(refl.Get("ownKeys"))
	st.define(refl, "ownKeys", func(c goja.FunctionCall) goja.Value {
		st.checkKeys(c.Argument(0), "Reflect.ownKeys")
		return ownKeys(c)
	})

	// The generic String.prototype wrapper checks the receiver only; these
	// grow it: normalize up to 18 times (NFKD of U+FDFA), the URI encoders
	// 9 times.
	sp := st.proto("String")
	st.define(sp, "normalize", st.normalize)
	g := rt.GlobalObject()
	for _, name := range []string{"encodeURIComponent", "encodeURI", "escape"} {
		orig := st.native(g.Get(name))
		name := name
		st.define(g, name, func(c goja.FunctionCall) goja.Value {
			s := st.checkString(st.str(c.Argument(0).ToString()), name)
			st.checkResult(encodedLength(s, name), name)
			return orig(goja.FunctionCall{This: c.This, Arguments: []goja.Value{s}})
		})
	}
}

// checkKeys refuses a string (or String object) argument longer than the
// array limit: Object.keys and friends give it one property per character.
func (st *vmState) checkKeys(v goja.Value, what string) {
	var n int
	switch x := v.(type) {
	case goja.String:
		n = x.Length()
	case *goja.Object:
		if x.ClassName() != "String" {
			return
		}
		n = st.str(x).Length()
	default:
		return
	}
	if max := st.s.opts.MaxArrayLength; n > max {
		panic(st.rangeError("%s: a string of length %d has more properties than the array limit (MaxArrayLength = %d)", what, n, max))
	}
}

// entryWeight is what an entry of Object.entries counts for against
// MaxArrayLength.
const entryWeight = 4

// objectValues is Object.values / Object.entries, reading the keys with
// Object.keys and the values one at a time, checking the deadline.
func (st *vmState) objectValues(keys func(goja.FunctionCall) goja.Value, c goja.FunctionCall, entries bool) goja.Value {
	rt := st.rt
	what := "Object.values"
	if entries {
		what = "Object.entries"
	}
	st.checkKeys(c.Argument(0), what)
	ks := keys(goja.FunctionCall{Arguments: []goja.Value{c.Argument(0)}}).ToObject(rt)
	o := c.Argument(0).ToObject(rt)
	n := st.checkLength(ks, what)
	if max := int64(st.s.opts.MaxArrayLength) / entryWeight; entries && n > max {
		// Each entry is an array of its own, about entryWeight elements'
		// worth of memory: at the array limit, one call would allocate
		// some 180 MB.
		panic(st.rangeError("%s: %d entries, each an array, exceed the limit (MaxArrayLength / %d = %d)", what, n, entryWeight, max))
	}
	out := make([]any, 0, n)
	for i := int64(0); i < n; i++ {
		st.tick()
		k := ks.Get(strconv.FormatInt(i, 10)).String()
		// A getter may have removed a later key: Object.values skips it.
		if !st.hasOwnEnumerable(o, k) {
			continue
		}
		v := o.Get(k)
		if v == nil {
			v = goja.Undefined()
		}
		if entries {
			out = append(out, rt.NewArray(k, v))
		} else {
			out = append(out, v)
		}
	}
	return rt.NewArray(out...)
}

func (st *vmState) hasOwnEnumerable(o *goja.Object, k string) bool {
	return st.callOrThrow(st.guard.propIsEnum, o, st.rt.ToValue(k)).ToBoolean()
}

// assignChunked copies the own enumerable properties of src to target
// (Object.assign for one source), checking the deadline as it goes.
func (st *vmState) assignChunked(target, src *goja.Object) {
	rt := st.rt
	ks := st.callOrThrow(st.guard.ownKeys, goja.Undefined(), src).ToObject(rt)
	n := prop(ks, "length").ToInteger() // a real array, as long as src has keys
	for i := int64(0); i < n; i++ {
		st.tick()
		k := ks.Get(strconv.FormatInt(i, 10))
		if !st.callOrThrow(st.guard.propIsEnum, src, k).ToBoolean() {
			continue
		}
		if sym, ok := k.(*goja.Symbol); ok {
			if err := target.SetSymbol(sym, src.GetSymbol(sym)); err != nil {
				panic(err)
			}
			continue
		}
		v := src.Get(k.String())
		if v == nil {
			v = goja.Undefined()
		}
		if err := target.Set(k.String(), v); err != nil {
			panic(err)
		}
	}
}

// search is Array.prototype.includes, indexOf and lastIndexOf, checking
// the deadline as they compare: 2^18 comparisons of two 1 MB strings that
// differ in their last character take 8 s.
func (st *vmState) search(name string) func(goja.FunctionCall) goja.Value {
	what := "Array.prototype." + name
	return func(c goja.FunctionCall) goja.Value {
		rt := st.rt
		if absent(c.This) {
			panic(rt.NewTypeError("%s called on null or undefined", what))
		}
		o := c.This.ToObject(rt)
		n := st.checkLength(o, what)
		x := c.Argument(0)
		notFound := rt.ToValue(-1)
		if name == "includes" {
			notFound = rt.ToValue(false)
		}
		if n == 0 {
			return notFound
		}
		var from float64
		if name == "lastIndexOf" {
			from = float64(n - 1)
			if len(c.Arguments) > 1 {
				from = toIntegerOrInfinity(c.Arguments[1])
			}
		} else {
			from = toIntegerOrInfinity(c.Argument(1))
		}
		match := func(k int64) bool {
			st.tick()
			e := o.Get(strconv.FormatInt(k, 10))
			if name == "includes" {
				if e == nil {
					e = goja.Undefined()
				}
				return e.SameAs(x) || goja.IsNumber(e) && goja.IsNumber(x) && e.ToFloat() == 0 && x.ToFloat() == 0
			}
			return e != nil && e.StrictEquals(x)
		}
		if name == "lastIndexOf" {
			var k int64
			switch {
			case math.IsInf(from, -1):
				return notFound
			case from >= 0:
				k = int64(math.Min(from, float64(n-1)))
			default:
				k = n + int64(from)
			}
			for ; k >= 0; k-- {
				if match(k) {
					return rt.ToValue(k)
				}
			}
			return notFound
		}
		if from >= float64(n) {
			return notFound
		}
		k := int64(0)
		if from >= 0 {
			k = int64(from)
		} else if !math.IsInf(from, -1) {
			k = max(n+int64(from), 0)
		}
		for ; k < n; k++ {
			if match(k) {
				if name == "includes" {
					return rt.ToValue(true)
				}
				return rt.ToValue(k)
			}
		}
		return notFound
	}
}

func toIntegerOrInfinity(v goja.Value) float64 {
	f := v.ToFloat()
	if math.IsNaN(f) {
		return 0
	}
	return math.Trunc(f)
}

// concat is Array.prototype.concat, counting every spreadable argument
// (arrays and objects with Symbol.isConcatSpreadable) against the array
// limit before copying it; each argument's spreadability and length are
// read once. The result is a plain Array (the species of the receiver is
// not consulted).
func (st *vmState) concat(c goja.FunctionCall) goja.Value {
	rt := st.rt
	if absent(c.This) {
		panic(rt.NewTypeError("Array.prototype.concat called on null or undefined"))
	}
	max := int64(st.s.opts.MaxArrayLength)
	var out []any
	var holes []int64
	items := append([]goja.Value{c.This.ToObject(rt)}, c.Arguments...)
	for _, e := range items {
		o, ok := e.(*goja.Object)
		spreadable := false
		if ok {
			if v := o.GetSymbol(goja.SymIsConcatSpreadable); !absent(v) {
				spreadable = v.ToBoolean()
			} else {
				spreadable = o.ClassName() == "Array"
			}
		}
		if !spreadable {
			if int64(len(out))+1 > max {
				panic(st.rangeError("Array.prototype.concat: result length exceeds the array limit (MaxArrayLength = %d)", max))
			}
			out = append(out, e)
			continue
		}
		n := st.checkLength(o, "Array.prototype.concat")
		if int64(len(out))+n > max {
			panic(st.rangeError("Array.prototype.concat: result length %d exceeds the array limit (MaxArrayLength = %d)", int64(len(out))+n, max))
		}
		for k := int64(0); k < n; k++ {
			if k&63 == 63 {
				st.checkDeadline()
			}
			v := o.Get(strconv.FormatInt(k, 10))
			if v == nil {
				holes = append(holes, int64(len(out)))
				v = goja.Undefined()
			}
			out = append(out, v)
		}
	}
	a := rt.NewArray(out...)
	for _, h := range holes {
		_ = a.Delete(strconv.FormatInt(h, 10))
	}
	return a
}

// flat is Array.prototype.flat, reading every element once and counting
// the result against the array limit as it goes (a DAG of 30 arrays
// flattens to 2^30).
func (st *vmState) flat(c goja.FunctionCall) goja.Value {
	rt := st.rt
	if absent(c.This) {
		panic(rt.NewTypeError("Array.prototype.flat called on null or undefined"))
	}
	o := c.This.ToObject(rt)
	depth := float64(1)
	if d := c.Argument(0); !goja.IsUndefined(d) {
		depth = toIntegerOrInfinity(d)
	}
	var out []any
	st.flatInto(&out, o, depth, 0)
	return rt.NewArray(out...)
}

func (st *vmState) flatInto(out *[]any, o *goja.Object, depth float64, level int) {
	if level > st.s.opts.MaxCallStackSize {
		panic(st.rangeError("Array.prototype.flat: nesting deeper than %d (MaxCallStackSize)", st.s.opts.MaxCallStackSize))
	}
	n := st.checkLength(o, "Array.prototype.flat")
	for i := int64(0); i < n; i++ {
		if i&255 == 255 {
			st.checkDeadline()
		}
		e := o.Get(strconv.FormatInt(i, 10))
		if e == nil {
			continue
		}
		if eo, ok := e.(*goja.Object); ok && depth > 0 && eo.ClassName() == "Array" {
			st.flatInto(out, eo, depth-1, level+1)
			continue
		}
		if len(*out) >= st.s.opts.MaxArrayLength {
			panic(st.rangeError("Array.prototype.flat: result exceeds the array limit (MaxArrayLength = %d)", st.s.opts.MaxArrayLength))
		}
		*out = append(*out, e)
	}
}

// normalize is String.prototype.normalize with a bounded result.
func (st *vmState) normalize(c goja.FunctionCall) goja.Value {
	rt := st.rt
	s := st.thisString(c, "normalize")
	form := "NFC"
	if f := c.Argument(0); !goja.IsUndefined(f) {
		form = st.str(f.ToString()).String()
	}
	var f norm.Form
	switch form {
	case "NFC":
		f = norm.NFC
	case "NFD":
		f = norm.NFD
	case "NFKC":
		f = norm.NFKC
	case "NFKD":
		f = norm.NFKD
	default:
		panic(st.rangeError("The normalization form should be one of NFC, NFD, NFKC, NFKD"))
	}
	str := s.String()
	if len(str) == s.Length() {
		return s // ASCII is in every normal form
	}
	var it norm.Iter
	it.InitString(f, str)
	var b strings.Builder
	n, steps := 0, 0
	for !it.Done() {
		if steps++; steps&1023 == 0 {
			st.checkDeadline()
		}
		seg := it.Next()
		for i := 0; i < len(seg); {
			r, size := utf8.DecodeRune(seg[i:])
			i += size
			n++
			if r >= 0x10000 {
				n++
			}
		}
		st.checkResult(int64(n), "String.prototype.normalize")
		b.Write(seg)
	}
	return rt.ToValue(b.String())
}

// encodedLength is the length of encodeURIComponent, encodeURI or escape
// of s (an upper bound for encodeURI*, exact for valid input).
func encodedLength(s goja.String, name string) int64 {
	const comp = "-_.!~*'()"
	const uri = "-_.!~*'();/?:@&=+$,#"
	const esc = "@*_+-./"
	var n int64
	l := s.Length()
	for i := 0; i < l; i++ {
		c := s.CharAt(i)
		alnum := c < 0x80 && ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9')
		switch {
		case alnum:
			n++
		case name == "escape":
			switch {
			case c < 0x80 && strings.IndexByte(esc, byte(c)) >= 0:
				n++
			case c < 0x100:
				n += 3
			default:
				n += 6
			}
		case c < 0x80:
			set := comp
			if name == "encodeURI" {
				set = uri
			}
			if strings.IndexByte(set, byte(c)) >= 0 {
				n++
			} else {
				n += 3
			}
		case c < 0x800:
			n += 6
		case c >= 0xD800 && c <= 0xDBFF && i+1 < l:
			n += 12 // a pair: 4 UTF-8 bytes
			i++
		default:
			n += 9
		}
	}
	return n
}
