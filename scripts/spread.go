package scripts

import (
	"reflect"

	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/unistring"
)

// Object spread ({...x}) copies every own enumerable property of x in one
// bytecode instruction: {..."x".repeat(1 << 20)} makes a million
// properties (2 s) and {...Array(1 << 18).fill(0)} takes 0.3 s without a
// chance to interrupt. Each module is therefore rewritten (after the
// concatenation guard, same reserved prefix) so that the spread argument
// goes through __gatehouse_spread(x), which returns x unchanged after
// checking that it has at most maxSpreadProperties own properties (a
// string or an array counts its length).

const spreadName = concatPrefix + "spread"

// maxSpreadProperties is the largest object spread, as a fraction of
// MaxArrayLength: copying a property in a spread costs about 1 µs (3 µs
// under -race), so MaxArrayLength/4 keeps one spread well inside the
// slack of a call's deadline.
func (o *Options) maxSpreadProperties() int { return max(1, o.MaxArrayLength/4) }

// guardSpread rewrites the object spreads of a parsed module in place.
func guardSpread(prg *ast.Program) {
	w := &spreadRewriter{seen: map[uintptr]bool{}}
	w.walk(reflect.ValueOf(prg))
}

type spreadRewriter struct{ seen map[uintptr]bool }

func (w *spreadRewriter) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			w.walk(v.Elem())
		}
	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct || v.Elem().Type().PkgPath() != astPkg || w.seen[v.Pointer()] {
			return
		}
		w.seen[v.Pointer()] = true
		if ol, ok := v.Interface().(*ast.ObjectLiteral); ok {
			for _, p := range ol.Value {
				if sp, ok := p.(*ast.SpreadElement); ok {
					arg := sp.Expression
					sp.Expression = &ast.CallExpression{
						Callee:           &ast.Identifier{Name: unistring.NewFromString(spreadName), Idx: arg.Idx0()},
						LeftParenthesis:  arg.Idx0(),
						ArgumentList:     []ast.Expression{arg},
						RightParenthesis: arg.Idx0(),
					}
				}
			}
		}
		w.walkStruct(v.Elem())
	case reflect.Struct:
		if v.Type().PkgPath() == astPkg {
			w.walkStruct(v)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			w.walk(v.Index(i))
		}
	}
}

func (w *spreadRewriter) walkStruct(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).IsExported() {
			w.walk(v.Field(i))
		}
	}
}

// installSpreadGuard defines __gatehouse_spread on the global object,
// non-writable and non-configurable.
func (st *vmState) installSpreadGuard() {
	rt := st.rt
	limit := st.s.opts.maxSpreadProperties()
	fn := rt.ToValue(func(c goja.FunctionCall) goja.Value {
		v := c.Argument(0)
		n := 0
		switch x := v.(type) {
		case goja.String:
			n = x.Length()
		case *goja.Object:
			if x.ClassName() == "String" {
				n = st.str(x).Length()
			} else if x.ClassName() == "Array" {
				// Its length, not its key count: counting 2^18 keys
				// costs about as much as copying them.
				n = int(min(prop(x, "length").ToInteger(), 1<<32))
			} else {
				n = len(x.Keys()) + len(x.Symbols())
			}
		}
		if n > limit {
			panic(st.rangeError("object spread: %d properties exceed the spread limit (MaxArrayLength/4 = %d)", n, limit))
		}
		return v
	})
	if err := rt.GlobalObject().DefineDataProperty(spreadName, fn, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
		panic(err)
	}
}
