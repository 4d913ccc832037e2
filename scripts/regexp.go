package scripts

import (
	"strings"

	"github.com/dop251/goja"
)

// goja's native global regexp operations (replace, match, split) find every
// match in one Go loop before returning: on a 1M-character string that is a
// million matches, about a second and 185 MB here, with no chance to stop.
// Up to fastPathLength characters the native fast paths are used (bounded
// at about fastPathLength matches); beyond it, the operations run here, one
// exec at a time, checking the deadline and the size bounds as they go.
// (A variable so that tests can run both paths.)
var fastPathLength = 1 << 14

// regexpExec calls rx.exec(s) (the built-in unless the script replaced it).
func (st *vmState) regexpExec(rx *goja.Object, s goja.String) *goja.Object {
	var r goja.Value
	if ex := rx.Get("exec"); ex != nil && ex.SameAs(st.builtinExecObj) {
		r = st.builtinExec(goja.FunctionCall{This: rx, Arguments: []goja.Value{s}})
	} else if fn, ok := goja.AssertFunction(ex); ok {
		r = st.callOrThrow(fn, rx, s)
	} else {
		panic(st.rt.NewTypeError("RegExp exec is not a function"))
	}
	if absent(r) {
		return nil
	}
	o, ok := r.(*goja.Object)
	if !ok {
		panic(st.rt.NewTypeError("RegExp exec returned %s", kind(r)))
	}
	return o
}

// advanceEmpty moves lastIndex past an empty match.
func (st *vmState) advanceEmpty(rx *goja.Object, s goja.String, unicode bool) {
	i := prop(rx, "lastIndex").ToInteger()
	next := i + 1
	if unicode && i+1 < int64(s.Length()) {
		if c := s.CharAt(int(i)); c >= 0xD800 && c <= 0xDBFF {
			if d := s.CharAt(int(i + 1)); d >= 0xDC00 && d <= 0xDFFF {
				next = i + 2
			}
		}
	}
	_ = rx.Set("lastIndex", next)
}

// outBuilder accumulates a result string within the string limit.
type outBuilder struct {
	st    *vmState
	sb    goja.StringBuilder
	n     int64
	what  string
	steps int
}

func (b *outBuilder) add(s goja.String) {
	b.n += int64(s.Length())
	b.st.checkResult(b.n, b.what)
	b.sb.WriteString(s)
}

func (b *outBuilder) addSub(s goja.String, from, to int) {
	if to > from {
		b.add(s.Substring(from, to))
	}
}

// tick checks the deadline every 64 steps.
func (b *outBuilder) tick() {
	if b.steps++; b.steps&63 == 0 {
		b.st.checkDeadline()
	}
}

// match is one match for a replacement.
type match struct {
	matched  goja.String
	position int
	captures []goja.Value // strings or undefined
	groups   goja.Value   // undefined when the pattern has no named groups
}

// tmplPart is one part of a parsed replacement template: literal text, or
// a substitution ($&, $`, $', $n, $<name>).
type tmplPart struct {
	lit  goja.String // literal text when kind == 0
	kind byte        // 0, '&', '`', '\'', 'n', '<'
	n    int         // capture number for 'n'
	name string      // group name for '<'
}

// parseTemplate splits a replacement template (ECMA-262 GetSubstitution)
// for a pattern with nCaps captures, named groups or not.
func parseTemplate(tmpl goja.String, nCaps int, named bool) []tmplPart {
	var parts []tmplPart
	n := tmpl.Length()
	lit := 0
	flush := func(to int) {
		if to > lit {
			parts = append(parts, tmplPart{lit: tmpl.Substring(lit, to)})
		}
	}
	for i := 0; i < n; i++ {
		if tmpl.CharAt(i) != '$' || i+1 >= n {
			continue
		}
		c := tmpl.CharAt(i + 1)
		switch {
		case c == '$':
			flush(i + 1)
			lit = i + 2
			i++
		case c == '&' || c == '`' || c == '\'':
			flush(i)
			parts = append(parts, tmplPart{kind: byte(c)})
			lit = i + 2
			i++
		case c >= '0' && c <= '9':
			idx, width := int(c-'0'), 2
			if i+2 < n {
				if d := tmpl.CharAt(i + 2); d >= '0' && d <= '9' {
					if two := idx*10 + int(d-'0'); two >= 1 && two <= nCaps {
						idx, width = two, 3
					}
				}
			}
			if idx < 1 || idx > nCaps {
				continue
			}
			flush(i)
			parts = append(parts, tmplPart{kind: 'n', n: idx})
			lit = i + width
			i += width - 1
		case c == '<':
			if !named {
				continue
			}
			end := -1
			for j := i + 2; j < n; j++ {
				if tmpl.CharAt(j) == '>' {
					end = j
					break
				}
			}
			if end < 0 {
				continue
			}
			flush(i)
			parts = append(parts, tmplPart{kind: '<', name: tmpl.Substring(i+2, end).String()})
			lit = end + 1
			i = end
		}
	}
	flush(n)
	return parts
}

