package scripts

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/token"
	"github.com/dop251/goja/unistring"
)

// String concatenation with + and template literals is a single bytecode
// instruction in goja: Interrupt cannot stop it, and a loop that doubles a
// string (s += s) makes the last concatenation copy hundreds of megabytes
// after its deadline has passed. There is no hook in the engine for it, so
// the compiler's input is rewritten instead: every `a + b` becomes
// `__gatehouse_add(a, b)`, every `x += b` becomes `x = __gatehouse_add(x,
// b)`, and every substitution of an untagged template literal goes through
// `__gatehouse_tstr`. The helpers (concatJS) keep the language's semantics
// (ToPrimitive once per operand, numbers added as numbers) and throw a
// RangeError before a string longer than MaxStringLength is built. A
// template literal's result is at most (number of substitutions + 1) ×
// MaxStringLength long, and any longer string is refused by the next
// operation that would grow it.

// concatPrefix is reserved: a script may not name anything with it, so it
// cannot shadow the helpers.
const concatPrefix = "__gatehouse_"

const (
	addName  = concatPrefix + "add"
	addmName = concatPrefix + "addm"
	tstrName = concatPrefix + "tstr"
)

// concatJS defines the helpers on the global object, non-writable and
// non-configurable, with every built-in they use captured before any
// script runs (a script may replace String or Reflect.apply afterwards
// without effect on them). %d is MaxStringLength.
const concatJS = `(function (g, limit) {
	"use strict";
	var toPrim = Symbol.toPrimitive, apply = Reflect.apply, Str = String,
		TE = TypeError, RE = RangeError, define = Object.defineProperty;
	function obj(v) { return (typeof v === "object" && v !== null) || typeof v === "function"; }
	function prim(v) {
		if (!obj(v)) return v;
		var ex = v[toPrim], r;
		if (ex !== undefined && ex !== null) {
			r = apply(ex, v, ["default"]);
			if (obj(r)) throw new TE("Cannot convert object to primitive value");
			return r;
		}
		var f = v.valueOf;
		if (typeof f === "function") { r = apply(f, v, []); if (!obj(r)) return r; }
		f = v.toString;
		if (typeof f === "function") { r = apply(f, v, []); if (!obj(r)) return r; }
		throw new TE("Cannot convert object to primitive value");
	}
	function len(v) { return typeof v === "string" ? v.length : (typeof v === "symbol" ? 0 : Str(v).length); }
	function refuse(n) {
		throw new RE("string concatenation: result of length " + n + " would exceed the string limit (MaxStringLength = " + limit + ")");
	}
	function add(a, b) {
		var ta = typeof a, tb = typeof b;
		if (ta === "number" && tb === "number") return a + b;
		if (ta === "string" && tb === "string") {
			if (a.length + b.length > limit) refuse(a.length + b.length);
			return a + b;
		}
		a = prim(a); b = prim(b);
		if (typeof a === "string" || typeof b === "string") {
			var n = len(a) + len(b);
			if (n > limit) refuse(n);
		}
		return a + b;
	}
	function addm(o, k, b) { return o[k] = add(o[k], b); }
	function tstr(v) {
		if (typeof v === "string") {
			if (v.length > limit) refuse(v.length);
			return v;
		}
		if (!obj(v)) return v;
		var s = Str(v);
		if (s.length > limit) refuse(s.length);
		return s;
	}
	define(g, "` + addName + `", { value: add });
	define(g, "` + addmName + `", { value: addm });
	define(g, "` + tstrName + `", { value: tstr });
})(globalThis, %d);`

func (st *vmState) installConcatGuard() error {
	_, err := st.rt.RunString(fmt.Sprintf(concatJS, st.s.opts.MaxStringLength))
	return err
}

// guardConcat rewrites a parsed module in place (see above). It reports a
// script's own use of the reserved prefix.
func guardConcat(prg *ast.Program, f *file.File, display string) error {
	g := &concatRewriter{seen: map[uintptr]bool{}, f: f, display: display}
	g.walk(reflect.ValueOf(prg))
	return g.err
}

type concatRewriter struct {
	seen    map[uintptr]bool
	f       *file.File
	display string
	err     error
}

var exprType = reflect.TypeOf((*ast.Expression)(nil)).Elem()

