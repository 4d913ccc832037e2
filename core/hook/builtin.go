package hook

import (
	"context"
	"fmt"
	"sort"
	"strconv"
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
// Config: header (required), status (default 401), body.
type requireHeader struct {
	header string
	reject sdk.Reject
}

func newRequireHeader(cfg map[string]any) (any, error) {
	h, _ := cfg["header"].(string)
	if h == "" {
		return nil, fmt.Errorf("require_header: config.header is required")
	}
	r := &requireHeader{header: h, reject: sdk.Reject{Status: 401, Body: "missing " + h + "\n"}}
	if s, ok := cfg["status"].(int); ok {
		r.reject.Status = s
	}
	if b, ok := cfg["body"].(string); ok {
		r.reject.Body = b
	}
	if err := checkReject(&r.reject); err != nil {
		return nil, fmt.Errorf("require_header: %w", err)
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
// security headers. Config: set (a map of header to value).
type responseHeaders struct{ set map[string]string }

func newResponseHeaders(cfg map[string]any) (any, error) {
	set := map[string]string{}
	m, _ := cfg["set"].(map[string]any)
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("response_headers: set.%s must be a string", k)
		}
		set[k] = s
	}
	if err := checkResponseEdits(set, nil); err != nil {
		return nil, fmt.Errorf("response_headers: %w", err)
	}
	return &responseHeaders{set: set}, nil
}

func (r *responseHeaders) Respond(context.Context, *sdk.Request, *sdk.Response) (sdk.RespondDecision, error) {
	return sdk.RespondDecision{SetHeader: r.set}, nil
}

func fmtAny(v any) string { return fmt.Sprint(v) }