// replacement appends the replacement of one match: the callback's result or
// the parsed template's substitutions.
func (st *vmState) replacement(b *outBuilder, s goja.String, m *match, fn goja.Callable, tmpl []tmplPart) {
	rt := st.rt
	if fn != nil {
		args := make([]goja.Value, 0, len(m.captures)+4)
		args = append(args, m.matched)
		args = append(args, m.captures...)
		args = append(args, rt.ToValue(m.position), s)
		if !absent(m.groups) {
			args = append(args, m.groups)
		}
		b.add(st.str(st.callOrThrow(fn, goja.Undefined(), args...).ToString()))
		return
	}
	for _, p := range tmpl {
		switch p.kind {
		case 0:
			b.add(p.lit)
		case '&':
			b.add(m.matched)
		case '`':
			b.addSub(s, 0, m.position)
		case '\'':
			b.addSub(s, min(m.position+m.matched.Length(), s.Length()), s.Length())
		case 'n':
			if v := m.captures[p.n-1]; !absent(v) {
				b.add(st.str(v))
			}
		case '<':
			if v := m.groups.ToObject(rt).Get(p.name); !absent(v) {
				b.add(st.str(v.ToString()))
			}
		}
	}
}

// regexpReplace is RegExp.prototype[Symbol.replace] one exec at a time.
func (st *vmState) regexpReplace(rx *goja.Object, s goja.String, repl goja.Value, what string) goja.Value {
	fn, _ := goja.AssertFunction(repl)
	var tmplS goja.String
	var tmpl []tmplPart
	if fn == nil {
		tmplS = st.str(repl.ToString())
	}
	global := flag(rx, "global")
	unicode := flag(rx, "unicode")
	if global {
		_ = rx.Set("lastIndex", 0)
	}
	b := &outBuilder{st: st, what: what}
	next := 0
	for {
		b.tick()
		res := st.regexpExec(rx, s)
		if res == nil {
			break
		}
		m := &match{matched: st.str(prop(res, "0").ToString())}
		m.position = int(max(0, min(prop(res, "index").ToInteger(), int64(s.Length()))))
		nCaps := st.checkLength(res, what) - 1
		for k := int64(1); k <= nCaps; k++ {
			v := res.Get(itoa(k))
			if !absent(v) {
				v = st.str(v.ToString())
			}
			m.captures = append(m.captures, v)
		}
		m.groups = res.Get("groups")
		if fn == nil && tmpl == nil {
			tmpl = parseTemplate(tmplS, len(m.captures), !absent(m.groups))
		}
		if m.position >= next {
			b.addSub(s, next, m.position)
			st.replacement(b, s, m, fn, tmpl)
			next = m.position + m.matched.Length()
		}
		if !global {
			break
		}
		if m.matched.Length() == 0 {
			st.advanceEmpty(rx, s, unicode)
		}
	}
	b.addSub(s, next, s.Length())
	return b.sb.String()
}

// stringReplace is String.prototype.replace/replaceAll with a string pattern
// on a long ASCII receiver: matches found with strings.Index.
func (st *vmState) stringReplace(s, pat goja.String, repl goja.Value, all bool, what string) goja.Value {
	fn, _ := goja.AssertFunction(repl)
	var tmpl []tmplPart
	if fn == nil {
		tmpl = parseTemplate(st.str(repl.ToString()), 0, false)
	}
	str, p := s.String(), pat.String()
	b := &outBuilder{st: st, what: what}
	next, from := 0, 0
	for from <= len(str) {
		b.tick()
		i := strings.Index(str[from:], p)
		if i < 0 {
			break
		}
		pos := from + i
		b.addSub(s, next, pos)
		st.replacement(b, s, &match{matched: pat, position: pos, groups: goja.Undefined()}, fn, tmpl)
		next = pos + len(p)
		if !all {
			break
		}
		from = next
		if len(p) == 0 {
			from++
		}
	}
	b.addSub(s, next, s.Length())
	return b.sb.String()
}

