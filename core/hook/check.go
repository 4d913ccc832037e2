package hook

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// Bounds on what a decision may carry.
const (
	MaxLabels      = 32
	MaxLabelKey    = 64
	MaxLabelValue  = 256
	MaxRejectBody  = 4 << 10
	MaxHeaderValue = 8 << 10
	MaxPath        = 8 << 10
	MaxRateKey     = 256
	MaxCost        = 1 << 20
)

// reserved headers no hook may set or remove: hop-by-hop fields, framing,
// and the gateway's own.
var reserved = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "X-Request-Id": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true,
	"X-Forwarded-Host": true,
}

func checkReject(r *sdk.Reject) error {
	if r == nil {
		return nil
	}
	if r.Status < 400 || r.Status > 599 {
		return fmt.Errorf("reject status %d outside 400..599", r.Status)
	}
	if len(r.Body) > MaxRejectBody {
		return fmt.Errorf("reject body of %d bytes over %d", len(r.Body), MaxRejectBody)
	}
	for k, v := range r.Header {
		if err := checkHeader(k, v, false); err != nil {
			return fmt.Errorf("reject: %w", err)
		}
	}
	return nil
}

func checkShape(d *sdk.ShapeDecision) error {
	if err := checkReject(d.Reject); err != nil {
		return err
	}
	if !d.Priority.Valid() {
		return fmt.Errorf("priority %d out of range", d.Priority)
	}
	if len(d.RateKey) > MaxRateKey {
		return fmt.Errorf("rate key of %d bytes over %d", len(d.RateKey), MaxRateKey)
	}
	if d.Cost < 0 || d.Cost > MaxCost {
		return fmt.Errorf("cost %d outside 0..%d", d.Cost, MaxCost)
	}
	return nil
}

func checkRoute(d *sdk.RouteDecision, exists func(string) bool, limit time.Duration, allowHost bool) error {
	if d.Service != "" && (exists == nil || !exists(d.Service)) {
		return fmt.Errorf("unknown service %q", d.Service)
	}
	if d.Path != "" {
		if d.Path[0] != '/' || len(d.Path) > MaxPath || strings.ContainsAny(d.Path, " \r\n\x00?#") {
			return fmt.Errorf("path %q must start with / and hold no spaces, controls, query or fragment", d.Path)
		}
	}
	if d.Timeout < 0 {
		return fmt.Errorf("negative timeout %s", d.Timeout)
	}
	if d.Timeout > 0 && d.Timeout > limit {
		return fmt.Errorf("timeout %s would loosen the current %s", d.Timeout, limit)
	}
	for k, v := range d.SetHeader {
		if err := checkHeader(k, v, allowHost); err != nil {
			return err
		}
	}
	for _, k := range d.RemoveHeader {
		if err := checkHeader(k, "", allowHost); err != nil {
			return err
		}
	}
	return nil
}

func checkResponseEdits(set map[string]string, remove []string) error {
	for k, v := range set {
		if err := checkHeader(k, v, false); err != nil {
			return err
		}
	}
	for _, k := range remove {
		if err := checkHeader(k, "", false); err != nil {
			return err
		}
	}
	return nil
}

// checkHeader refuses reserved, internal or malformed header edits.
func checkHeader(name, value string, allowHost bool) error {
	if name == "" || !validToken(name) {
		return fmt.Errorf("invalid header name %q", name)
	}
	c := http.CanonicalHeaderKey(name)
	if reserved[c] {
		return fmt.Errorf("header %s is reserved", c)
	}
	if c == "Host" && !allowHost {
		return fmt.Errorf("Host rewrite is not allowed on this binding")
	}
	if strings.HasPrefix(c, "X-Gatehouse-") {
		return fmt.Errorf("header %s is the gateway's own", c)
	}
	if len(value) > MaxHeaderValue || strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("invalid value for header %s", c)
	}
	return nil
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// mergeLabels adds a decision's labels to the request, within the bounds.
func mergeLabels(req *sdk.Request, labels map[string]string) error {
	if len(labels) == 0 {
		return nil
	}
	for k, v := range labels {
		if k == "" || len(k) > MaxLabelKey || len(v) > MaxLabelValue {
			return fmt.Errorf("label %.80q: key 1..%d bytes, value up to %d", k, MaxLabelKey, MaxLabelValue)
		}
	}
	if req.Labels == nil {
		req.Labels = make(map[string]string, len(labels))
	}
	for k, v := range labels {
		if _, ok := req.Labels[k]; !ok && len(req.Labels) >= MaxLabels {
			return fmt.Errorf("more than %d labels", MaxLabels)
		}
		req.Labels[k] = v
	}
	return nil
}
