package scripts

import (
	"bytes"
	"context"
	"fmt"
	"net/textproto"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
	"gopkg.in/yaml.v3"
)

// A cases file holds test cases for a script, checked by RunCases, by
// `gatehouse script test` and by a Host before it swaps a new version in:
//
//	config:                  # optional: gatehouse.config for these cases
//	  hmacKey: test-key
//	cases:
//	  - name: no credentials are rejected
//	    request:             # every field optional
//	      method: GET        # default GET
//	      path: /api/users   # default /
//	      query: a=1&b=2     # raw query, no '?'
//	      headers: {Authorization: Bearer x, Accept: [a, b]}
//	      clientIP: 10.0.0.1
//	      tls: {version: TLS 1.3, serverName: api.example.com}
//	      route: api
//	      service: users
//	      labels: {tenant: acme}
//	      body: '{"a": 1}'
//	    response: {status: 200, headers: {Content-Type: text/html}}  # for respond
//	    expect:
//	      validate: {reject: {status: 401}}
//
// expect lists the phases to check. Phases run in order (validate, shape,
// route, respond), each seeing the labels and service the earlier ones set,
// as in the gateway; a reject stops the request, so a later phase in expect
// is reported as not reached. An expectation is a subset: only the fields
// it names are compared; null means "absent" (no reject, no such label, no
// priority). error: "text" expects the call to fail with an error
// containing text.

type casesFile struct {
	Config map[string]any `yaml:"config"`
	Cases  []scriptCase   `yaml:"cases"`
}

type scriptCase struct {
	Name     string                    `yaml:"name"`
	Request  caseRequest               `yaml:"request"`
	Response *caseResponse             `yaml:"response"`
	Expect   map[string]map[string]any `yaml:"expect"`
}

type caseRequest struct {
	ID            string            `yaml:"id"`
	Method        string            `yaml:"method"`
	Scheme        string            `yaml:"scheme"`
	Host          string            `yaml:"host"`
	Path          string            `yaml:"path"`
	Query         string            `yaml:"query"`
	Headers       map[string]values `yaml:"headers"`
	ClientIP      string            `yaml:"clientIP"`
	TLS           *caseTLS          `yaml:"tls"`
	Route         string            `yaml:"route"`
	Service       string            `yaml:"service"`
	Labels        map[string]string `yaml:"labels"`
	Body          *string           `yaml:"body"`
	BodyTruncated bool              `yaml:"bodyTruncated"`
}

type caseTLS struct {
	Version     string `yaml:"version"`
	ServerName  string `yaml:"serverName"`
	CipherSuite string `yaml:"cipherSuite"`
	ALPN        string `yaml:"alpn"`
	PeerSubject string `yaml:"peerSubject"`
}

type caseResponse struct {
	Status  int               `yaml:"status"`
	Headers map[string]values `yaml:"headers"`
}

// values is a header value: one string or a list.
type values []string

// UnmarshalYAML accepts a string or a list of strings.
func (v *values) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*v = l
		return nil
	}
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*v = values{s}
	return nil
}

func header(m map[string]values) sdk.Header {
	h := sdk.Header{}
	for k, vs := range m {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		h[ck] = append(h[ck], vs...)
	}
	return h
}

// CaseReport is the result of running a cases file.
type CaseReport struct {
	Path    string       // the cases file
	Version string       // the script version tested
	Cases   []CaseResult // one per case, in file order
	Passed  int
	Failed  int
}

// CaseResult is one case's result: its diffs, empty when it passed.
type CaseResult struct {
	Name  string
	Diffs []string // e.g. `validate.reject.status: got 403, want 401`
}

// OK reports whether every case passed.
func (r CaseReport) OK() bool { return r.Failed == 0 }

