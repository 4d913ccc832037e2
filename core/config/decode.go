package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Load reads and validates the configuration file at path. Relative file
// paths in it (TLS certificates and keys, scripts, plugin binaries and
// their config files) are resolved against the file's directory, as ParseIn
// does with that directory. Errors in the file are returned together as
// Errors; a file that cannot be read gives the *fs.PathError of os.ReadFile.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseIn(filepath.Dir(path), path, data)
}

// Parse decodes and validates a configuration. source names the input in
// errors and becomes Config.Source; it is usually the file's path. On error
// the result is nil and the error is Errors holding every decoding and
// validation error, in line order. Relative file paths are kept as they
// are written: they are relative to the working directory.
func Parse(source string, data []byte) (*Config, error) {
	return ParseIn("", source, data)
}

// ParseIn is Parse for a configuration whose relative file paths are
// relative to dir, normally the directory of the file it was read from:
// each one is made absolute, before validation, against dir (made absolute
// itself) or, when it does not exist there but does in the working
// directory, against the working directory. Absolute paths are kept. With
// dir "", ParseIn is Parse.
func ParseIn(dir, source string, data []byte) (*Config, error) {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("config: the directory %s: %w", dir, err)
		}
		dir = abs
	}
	cfg := Default()
	cfg.Source = source
	d := &decoder{
		file: source,
		cfg:  cfg,
		pos:  make(map[string]position),
		bad:  make(map[string]bool),
	}
	if root := d.document(data); root != nil {
		d.value("", root, root, reflect.ValueOf(cfg).Elem())
	} else {
		d.bad[""] = true // nothing was decoded: validating the defaults would only add noise
	}
	cfg.pos = d.pos
	if dir != "" {
		cfg.resolvePaths(dir)
	}
	errs := d.errs
	for _, e := range cfg.validate() {
		if !d.hidden(e.Path) {
			errs = append(errs, e)
		}
	}
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// position is where a key (or a list item) is in the source.
type position struct{ line, col int }

// decoder walks a yaml.Node tree into a Config by reflection over the yaml
// struct tags, collecting every error instead of stopping at the first.
type decoder struct {
	file string
	cfg  *Config
	errs Errors
	// pos records the position of every key and list item seen, by path.
	pos map[string]position
	// bad holds the paths whose value could not be decoded; validation
	// errors at or below them are dropped, as the decode error already says it.
	bad map[string]bool
	// aliasDepth is how many aliases the value being decoded is under, and
	// aliasWork how many values were decoded under one. Aliases can make a
	// small file expand into a huge configuration; past maxAliasWork,
	// decoding stops. (Values not under an alias are bounded by the file's size.)
	aliasDepth, aliasWork int
}

// maxAliasWork bounds the values that aliases may expand to: far above what
// sharing a few blocks between services needs, far below what would take a
// noticeable time to decode.
const maxAliasWork = 1 << 17

var (
	durationType    = reflect.TypeFor[Duration]()
	sizeType        = reflect.TypeFor[Size]()
	rateType        = reflect.TypeFor[Rate]()
	configType      = reflect.TypeFor[Config]()
	serviceType     = reflect.TypeFor[Service]()
	routeType       = reflect.TypeFor[Route]()
	hookBindingType = reflect.TypeFor[HookBinding]()
	scriptType      = reflect.TypeFor[Script]()
	pluginType      = reflect.TypeFor[Plugin]()
	rateLimitType   = reflect.TypeFor[RateLimit]()
	freeMapType     = reflect.TypeFor[map[string]any]()
)

// document parses data as a single YAML document and returns its root, an
// empty mapping for an empty input, or nil after a syntax error.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeYAML(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &yaml.Node{Kind: yaml.MappingNode}
		}
		d.syntax(err)
		return nil
	}
	var extra yaml.Node
	switch err := decodeYAML(dec, &extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntax(err)
	default:
		d.add(&extra, "", "a configuration file holds exactly one YAML document; found another (remove the \"---\")")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode}
	}
	root := doc.Content[0]
	if r := resolve(root); r != nil && isNull(r) {
		return &yaml.Node{Kind: yaml.MappingNode} // "---" alone, or "~": an empty configuration
	}
	return root
}

// decodeYAML runs the YAML parser, turning a panic in it into an error: the
// input is untrusted and the parser is not ours.
func decodeYAML(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). With these, yaml.v3 v3.0.1 reports the line counted from 0 (the
// line where the construct being parsed began); scanner errors count from 1.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntax records a YAML syntax error, with its line when the parser gave one.
func (d *decoder) syntax(err error) {
	e := &Error{File: d.file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
		if yamlParserProblems[e.Msg] {
			e.Line++
		}
	}
	e.Msg = "invalid YAML: " + e.Msg
	d.errs = append(d.errs, e)
}

// add records an error at node at.
func (d *decoder) add(at *yaml.Node, path, msg string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: at.Line, Col: at.Column, Path: path, Msg: msg})
}