func (g *concatRewriter) walk(v reflect.Value) {
	if g.err != nil {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Type() == exprType && v.CanSet() {
			if e, ok := v.Interface().(ast.Expression); ok {
				if r := g.rewrite(e); r != nil {
					v.Set(reflect.ValueOf(r))
				}
			}
		}
		g.walk(v.Elem())
	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct || v.Elem().Type().PkgPath() != astPkg {
			return
		}
		if g.seen[v.Pointer()] {
			return
		}
		g.seen[v.Pointer()] = true
		if id, ok := v.Interface().(*ast.Identifier); ok {
			g.ident(id.Name, id.Idx)
		}
		g.walkStruct(v.Elem())
	case reflect.Struct:
		if v.Type().PkgPath() == astPkg {
			if v.CanAddr() {
				if id, ok := v.Addr().Interface().(*ast.Identifier); ok {
					g.ident(id.Name, id.Idx)
				}
			}
			g.walkStruct(v)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			g.walk(v.Index(i))
		}
	}
}

func (g *concatRewriter) walkStruct(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).IsExported() {
			g.walk(v.Field(i))
		}
	}
}

func (g *concatRewriter) ident(name unistring.String, at file.Idx) {
	if g.err == nil && strings.HasPrefix(name.String(), concatPrefix) {
		pos := g.f.Position(int(at) - g.f.Base())
		l, col := unwrapPos(pos.Line, pos.Column)
		g.err = &LoadError{File: g.display, Line: l, Column: col, Msg: fmt.Sprintf("%s: names beginning with %s are reserved for gatehouse", name, concatPrefix)}
	}
}

// rewrite returns the guarded replacement of e, or nil to keep it. The
// replacement's operands are the original nodes, walked afterwards.
func (g *concatRewriter) rewrite(e ast.Expression) ast.Expression {
	switch e := e.(type) {
	case *ast.BinaryExpression:
		if e.Operator == token.PLUS {
			return g.call(addName, e.Idx0(), e.Left, e.Right)
		}
	case *ast.AssignExpression:
		if e.Operator != token.PLUS {
			return nil
		}
		switch l := e.Left.(type) {
		case *ast.Identifier:
			return &ast.AssignExpression{Operator: token.ASSIGN, Left: l, Right: g.call(addName, e.Idx0(), l, e.Right)}
		case *ast.DotExpression:
			if pure(l.Left) {
				read := *l
				return &ast.AssignExpression{Operator: token.ASSIGN, Left: l, Right: g.call(addName, e.Idx0(), &read, e.Right)}
			}
			key := &ast.StringLiteral{Idx: l.Identifier.Idx, Literal: `"` + l.Identifier.Name.String() + `"`, Value: l.Identifier.Name}
			return g.call(addmName, e.Idx0(), l.Left, key, e.Right)
		case *ast.BracketExpression:
			if pure(l.Left) && pure(l.Member) {
				read := *l
				return &ast.AssignExpression{Operator: token.ASSIGN, Left: l, Right: g.call(addName, e.Idx0(), &read, e.Right)}
			}
			return g.call(addmName, e.Idx0(), l.Left, l.Member, e.Right)
		case *ast.PrivateDotExpression:
			if pure(l.Left) {
				read := *l
				return &ast.AssignExpression{Operator: token.ASSIGN, Left: l, Right: g.call(addName, e.Idx0(), &read, e.Right)}
			}
			// obj().#x += v: the object expression has effects and a
			// private name cannot be passed to a helper. Refused rather
			// than left unguarded.
			g.fail(e.Idx0(), "+= on a private field of a computed object is not supported in gatehouse scripts; assign the object to a variable first")
		}
	case *ast.TemplateLiteral:
		if e.Tag == nil {
			for i, x := range e.Expressions {
				e.Expressions[i] = g.call(tstrName, x.Idx0(), x)
			}
		}
	}
	return nil
}

func (g *concatRewriter) fail(at file.Idx, msg string) {
	if g.err == nil {
		pos := g.f.Position(int(at) - g.f.Base())
		l, col := unwrapPos(pos.Line, pos.Column)
		g.err = &LoadError{File: g.display, Line: l, Column: col, Msg: msg}
	}
}

// pure reports expressions that may be evaluated twice without a
// difference: names, this, and literals.
func pure(e ast.Expression) bool {
	switch e.(type) {
	case *ast.Identifier, *ast.ThisExpression, *ast.StringLiteral, *ast.NumberLiteral, *ast.BooleanLiteral, *ast.NullLiteral:
		return true
	}
	return false
}

// call builds a call of one of the helpers; its name is marked as seen so
// that the walk does not take it for the script's own.
func (g *concatRewriter) call(name string, at file.Idx, args ...ast.Expression) *ast.CallExpression {
	callee := &ast.Identifier{Name: unistring.NewFromString(name), Idx: at}
	g.seen[reflect.ValueOf(callee).Pointer()] = true
	return &ast.CallExpression{
		Callee:           callee,
		LeftParenthesis:  at,
		ArgumentList:     args,
		RightParenthesis: at,
	}
}
