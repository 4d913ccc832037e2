package scripts

import (
	"math"
	"strconv"

	"github.com/dop251/goja"
)

// JSON.stringify is replaced by this Go implementation of the algorithm of
// ECMA-262 (toJSON, replacer function or property list, indentation, boxed
// primitives, cycle detection) that also stops at the string limit, at the
// nesting limit and at the call's deadline. goja's own walks a value graph
// without bounds: 30 statements build a 2^30-leaf DAG whose text is 2^31
// bytes.

type stringifier struct {
	st       *vmState
	replacer goja.Callable
	props    []string // property list replacer, nil when none
	gap      string
	indent   string
	stack    []*goja.Object
	sb       goja.StringBuilder
	n        int // length written, UTF-16 units
	limit    int
	steps    int
}

// stringify runs JSON.stringify(v, replacer, space) with output bounded by
// limit; the result is undefined when v serialises to nothing.
func (st *vmState) stringify(v, replacer, space goja.Value, limit int) goja.Value {
	rt := st.rt
	s := &stringifier{st: st, limit: limit}
	if o, ok := replacer.(*goja.Object); ok {
		if fn, ok := goja.AssertFunction(o); ok {
			s.replacer = fn
		} else if o.ClassName() == "Array" {
			n := st.checkLength(o, "JSON.stringify replacer")
			seen := map[string]bool{}
			for i := int64(0); i < n; i++ {
				e := o.Get(strconv.FormatInt(i, 10))
				var name string
				switch x := e.(type) {
				case *goja.Object:
					if c := x.ClassName(); c != "String" && c != "Number" {
						continue
					}
					name = x.String()
				default:
					if absent(e) {
						continue
					}
					switch e.Export().(type) {
					case string, int64, float64:
						name = e.String()
					default:
						continue
					}
				}
				if !seen[name] {
					seen[name] = true
					s.props = append(s.props, name)
				}
			}
			if s.props == nil {
				s.props = []string{}
			}
		}
	}
	if o, ok := space.(*goja.Object); ok {
		switch o.ClassName() {
		case "Number":
			space = o.ToNumber()
		case "String":
			space = o.ToString()
		}
	}
	switch sp := space.Export().(type) {
	case int64, float64:
		n := int(math.Min(10, math.Max(0, float64(space.ToInteger()))))
		s.gap = "          "[:n]
	case string:
		if len(sp) > 10 {
			sp = sp[:10]
		}
		s.gap = sp
	}
	holder := rt.NewObject()
	_ = holder.Set("", v)
	if !s.value("", holder, v) {
		return goja.Undefined()
	}
	return s.sb.String()
}

func (s *stringifier) write(str string) {
	s.n += len(str)
	if s.n > s.limit {
		panic(s.st.rangeError("JSON.stringify: result longer than the string limit (MaxStringLength = %d)", s.limit))
	}
	s.sb.WriteUTF8String(str)
}

// quote writes a JSON string literal for gs, escaping lone surrogates.
func (s *stringifier) quote(gs goja.String) {
	if s.n+2+gs.Length() > s.limit {
		panic(s.st.rangeError("JSON.stringify: result longer than the string limit (MaxStringLength = %d)", s.limit))
	}
	str := gs.String()
	if len(str) == gs.Length() { // ASCII only
		s.writeASCIIQuoted(str)
		return
	}
	s.write(`"`)
	for i := 0; i < gs.Length(); i++ {
		c := gs.CharAt(i)
		switch {
		case c >= 0xD800 && c <= 0xDBFF && i+1 < gs.Length() && gs.CharAt(i+1) >= 0xDC00 && gs.CharAt(i+1) <= 0xDFFF:
			r := (rune(c)-0xD800)<<10 + (rune(gs.CharAt(i+1)) - 0xDC00) + 0x10000
			s.n += 2
			s.sb.WriteRune(r)
			i++
		case c >= 0xD800 && c <= 0xDFFF:
			s.write(`\u` + strconv.FormatUint(uint64(c), 16))
		case c < 0x80:
			s.writeASCIIQuotedBody(string(rune(c)))
		default:
			s.n++
			s.sb.WriteRune(rune(c))
		}
	}
	s.write(`"`)
}

func (s *stringifier) writeASCIIQuoted(str string) {
	s.write(`"`)
	s.writeASCIIQuotedBody(str)
	s.write(`"`)
}

func (s *stringifier) writeASCIIQuotedBody(str string) {
	start := 0
	for i := 0; i < len(str); i++ {
		c := str[i]
		var esc string
		switch c {
		case '"':
			esc = `\"`
		case '\\':
			esc = `\\`
		case '\b':
			esc = `\b`
		case '\f':
			esc = `\f`
		case '\n':
			esc = `\n`
		case '\r':
			esc = `\r`
		case '\t':
			esc = `\t`
		default:
			if c >= 0x20 {
				continue
			}
			esc = `\u00` + string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])
		}
		s.write(str[start:i])
		s.write(esc)
		start = i + 1
	}
	s.write(str[start:])
}

