package hook

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gatehouse/gatehouse/sdk"
)

// GoFactory builds a compiled-in Go hook from its binding's configuration.
type GoFactory func(config map[string]any) (any, error)

var (
	goMu    sync.RWMutex
	goHooks = map[string]GoFactory{}
)

// RegisterGo makes a compiled-in Go hook available by name. Registering a
// name twice is a programming error and panics.
func RegisterGo(name string, f GoFactory) {
	goMu.Lock()
	defer goMu.Unlock()
	if _, dup := goHooks[name]; dup {
		panic("hook: Go hook " + strconv.Quote(name) + " registered twice")
	}
	goHooks[name] = f
}

// NewGo builds the compiled-in hook called name.
func NewGo(name string, config map[string]any) (any, error) {
	goMu.RLock()
	f, ok := goHooks[name]
	goMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("no compiled-in hook %q (known: %v)", name, GoNames())
	}
	return f(config)
}

// GoNames lists the compiled-in hooks, sorted.
func GoNames() []string {
	goMu.RLock()
	defer goMu.RUnlock()
	out := make([]string, 0, len(goHooks))
	for n := range goHooks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func init() {
	RegisterGo("require_header", newRequireHeader)
	RegisterGo("response_headers", newResponseHeaders)
}

// requireHeader rejects requests that lack a header (validate phase).
// Config: header (required, a header name), status (an integer in
// 400..599, default 401), body (a string, default "missing <header>").
// Any other key is an error.
type requireHeader struct {
	header string
	reject sdk.Reject
}

func newRequireHeader(cfg map[string]any) (any, error) {
	const name = "require_header"
	if err := checkConfigKeys(name, cfg, "header", "status", "body"); err != nil {
		return nil, err
	}
	h, ok, err := configString(name, cfg, "header")
	if err != nil {
		return nil, err
	}
	if !ok || h == "" {
		return nil, fmt.Errorf("%s: config.header is required (the header a request must carry)", name)
	}
	if !validToken(h) {
		return nil, fmt.Errorf("%s: config.header %q is not a valid header name", name, h)
	}
	r := &requireHeader{header: h, reject: sdk.Reject{Status: 401, Body: "missing " + h + "\n"}}
	if s, ok, err := configInt(name, cfg, "status"); err != nil {
		return nil, err
	} else if ok {
		if s < 400 || s > 599 {
			return nil, fmt.Errorf("%s: config.status = %d is outside 400..599", name, s)
		}
		r.reject.Status = s
	}
	if b, ok, err := configString(name, cfg, "body"); err != nil {
		return nil, err
	} else if ok {
		r.reject.Body = b
	}
	if err := checkReject(&r.reject); err != nil {
		return nil, fmt.Errorf("%s: config: %w", name, err)
	}
	return r, nil
}

func (r *requireHeader) Validate(_ context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	if req.Header.Get(r.header) == "" {
		rej := r.reject
		return sdk.ValidateDecision{Reject: &rej}, nil
	}
	return sdk.ValidateDecision{}, nil
}

// responseHeaders sets fixed response headers (respond phase), for example
// security headers. Config: set (required, a non-empty map of header name
// to string value). Any other key is an error.
type responseHeaders struct{ set map[string]string }

func newResponseHeaders(cfg map[string]any) (any, error) {
	const name = "response_headers"
	if err := checkConfigKeys(name, cfg, "set"); err != nil {
		return nil, err
	}
	v, ok := cfg["set"]
	if !ok {
		return nil, fmt.Errorf("%s: config.set is required (a map of header name to value)", name)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: config.set must be a map of header name to value, got %s", name, describe(v))
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%s: config.set is empty: the hook would set no header", name)
	}
	set := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: config.set.%s must be a string, got %s", name, k, describe(v))
		}
		set[k] = s
	}
	if err := checkResponseEdits(set, nil); err != nil {
		return nil, fmt.Errorf("%s: config.set: %w", name, err)
	}
	return &responseHeaders{set: set}, nil
}

func (r *responseHeaders) Respond(context.Context, *sdk.Request, *sdk.Response) (sdk.RespondDecision, error) {
	return sdk.RespondDecision{SetHeader: r.set}, nil
}

func fmtAny(v any) string { return fmt.Sprint(v) }

// checkConfigKeys refuses the keys of a Go hook's config that the hook does
// not read: a misspelt key would otherwise be ignored and the hook would
// run on its defaults. The error names every unknown key.
func checkConfigKeys(hook string, cfg map[string]any, known ...string) error {
	var unknown []string
	for k := range cfg {
		if !slices.Contains(known, k) {
			unknown = append(unknown, "config."+k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	what := "unknown key"
	if len(unknown) > 1 {
		what = "unknown keys"
	}
	return fmt.Errorf("%s: %s: %s (%s takes %s)", hook, strings.Join(unknown, ", "), what, hook, strings.Join(known, ", "))
}

// configString returns cfg[key] when it is set, and an error naming the
// key when it is not a string.
func configString(hook string, cfg map[string]any, key string) (string, bool, error) {
	v, ok := cfg[key]
	if !ok {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, fmt.Errorf("%s: config.%s must be a string, got %s", hook, key, describe(v))
	}
	return s, true, nil
}

// configInt returns cfg[key] when it is set, and an error naming the key
// when it is not an integer. YAML gives int; configs built from JSON give
// float64, accepted when it holds a whole number.
func configInt(hook string, cfg map[string]any, key string) (int, bool, error) {
	v, ok := cfg[key]
	if !ok {
		return 0, false, nil
	}
	switch n := v.(type) {
	case int:
		return n, true, nil
	case int64:
		if n == int64(int(n)) {
			return int(n), true, nil
		}
	case uint64:
		if n <= math.MaxInt32 {
			return int(n), true, nil
		}
	case float64:
		if n == math.Trunc(n) && math.Abs(n) <= math.MaxInt32 {
			return int(n), true, nil
		}
	}
	return 0, false, fmt.Errorf("%s: config.%s must be an integer, got %s", hook, key, describe(v))
}

// describe names a config value's kind and shows it, for errors.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "nothing (null)"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case int, int64, uint64, float64:
		return fmt.Sprintf("the number %v", v)
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

// CheckPhases refuses a binding's phases that impl does not implement: the
// binding would never run the hook there (response_headers bound to
// validate runs nowhere). An empty set asks for every phase the hook has,
// and always passes.
func CheckPhases(name string, impl any, phases sdk.PhaseSet) error {
	has := sdk.PhasesOf(impl)
	if missing := phases &^ has; !missing.Empty() {
		return fmt.Errorf("hook %q does not implement %s (it implements %s)", name, missing, has)
	}
	return nil
}
