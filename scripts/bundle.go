package scripts

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/parser"
)

// Bundle limits: a bundle is source code written by people, not data.
const (
	maxFileBytes   = 1 << 20 // largest source file in a bundle
	maxBundleFiles = 64      // most modules in a bundle
)

// forbidden are globals that exist in browsers or Node but not here. A
// script that mentions one is refused at load, before it can fail at run time.
var forbidden = map[string]string{
	"fetch":          "no network",
	"XMLHttpRequest": "no network",
	"WebSocket":      "no network",
	"setTimeout":     "no timers",
	"setInterval":    "no timers",
	"setImmediate":   "no timers",
	"clearTimeout":   "no timers",
	"clearInterval":  "no timers",
	"queueMicrotask": "no timers",
}

// module is one compiled file of a bundle.
type module struct {
	key      string            // slash path relative to the bundle root, e.g. "lib/sign.js"
	file     string            // display path, used in errors and stack traces
	prg      *goja.Program     // evaluates to the CommonJS wrapper function
	requires map[string]string // require argument -> module key
	src      []byte            // the bytes compiled, hashed into the version ID
}

// bundle is the immutable, compiled source of one script version.
type bundle struct {
	root   string // directory of the bundle (of the file, for a single file)
	single bool   // a single file: require is refused
	main   string // key of the entry module
	mods   map[string]*module
	id     string // first 12 hex digits of the xxhash of every file
	cases  string // path of the bundle's own cases file, "" when none
}

// loadBundle reads, checks and compiles the script at p: a .js file, or a
// directory with an index.js and the modules it requires.
func loadBundle(p string) (*bundle, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, &LoadError{File: p, Msg: err.Error()}
	}
	b := &bundle{mods: map[string]*module{}}
	if fi.IsDir() {
		b.root, b.main = p, "index.js"
		if c := filepath.Join(p, "cases.yaml"); fileExists(c) {
			b.cases = c
		}
	} else {
		b.root, b.main, b.single = filepath.Dir(p), filepath.Base(p), true
		if c := strings.TrimSuffix(p, filepath.Ext(p)) + ".cases.yaml"; fileExists(c) {
			b.cases = c
		}
	}
	realRoot, err := filepath.EvalSymlinks(b.root)
	if err != nil {
		return nil, &LoadError{File: p, Msg: err.Error()}
	}
	h := xxhash.New()
	queue := []string{b.main}
	for len(queue) > 0 {
		key := queue[0]
		queue = queue[1:]
		if b.mods[key] != nil {
			continue
		}
		if len(b.mods) >= maxBundleFiles {
			return nil, &LoadError{File: p, Msg: fmt.Sprintf("bundle has more than %d modules", maxBundleFiles)}
		}
		m, err := b.compile(key, realRoot)
		if err != nil {
			return nil, err
		}
		b.mods[key] = m
		for _, dep := range m.requires {
			queue = append(queue, dep)
		}
	}
	keys := make([]string, 0, len(b.mods))
	for k := range b.mods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The ID hashes the bytes that were compiled, not a second read of the
	// files: an edit between the two would give this program the new
	// content's ID, and the next reload would take the new content for the
	// version already serving.
	for _, k := range keys {
		src := b.mods[k].src
		fmt.Fprintf(h, "%s\x00%d\x00", k, len(src))
		h.Write(src)
	}
	b.id = fmt.Sprintf("%016x", h.Sum64())[:12]
	return b, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// compile reads, checks and compiles one module of the bundle.
func (b *bundle) compile(key, realRoot string) (*module, error) {
	full := filepath.Join(b.root, filepath.FromSlash(key))
	display := full
	m := &module{key: key, file: display, requires: map[string]string{}}
	// A symbolic link must not lead out of the bundle.
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return nil, &LoadError{File: display, Msg: err.Error()}
	}
	if rel, err := filepath.Rel(realRoot, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, &LoadError{File: display, Msg: "resolves outside the bundle directory"}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, &LoadError{File: display, Msg: err.Error()}
	}
	if !fi.Mode().IsRegular() {
		return nil, &LoadError{File: display, Msg: "not a regular file"}
	}
	if fi.Size() > maxFileBytes {
		return nil, &LoadError{File: display, Msg: fmt.Sprintf("file is %d bytes, more than the %d allowed", fi.Size(), maxFileBytes)}
	}
	srcBytes, err := os.ReadFile(real)
	if err != nil {
		return nil, &LoadError{File: display, Msg: err.Error()}
	}
	m.src = srcBytes
	src := string(srcBytes)
	if strings.HasSuffix(key, ".json") {
		if !json.Valid(srcBytes) {
			return nil, &LoadError{File: display, Msg: "invalid JSON"}
		}
		src = "module.exports = " + src + ";"
	}
	wrapped := wrapPrefix + src + "\n})"
	prg, err := parser.ParseFile(nil, display, wrapped, 0, parser.WithDisableSourceMaps)
	if err != nil {
		return nil, parseErr(display, err)
	}
	c := &checker{b: b, m: m, f: prg.File, seen: map[uintptr]bool{}, calls: map[*ast.Identifier]bool{}}
	c.walk(reflect.ValueOf(prg))
	if c.err != nil {
		return nil, c.err
	}
	if err := guardConcat(prg, prg.File, display); err != nil {
		return nil, err
	}
	guardSpread(prg)
	m.prg, err = goja.CompileAST(prg, false)
	if err != nil {
		var ce *goja.CompilerSyntaxError
		if ok := asCompilerErr(err, &ce); ok && ce.File != nil {
			pos := ce.File.Position(ce.Offset)
			l, col := unwrapPos(pos.Line, pos.Column)
			return nil, &LoadError{File: display, Line: l, Column: col, Msg: "SyntaxError: " + ce.Message}
		}
		return nil, &LoadError{File: display, Msg: err.Error()}
	}
	return m, nil
}