// String renders the report: one line per failed case and diff, then the
// totals ("N passed, M failed").
func (r CaseReport) String() string {
	var b strings.Builder
	for _, c := range r.Cases {
		if len(c.Diffs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "FAIL %s: %q\n", r.Path, c.Name)
		for _, d := range c.Diffs {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	fmt.Fprintf(&b, "%s (version %s): %d passed, %d failed", r.Path, r.Version, r.Passed, r.Failed)
	return b.String()
}

// RunCases runs the cases in casesPath against s. The error is for a file
// that cannot be read or parsed (unknown fields are errors, to catch typos);
// failing cases are in the report.
func RunCases(s *Script, casesPath string) (CaseReport, error) {
	rep := CaseReport{Path: casesPath, Version: s.ID()}
	raw, err := os.ReadFile(casesPath)
	if err != nil {
		return rep, err
	}
	var f casesFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return rep, fmt.Errorf("%s: %w", casesPath, err)
	}
	if len(f.Cases) == 0 {
		return rep, fmt.Errorf("%s: no cases", casesPath)
	}
	for i, c := range f.Cases {
		for ph := range c.Expect {
			if p, err := sdk.ParsePhase(ph); err != nil || p == sdk.PhaseObserve || p.String() != ph {
				return rep, fmt.Errorf("%s: case %d (%q): expect.%s: want validate, shape, route or respond", casesPath, i+1, c.Name, ph)
			}
		}
	}
	target := s
	if f.Config != nil {
		if target, err = s.withConfig(f.Config); err != nil {
			return rep, fmt.Errorf("%s: config: %w", casesPath, err)
		}
	}
	for i, c := range f.Cases {
		if c.Name == "" {
			c.Name = fmt.Sprintf("case %d", i+1)
		}
		res := CaseResult{Name: c.Name, Diffs: target.runCase(i, c)}
		if len(res.Diffs) == 0 {
			rep.Passed++
		} else {
			rep.Failed++
		}
		rep.Cases = append(rep.Cases, res)
	}
	return rep, nil
}

// runCase runs one case's phases and returns its diffs.
func (s *Script) runCase(i int, c scriptCase) []string {
	r := c.Request
	req := &sdk.Request{
		ID: r.ID, Method: r.Method, Scheme: r.Scheme, Host: r.Host, Path: r.Path, RawQuery: r.Query,
		Header: header(r.Headers), ClientIP: r.ClientIP, Route: r.Route, Service: r.Service,
		Labels: map[string]string{}, BodyTruncated: r.BodyTruncated,
	}
	if req.ID == "" {
		req.ID = fmt.Sprintf("case-%d", i+1)
	}
	if req.Method == "" {
		req.Method = "GET"
	}
	if req.Scheme == "" {
		req.Scheme = "http"
	}
	if req.Path == "" {
		req.Path = "/"
	}
	for k, v := range r.Labels {
		req.Labels[k] = v
	}
	if r.Body != nil {
		req.Body = []byte(*r.Body)
	}
	if r.TLS != nil {
		req.TLS = &sdk.TLSInfo{Version: r.TLS.Version, ServerName: r.TLS.ServerName, CipherSuite: r.TLS.CipherSuite, ALPN: r.TLS.ALPN, PeerSubject: r.TLS.PeerSubject}
	}
	resp := &sdk.Response{Status: 200, Header: sdk.Header{}}
	if c.Response != nil {
		if c.Response.Status != 0 {
			resp.Status = c.Response.Status
		}
		resp.Header = header(c.Response.Headers)
	}
	last := -1
	for ph := range c.Expect {
		p, _ := sdk.ParsePhase(ph)
		last = max(last, int(p))
	}
	var diffs []string
	stopped := ""
	for _, p := range sdk.Phases[:last+1] {
		want, expected := c.Expect[p.String()]
		if stopped != "" {
			if expected {
				diffs = append(diffs, fmt.Sprintf("%s: not reached (%s)", p, stopped))
			}
			continue
		}
		got, reject, err := s.callPhase(p, req, resp)
		if !expected {
			if err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v", p, err))
				stopped = p.String() + " failed"
			} else if reject != 0 {
				stopped = fmt.Sprintf("%s rejected with %d", p, reject)
			}
			continue
		}
		if w, ok := want["error"]; ok {
			switch {
			case err == nil:
				diffs = append(diffs, fmt.Sprintf("%s: got no error, want an error containing %q", p, w))
			case !strings.Contains(err.Error(), fmt.Sprint(w)):
				diffs = append(diffs, fmt.Sprintf("%s: got error %q, want one containing %q", p, err, w))
			}
			stopped = p.String() + " failed"
			continue
		}
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", p, err))
			stopped = p.String() + " failed"
			continue
		}
		diffs = append(diffs, compare(p.String(), got, want)...)
		if reject != 0 {
			stopped = fmt.Sprintf("%s rejected with %d", p, reject)
		}
	}
	return diffs
}