// value serialises holder[key] (already read as v); false means "nothing"
// (undefined, a function, a symbol) and nothing was written.
func (s *stringifier) value(key string, holder *goja.Object, v goja.Value) bool {
	v, ok := s.prepare(key, holder, v)
	if ok {
		s.serialize(v)
	}
	return ok
}

// prepare applies toJSON, the replacer function and unboxing; false means
// the property serialises to nothing.
func (s *stringifier) prepare(key string, holder *goja.Object, v goja.Value) (goja.Value, bool) {
	st, rt := s.st, s.st.rt
	if s.steps++; s.steps&255 == 0 {
		st.checkDeadline()
	}
	if o, ok := v.(*goja.Object); ok {
		if tj := o.Get("toJSON"); !absent(tj) {
			if toJSON, ok := goja.AssertFunction(tj); ok {
				v = st.callOrThrow(toJSON, o, rt.ToValue(key))
			}
		}
	}
	if s.replacer != nil {
		v = st.callOrThrow(s.replacer, holder, rt.ToValue(key), v)
	}
	if o, ok := v.(*goja.Object); ok {
		switch o.ClassName() {
		case "Number":
			v = o.ToNumber()
		case "String":
			v = o.ToString()
		case "Boolean":
			if b, ok := o.Export().(bool); ok {
				v = rt.ToValue(b)
			}
		}
	}
	switch x := v.(type) {
	case nil, *goja.Symbol:
		return nil, false
	case *goja.Object:
		if _, fn := goja.AssertFunction(x); fn {
			return nil, false
		}
	}
	if goja.IsUndefined(v) {
		return nil, false
	}
	return v, true
}

// serialize writes a prepared value.
func (s *stringifier) serialize(v goja.Value) {
	if goja.IsNull(v) {
		s.write("null")
		return
	}
	switch x := v.(type) {
	case *goja.Object:
		if x.ClassName() == "Array" {
			s.array(x)
		} else {
			s.object(x)
		}
		return
	case goja.String:
		s.quote(x)
		return
	}
	switch n := v.Export().(type) {
	case bool:
		if n {
			s.write("true")
		} else {
			s.write("false")
		}
	case int64:
		s.write(strconv.FormatInt(n, 10))
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			s.write("null")
		} else {
			s.write(v.String())
		}
	default:
		panic(s.st.rt.NewTypeError("JSON.stringify: cannot serialise %s", v.String()))
	}
}

func (s *stringifier) enter(o *goja.Object) {
	for _, p := range s.stack {
		if p == o {
			panic(s.st.rt.NewTypeError("Converting circular structure to JSON"))
		}
	}
	if len(s.stack) >= s.st.s.opts.MaxCallStackSize {
		panic(s.st.rangeError("JSON.stringify: nesting deeper than %d (MaxCallStackSize)", s.st.s.opts.MaxCallStackSize))
	}
	s.stack = append(s.stack, o)
}

func (s *stringifier) newline(indent string) {
	if s.gap != "" {
		s.write("\n")
		s.write(indent)
	}
}

func (s *stringifier) object(o *goja.Object) {
	s.enter(o)
	stepback := s.indent
	s.indent += s.gap
	keys := s.props
	if keys == nil {
		keys = o.Keys()
	}
	s.write("{")
	first := true
	for _, k := range keys {
		v, ok := s.prepare(k, o, o.Get(k))
		if !ok {
			continue
		}
		if !first {
			s.write(",")
		}
		first = false
		s.newline(s.indent)
		s.quote(s.st.rt.ToValue(k).(goja.String))
		s.write(":")
		if s.gap != "" {
			s.write(" ")
		}
		s.serialize(v)
	}
	if !first {
		s.newline(stepback)
	}
	s.write("}")
	s.indent = stepback
	s.stack = s.stack[:len(s.stack)-1]
}

func (s *stringifier) array(o *goja.Object) {
	s.enter(o)
	n := s.st.checkLength(o, "JSON.stringify")
	stepback := s.indent
	s.indent += s.gap
	s.write("[")
	for i := int64(0); i < n; i++ {
		if i > 0 {
			s.write(",")
		}
		s.newline(s.indent)
		k := strconv.FormatInt(i, 10)
		if !s.value(k, o, o.Get(k)) {
			s.write("null")
		}
	}
	if n > 0 {
		s.newline(stepback)
	}
	s.write("]")
	s.indent = stepback
	s.stack = s.stack[:len(s.stack)-1]
}

// jsonDepth returns the deepest bracket nesting of a JSON text, ignoring
// brackets inside strings; JSON.parse recurses in Go once per level.
func jsonDepth(s string) int {
	depth, maxDepth, inStr := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[', '{':
			depth++
			if depth > maxDepth {
				maxDepth = depth
			}
		case ']', '}':
			depth--
		}
	}
	return maxDepth
}

// jsonParse parses JSON text in this runtime (used for gatehouse.config).
func (st *vmState) jsonParse(text string) (goja.Value, error) {
	parse, _ := goja.AssertFunction(st.rt.Get("JSON").ToObject(st.rt).Get("parse"))
	return parse(goja.Undefined(), st.rt.ToValue(text))
}