func asCompilerErr(err error, target **goja.CompilerSyntaxError) bool {
	ce, ok := err.(*goja.CompilerSyntaxError)
	if ok {
		*target = ce
	}
	return ok
}

// checker walks a module's syntax tree for what a script may not do.
type checker struct {
	b     *bundle
	m     *module
	f     *file.File
	err   *LoadError
	seen  map[uintptr]bool
	calls map[*ast.Identifier]bool // require identifiers in call position
	inner bool                     // past the CommonJS wrapper function
}

var astPkg = reflect.TypeOf(ast.Program{}).PkgPath()

func (c *checker) fail(idx file.Idx, format string, args ...any) {
	if c.err != nil {
		return
	}
	pos := c.f.Position(int(idx) - c.f.Base())
	l, col := unwrapPos(pos.Line, pos.Column)
	c.err = &LoadError{File: c.m.file, Line: l, Column: col, Msg: fmt.Sprintf(format, args...)}
}

func (c *checker) walk(v reflect.Value) {
	if c.err != nil {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			c.walk(v.Elem())
		}
	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct || v.Elem().Type().PkgPath() != astPkg {
			return
		}
		if c.seen[v.Pointer()] {
			return
		}
		c.seen[v.Pointer()] = true
		if n, ok := v.Interface().(ast.Node); ok && !c.visit(n) {
			return
		}
		c.walkStruct(v.Elem())
	case reflect.Struct:
		if v.Type().PkgPath() == astPkg {
			c.walkStruct(v)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			c.walk(v.Index(i))
		}
	}
}

func (c *checker) walkStruct(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).IsExported() {
			c.walk(v.Field(i))
		}
	}
}

func (c *checker) node(n any) { c.walk(reflect.ValueOf(n)) }

// visit checks one node; false means its children were handled here.
func (c *checker) visit(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.FunctionLiteral:
		if !c.inner { // the wrapper: its parameters are ours, not the script's
			c.inner = true
			c.node(n.Body)
			return false
		}
	case *ast.CallExpression:
		if id, ok := n.Callee.(*ast.Identifier); ok && id.Name == "require" {
			c.calls[id] = true
			c.require(n)
		}
	case *ast.Identifier:
		name := n.Name.String()
		if why, bad := forbidden[name]; bad {
			c.fail(n.Idx, "%s is not available in gatehouse scripts (%s: a script is a pure function of the request)", name, why)
		} else if name == "require" && !c.calls[n] {
			c.fail(n.Idx, "require may only be called directly, with a relative path literal")
		}
	case *ast.NumberLiteral:
		if _, ok := n.Value.(*big.Int); ok {
			c.fail(n.Idx, "BigInt is not available in gatehouse scripts")
		}
	case *ast.DotExpression:
		c.node(n.Left)
		return false
	case *ast.PrivateDotExpression:
		c.node(n.Left)
		return false
	case *ast.PropertyKeyed:
		if n.Computed {
			c.node(n.Key)
		}
		c.node(n.Value)
		return false
	case *ast.PropertyShort:
		c.visit(&n.Name)
		c.node(n.Initializer)
		return false
	case *ast.MethodDefinition:
		if n.Computed {
			c.node(n.Key)
		}
		c.node(n.Body)
		return false
	case *ast.FieldDefinition:
		if n.Computed {
			c.node(n.Key)
		}
		c.node(n.Initializer)
		return false
	case *ast.LabelledStatement:
		c.node(n.Statement)
		return false
	case *ast.BranchStatement, *ast.MetaProperty:
		return false
	}
	return true
}

// require checks one require call and resolves it to a module of the bundle.
func (c *checker) require(call *ast.CallExpression) {
	at := call.Callee.Idx0()
	if c.b.single {
		c.fail(at, "require is only available in directory bundles (a directory with index.js)")
		return
	}
	if len(call.ArgumentList) != 1 {
		c.fail(at, "require takes one relative path literal")
		return
	}
	lit, ok := call.ArgumentList[0].(*ast.StringLiteral)
	if !ok {
		c.fail(at, "require takes a string literal (a relative path like './lib.js')")
		return
	}
	spec := lit.Value.String()
	if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
		c.fail(lit.Idx, "require(%s): only relative files of the bundle may be required; modules like 'fs' or 'http' do not exist here", strconv.Quote(spec))
		return
	}
	target := path.Clean(path.Join(path.Dir(c.m.key), spec))
	if target == ".." || strings.HasPrefix(target, "../") {
		c.fail(lit.Idx, "require(%s) leaves the bundle directory", strconv.Quote(spec))
		return
	}
	for _, cand := range []string{target, target + ".js", target + ".json", target + "/index.js"} {
		if fileExists(filepath.Join(c.b.root, filepath.FromSlash(cand))) {
			c.m.requires[spec] = cand
			return
		}
	}
	c.fail(lit.Idx, "require(%s): no such file in the bundle", strconv.Quote(spec))
}