// fail records that the value at path could not be decoded.
func (d *decoder) fail(at *yaml.Node, path, format string, args ...any) {
	d.add(at, path, fmt.Sprintf(format, args...))
	d.bad[path] = true
}

// hidden reports whether path is at or below a path that failed to decode.
func (d *decoder) hidden(path string) bool {
	for {
		if d.bad[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = parentPath(path)
	}
}

// parentPath returns the path of the mapping or list holding path:
// "a.b[1].c" → "a.b[1]" → "a.b" → "a" → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// resolve follows aliases to the node they name; nil for a dangling alias.
func resolve(n *yaml.Node) *yaml.Node {
	for range 100 {
		if n == nil || n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" || n.Kind == 0
}

// describe names what n is, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return quote(n.Value)
	}
}

// value decodes n into v, which keeps its value (its default) when n is
// wrong. at is the node errors are reported at: the key of a mapping entry
// or the item of a list, so that every error about a key points at the key.
func (d *decoder) value(path string, at, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		d.aliasDepth++
		defer func() { d.aliasDepth-- }()
	}
	if d.aliasDepth > 0 {
		if d.aliasWork++; d.aliasWork > maxAliasWork {
			if d.aliasWork == maxAliasWork+1 {
				d.fail(at, path, "aliases expand to more than %d values; giving up", maxAliasWork)
				d.bad[""] = true
			}
			return
		}
	}
	if n = resolve(n); n == nil {
		d.fail(at, path, "unresolved alias")
		return
	}
	if isNull(n) {
		d.fail(at, path, "missing value")
		return
	}
	switch v.Type() {
	case durationType:
		decodeBound(d, path, at, n, v, "duration", ParseDuration)
		return
	case sizeType:
		decodeBound(d, path, at, n, v, "size", ParseSize)
		return
	case rateType:
		decodeBound(d, path, at, n, v, "rate", ParseRate)
		return
	case freeMapType:
		// Free-form configuration handed to a hook as it is written.
		if n.Kind != yaml.MappingNode {
			d.fail(at, path, "expected a mapping, got %s", describe(n))
			return
		}
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			d.fail(at, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(m))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if s, ok := d.scalar(path, at, n, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(path, at, n, "true or false"); ok {
			switch strings.ToLower(s) {
			case "true":
				v.SetBool(true)
			case "false":
				v.SetBool(false)
			default:
				d.fail(at, path, "expected true or false, got %s", quote(s))
			}
		}
	case reflect.Int:
		// Every integer in Config is a bound (a count), so it must be positive.
		if s, ok := d.scalar(path, at, n, "an integer"); ok {
			x, err := strconv.Atoi(s)
			switch {
			case errors.Is(err, strconv.ErrRange):
				d.fail(at, path, "integer %s out of range", quote(s))
			case err != nil || !allDigits(strings.TrimLeft(s, "+-")):
				d.fail(at, path, "expected an integer, got %s", quote(s))
			case x <= 0:
				d.fail(at, path, "must be a positive integer, got %s", quote(s))
			default:
				v.SetInt(int64(x))
			}
		}
	case reflect.Struct:
		d.mapping(path, at, n, v)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if v.Type().Elem() == durationType {
			// An optional duration (services[].slow_start): set only when valid.
			decodeBound(d, path, at, n, p.Elem(), "duration", ParseDuration)
			if p.Elem().Interface().(Duration) > 0 {
				v.Set(p)
			}
			return
		}
		if v.Type().Elem() == rateLimitType {
			p.Elem().Set(reflect.ValueOf(NewRateLimit(0)))
		}
		if d.mapping(path, at, n, p.Elem()) {
			v.Set(p)
		}
	case reflect.Slice:
		d.sequence(path, at, n, v)
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

// decodeBound decodes a Duration, Size or Rate, which must be positive.
func decodeBound[T Duration | Size | Rate](d *decoder, path string, at, n *yaml.Node, v reflect.Value,
	what string, parse func(string) (T, error)) {
	s, ok := d.scalar(path, at, n, "a "+what)
	if !ok {
		return
	}
	x, err := parse(s)
	switch {
	case err != nil:
		d.fail(at, path, "%v", err)
	case x <= 0:
		d.fail(at, path, "must be a positive %s, got %s", what, quote(s))
	default:
		v.Set(reflect.ValueOf(x))
	}
}

// scalar returns the text of scalar n, or reports that it is not one.
func (d *decoder) scalar(path string, at, n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(at, path, "expected %s, got %s", what, describe(n))
		return "", false
	}
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp", "!!merge":
		// The plain YAML types: the text is the value.
	default:
		// !!binary and custom tags would need a decoding the file does not say.
		d.fail(at, path, "unsupported tag %s", quote(tag))
		return "", false
	}
	if !utf8.ValidString(n.Value) {
		d.fail(at, path, "invalid UTF-8 in %s", quote(n.Value))
		return "", false
	}
	return n.Value, true
}

