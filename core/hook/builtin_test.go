package hook

import (
	"context"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/sdk"
)

// TestGoHookConfigIsStrict pins the bug where the compiled-in hooks read
// their config loosely: an unknown key ({name: X-Key} for header) was
// ignored, and response_headers with set: 5 was accepted and set nothing.
// Each refusal names the key.
func TestGoHookConfigIsStrict(t *testing.T) {
	for _, tc := range []struct {
		hook string
		cfg  map[string]any
		want []string // in the error
	}{
		{"require_header", map[string]any{"name": "X-Key"}, []string{"require_header", "config.name", "unknown key", "header, status, body"}},
		{"require_header", map[string]any{"header": "X-Key", "token": "t", "bogus": 1}, []string{"config.bogus, config.token", "unknown keys"}},
		{"require_header", map[string]any{}, []string{"config.header is required"}},
		{"require_header", map[string]any{"header": 7}, []string{"config.header must be a string", "number 7"}},
		{"require_header", map[string]any{"header": "X Key"}, []string{"config.header", "not a valid header name"}},
		{"require_header", map[string]any{"header": "X-Key", "status": "403"}, []string{"config.status must be an integer", `string "403"`}},
		{"require_header", map[string]any{"header": "X-Key", "status": 4.5}, []string{"config.status must be an integer"}},
		{"require_header", map[string]any{"header": "X-Key", "status": 200}, []string{"config.status = 200", "400..599"}},
		{"require_header", map[string]any{"header": "X-Key", "body": []any{"x"}}, []string{"config.body must be a string", "a list"}},
		{"response_headers", map[string]any{"set": 5}, []string{"response_headers", "config.set must be a map", "number 5"}},
		{"response_headers", map[string]any{"set": map[string]any{"X-A": 1}}, []string{"config.set.X-A must be a string"}},
		{"response_headers", map[string]any{"set": map[string]any{}}, []string{"config.set is empty"}},
		{"response_headers", nil, []string{"config.set is required"}},
		{"response_headers", map[string]any{"set": map[string]any{"X-A": "b"}, "remove": []any{"Server"}}, []string{"config.remove", "unknown key", "takes set"}},
		{"response_headers", map[string]any{"set": map[string]any{"Connection": "close"}}, []string{"config.set", "reserved"}},
	} {
		_, err := NewGo(tc.hook, tc.cfg)
		if err == nil {
			t.Errorf("%s %v: accepted", tc.hook, tc.cfg)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s %v: error %q lacks %q", tc.hook, tc.cfg, err, w)
			}
		}
	}
}

// TestGoHookConfigAccepted checks that well-formed configs still build
// hooks that do what they say, including a status given as a whole
// float64 (a config built from JSON).
func TestGoHookConfigAccepted(t *testing.T) {
	impl, err := NewGo("require_header", map[string]any{"header": "X-Key", "status": float64(403), "body": "no key\n"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := impl.(sdk.Validator).Validate(context.Background(), &sdk.Request{Header: sdk.Header{}})
	if err != nil || d.Reject == nil || d.Reject.Status != 403 || d.Reject.Body != "no key\n" {
		t.Fatalf("require_header without the header: %+v %v", d.Reject, err)
	}
	impl, err = NewGo("response_headers", map[string]any{"set": map[string]any{"X-Frame-Options": "DENY"}})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := impl.(sdk.Responder).Respond(context.Background(), &sdk.Request{}, &sdk.Response{})
	if err != nil || rd.SetHeader["X-Frame-Options"] != "DENY" {
		t.Fatalf("response_headers: %+v %v", rd, err)
	}
}

// TestCheckPhases pins the bug where response_headers (respond only) bound
// with phases: [validate] was accepted and then never ran.
func TestCheckPhases(t *testing.T) {
	rh, err := NewGo("response_headers", map[string]any{"set": map[string]any{"X-A": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	err = CheckPhases("response_headers", rh, sdk.PhaseSetOf(sdk.PhaseValidate, sdk.PhaseRespond))
	if err == nil || !strings.Contains(err.Error(), `"response_headers" does not implement validate (it implements respond)`) {
		t.Fatalf("validate on response_headers: %v", err)
	}
	for _, ok := range []sdk.PhaseSet{0, sdk.PhaseSetOf(sdk.PhaseRespond)} {
		if err := CheckPhases("response_headers", rh, ok); err != nil {
			t.Errorf("phases %s: %v", ok, err)
		}
	}
}