// regexpMatchAll is a global RegExp.prototype[Symbol.match] one exec at a
// time, with at most MaxArrayLength matches.
func (st *vmState) regexpMatchAll(rx *goja.Object, s goja.String) goja.Value {
	unicode := flag(rx, "unicode")
	_ = rx.Set("lastIndex", 0)
	var out []any
	b := &outBuilder{st: st}
	for {
		b.tick()
		res := st.regexpExec(rx, s)
		if res == nil {
			break
		}
		m := st.str(prop(res, "0").ToString())
		if len(out) >= st.s.opts.MaxArrayLength {
			panic(st.rangeError("RegExp.prototype[Symbol.match]: more than %d matches (MaxArrayLength)", st.s.opts.MaxArrayLength))
		}
		out = append(out, m)
		if m.Length() == 0 {
			st.advanceEmpty(rx, s, unicode)
		}
	}
	if out == nil {
		return goja.Null()
	}
	return st.rt.NewArray(out...)
}

// regexpSplit is RegExp.prototype[Symbol.split] one exec at a time: a
// global copy of the pattern (made with its species constructor) finds
// each next match, which is the match the specification's sticky splitter
// finds by trying every position in turn, without one exec per position.
// At most MaxArrayLength parts.
func (st *vmState) regexpSplit(rx *goja.Object, s goja.String, limit goja.Value) goja.Value {
	rt := st.rt
	flags := strings.ReplaceAll(st.str(prop(rx, "flags").ToString()).String(), "y", "")
	if !strings.Contains(flags, "g") {
		flags += "g"
	}
	var ctor goja.Value = rt.Get("RegExp")
	if c, ok := rx.Get("constructor").(*goja.Object); ok {
		if sp := c.GetSymbol(goja.SymSpecies); !absent(sp) {
			ctor = sp
		}
	}
	g, err := rt.New(ctor, rx, rt.ToValue(flags))
	if err != nil {
		panic(err)
	}
	unicode := strings.ContainsAny(flags, "uv")
	lim := int64(1<<32 - 1)
	if !goja.IsUndefined(limit) {
		lim = int64(uint32(limit.ToInteger()))
	}
	maxParts := st.s.opts.MaxArrayLength
	var out []any
	push := func(v goja.Value) bool {
		if len(out) >= maxParts {
			panic(st.rangeError("String.prototype.split: more than %d parts (MaxArrayLength)", maxParts))
		}
		out = append(out, v)
		return int64(len(out)) == lim
	}
	if lim == 0 {
		return rt.NewArray()
	}
	size := s.Length()
	if size == 0 {
		_ = g.Set("lastIndex", 0)
		if st.regexpExec(g, s) == nil {
			out = append(out, s)
		}
		return rt.NewArray(out...)
	}
	p, q := 0, 0
	for q < size {
		_ = g.Set("lastIndex", q)
		res := st.regexpExec(g, s)
		if res == nil {
			break
		}
		m := int(max64(0, prop(res, "index").ToInteger()))
		if m >= size {
			break
		}
		e := int(min(max64(0, prop(g, "lastIndex").ToInteger()), int64(size)))
		if e == p {
			q = advanceIndex(s, m, unicode)
			continue
		}
		if push(s.Substring(p, max(m, p))) {
			return rt.NewArray(out...)
		}
		p = e
		nCaps := st.checkLength(res, "String.prototype.split") - 1
		for k := int64(1); k <= nCaps; k++ {
			if push(prop(res, itoa(k))) {
				return rt.NewArray(out...)
			}
		}
		q = p
	}
	push(s.Substring(p, size))
	return rt.NewArray(out...)
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// advanceIndex is AdvanceStringIndex of ECMA-262.
func advanceIndex(s goja.String, i int, unicode bool) int {
	if unicode && i+1 < s.Length() {
		if c := s.CharAt(i); c >= 0xD800 && c <= 0xDBFF {
			if d := s.CharAt(i + 1); d >= 0xDC00 && d <= 0xDFFF {
				return i + 2
			}
		}
	}
	return i + 1
}

// prop returns o[key], undefined when absent.
func prop(o *goja.Object, key string) goja.Value {
	if v := o.Get(key); v != nil {
		return v
	}
	return goja.Undefined()
}

// flag returns the boolean o[key], false when absent.
func flag(o *goja.Object, key string) bool {
	v := o.Get(key)
	return v != nil && v.ToBoolean()
}