// callPhase runs one phase, applies its effects to req as the gateway would
// (labels, service) and returns the decision as a map.
func (s *Script) callPhase(p sdk.Phase, req *sdk.Request, resp *sdk.Response) (map[string]any, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	defer cancel()
	addLabels := func(l map[string]string) {
		for k, v := range l {
			req.Labels[k] = v
		}
	}
	switch p {
	case sdk.PhaseValidate:
		d, err := s.Validate(ctx, req)
		addLabels(d.Labels)
		return map[string]any{"reject": rejectMap(d.Reject), "labels": strMap(d.Labels)}, rejectStatus(d.Reject), err
	case sdk.PhaseShape:
		d, err := s.Shape(ctx, req)
		addLabels(d.Labels)
		m := map[string]any{"reject": rejectMap(d.Reject), "labels": strMap(d.Labels), "rateKey": d.RateKey, "cost": d.Cost, "priority": nil}
		if d.Priority != sdk.PriorityUnset {
			m["priority"] = d.Priority.String()
		}
		return m, rejectStatus(d.Reject), err
	case sdk.PhaseRoute:
		d, err := s.Route(ctx, req)
		addLabels(d.Labels)
		if d.Service != "" {
			req.Service = d.Service
		}
		m := map[string]any{"service": d.Service, "path": d.Path, "setHeader": strMap(d.SetHeader), "removeHeader": strList(d.RemoveHeader), "labels": strMap(d.Labels), "timeoutMs": nil}
		if d.Timeout > 0 {
			m["timeoutMs"] = float64(d.Timeout) / float64(time.Millisecond)
		}
		return m, 0, err
	case sdk.PhaseRespond:
		d, err := s.Respond(ctx, req, resp)
		return map[string]any{"setHeader": strMap(d.SetHeader), "removeHeader": strList(d.RemoveHeader)}, 0, err
	}
	return nil, 0, nil
}

func rejectStatus(r *sdk.Reject) int {
	if r == nil {
		return 0
	}
	return r.Status
}

func rejectMap(r *sdk.Reject) any {
	if r == nil {
		return nil
	}
	return map[string]any{"status": r.Status, "header": strMap(r.Header), "body": r.Body}
}

func strMap(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func strList(l []string) any {
	if len(l) == 0 {
		return nil
	}
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = v
	}
	return out
}

// isZero reports whether a decision field is absent or a zero value.
func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case int:
		return x == 0
	case float64:
		return x == 0
	}
	return false
}

// compare checks want as a subset of got and returns the differences with
// their paths.
func compare(path string, got any, want map[string]any) []string {
	g, _ := got.(map[string]any)
	var diffs []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := want[k]
		p := path + "." + k
		var gv any
		known := false
		if g != nil {
			gv, known = g[k]
		}
		if g != nil && !known {
			diffs = append(diffs, fmt.Sprintf("%s: no such field in a %s decision", p, strings.SplitN(path, ".", 2)[0]))
			continue
		}
		switch wv := w.(type) {
		case nil:
			if !isZero(gv) {
				diffs = append(diffs, fmt.Sprintf("%s: got %s, want none", p, show(gv)))
			}
		case map[string]any:
			if isZero(gv) {
				diffs = append(diffs, fmt.Sprintf("%s: got none, want %s", p, show(wv)))
				continue
			}
			if _, ok := gv.(map[string]any); !ok {
				diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", p, show(gv), show(wv)))
				continue
			}
			gm := gv.(map[string]any)
			// Maps of strings (labels, headers) compare by key; a null
			// wanted value means the key is absent.
			sub := map[string]any{}
			for kk, vv := range gm {
				sub[kk] = vv
			}
			for kk := range wv {
				if _, ok := sub[kk]; !ok {
					sub[kk] = nil
				}
			}
			diffs = append(diffs, compareLoose(p, sub, wv)...)
		default:
			if show(gv) != show(wv) {
				diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", p, show(gv), show(wv)))
			}
		}
	}
	return diffs
}

// compareLoose is compare without the unknown-field check (for maps whose
// keys are data, such as labels).
func compareLoose(path string, got map[string]any, want map[string]any) []string {
	var diffs []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := path + "." + k
		w, gv := want[k], got[k]
		switch wv := w.(type) {
		case nil:
			if !isZero(gv) {
				diffs = append(diffs, fmt.Sprintf("%s: got %s, want none", p, show(gv)))
			}
		case map[string]any:
			gm, _ := gv.(map[string]any)
			if gm == nil {
				diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", p, show(gv), show(wv)))
				continue
			}
			diffs = append(diffs, compareLoose(p, gm, wv)...)
		default:
			if show(gv) != show(wv) {
				diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", p, show(gv), show(wv)))
			}
		}
	}
	return diffs
}

// show renders a value for a diff.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "none"
	case string:
		return fmt.Sprintf("%q", x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ": " + show(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}