// mapping decodes mapping n into struct v, key by key, and reports whether
// n was a mapping.
func (d *decoder) mapping(path string, at, n *yaml.Node, v reflect.Value) bool {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			d.fail(at, path, "the top level must be a mapping of keys (%s), got %s",
				strings.Join(fieldNames(v.Type()), ", "), describe(n))
		} else {
			d.fail(at, path, "expected a mapping, got %s", describe(n))
		}
		return false
	}
	fields := structFields(v.Type())
	type entry struct {
		path     string
		key, val *yaml.Node
		field    int
	}
	var entries []entry
	first := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		rawKey, val := n.Content[i], n.Content[i+1]
		k := resolve(rawKey)
		switch {
		case k == nil || k.Kind != yaml.ScalarNode:
			what := "an alias"
			if k != nil {
				what = describe(k)
			}
			d.add(rawKey, path, "keys must be strings, got "+what)
			continue
		case k.ShortTag() == "!!merge":
			d.add(rawKey, path, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		name := k.Value
		if prev, dup := first[name]; dup {
			d.add(rawKey, path, fmt.Sprintf("duplicate key %s (first at line %d)", quote(name), prev.Line))
			continue
		}
		first[name] = rawKey
		f, ok := fields.index[name]
		if !ok {
			d.add(rawKey, path, unknownKey(name, fields.names))
			continue
		}
		kp := joinPath(path, name)
		d.pos[kp] = position{rawKey.Line, rawKey.Column}
		entries = append(entries, entry{kp, rawKey, val, f})
	}
	if v.Type() == configType {
		// Services and routes start from the global limits, so those are
		// decoded first wherever they are in the file.
		slices.SortStableFunc(entries, func(a, b entry) int {
			return boolRank(b.path == "limits") - boolRank(a.path == "limits")
		})
	}
	for _, e := range entries {
		d.value(e.path, e.key, e.val, v.Field(e.field))
	}
	return true
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sequence decodes list n into slice v; an empty list leaves v nil.
func (d *decoder) sequence(path string, at, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(at, path, "expected a list, got %s", describe(n))
		return
	}
	if len(n.Content) == 0 {
		v.SetZero()
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		ip := path + "[" + strconv.Itoa(i) + "]"
		d.pos[ip] = position{item.Line, item.Column}
		// Items are appended even when wrong, so that later paths keep the
		// index they have in the file.
		e := d.newItem(v.Type().Elem())
		d.value(ip, item, item, e)
		s = reflect.Append(s, e)
	}
	v.Set(s)
}

// newItem returns the value a list item starts from: services and routes
// inherit the global limits decoded so far (all of them: limits come first).
func (d *decoder) newItem(t reflect.Type) reflect.Value {
	e := reflect.New(t).Elem()
	switch t {
	case serviceType:
		e.Set(reflect.ValueOf(d.cfg.NewService("")))
	case routeType:
		e.Set(reflect.ValueOf(d.cfg.NewRoute("", "")))
	case hookBindingType:
		e.Set(reflect.ValueOf(NewHookBinding()))
	case scriptType:
		e.Set(reflect.ValueOf(NewScript("", "")))
	case pluginType:
		e.Set(reflect.ValueOf(NewPlugin("", "")))
	}
	return e
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknownKey says which key was meant, or which keys are allowed.
func unknownKey(name string, allowed []string) string {
	best, bestDist := "", len(name)+1
	for _, a := range allowed {
		if dist := editDistance(strings.ToLower(name), a); dist < bestDist {
			best, bestDist = a, dist
		}
	}
	if bestDist <= max(1, min(2, len(name)/3)) {
		return fmt.Sprintf("unknown key %s; did you mean %s?", quote(name), quote(best))
	}
	return fmt.Sprintf("unknown key %s; allowed keys: %s", quote(name), strings.Join(allowed, ", "))
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 {
		return len(a) // far from every key; and bounds the work
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// fieldSet is the yaml keys of a struct type, in declaration order.
type fieldSet struct {
	names []string
	index map[string]int
}

var fieldCache sync.Map // reflect.Type → *fieldSet

func structFields(t reflect.Type) *fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*fieldSet)
	}
	fs := &fieldSet{index: make(map[string]int)}
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			fs.names = append(fs.names, name)
			fs.index[name] = i
		}
	}
	fieldCache.Store(t, fs)
	return fs
}

func fieldNames(t reflect.Type) []string { return structFields(t).names }

// yamlName returns the key of field f, or "" when it has none.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}
