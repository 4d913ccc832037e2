package sdk

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reject tells the core to answer the request itself instead of forwarding it.
type Reject struct {
	// Status is the HTTP status to send; the core accepts 400..599 only.
	Status int
	// Header holds extra response header fields. Reserved and hop-by-hop
	// names are refused by the core.
	Header map[string]string
	// Body is a short response body; the core bounds its size.
	Body string
}

// Priority is a traffic tier assigned by the shape phase. Admission sheds the
// lowest tier first. The zero value means "unset": the route's default applies.
type Priority int8

// The priority tiers, lowest first.
const (
	// PriorityUnset leaves the route's default priority in place.
	PriorityUnset Priority = 0
	// PriorityBulk is background and batch traffic, shed first.
	PriorityBulk Priority = 1
	// PriorityDegraded is traffic that may be served late or partially.
	PriorityDegraded Priority = 2
	// PriorityDefault is ordinary interactive traffic.
	PriorityDefault Priority = 3
	// PriorityCritical is traffic shed last (logins, payments, health).
	PriorityCritical Priority = 4
)

var priorityNames = [...]string{"unset", "bulk", "degraded", "default", "critical"}

// String returns the tier's name: "unset", "bulk", "degraded", "default" or
// "critical".
func (p Priority) String() string {
	if p >= 0 && int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

// Valid reports whether p is unset or one of the four tiers.
func (p Priority) Valid() bool { return p >= PriorityUnset && p <= PriorityCritical }

// ParsePriority returns the tier named s (case-insensitive; "" means unset).
func ParsePriority(s string) (Priority, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return PriorityUnset, nil
	}
	for i, n := range priorityNames {
		if n == t {
			return Priority(i), nil
		}
	}
	return 0, fmt.Errorf("sdk: unknown priority %q (want bulk, degraded, default or critical)", s)
}

// ValidateDecision is the result of the validate phase. The zero value
// allows the request and adds no label.
type ValidateDecision struct {
	// Reject, when non-nil, ends the request with the given response.
	Reject *Reject
	// Labels are added to the request's labels for later phases and logs.
	Labels map[string]string
}

// ShapeDecision is the result of the shape phase. The zero value keeps the
// route's defaults.
type ShapeDecision struct {
	// Reject, when non-nil, ends the request with the given response.
	Reject *Reject
	// Priority is the request's tier; PriorityUnset keeps the route default.
	Priority Priority
	// RateKey names the rate-limit bucket the request is counted in; "" uses
	// the route's default key.
	RateKey string
	// Cost is how many tokens the request takes from its bucket; 0 means 1.
	// The core refuses a negative cost.
	Cost int
	// Labels are added to the request's labels.
	Labels map[string]string
}

// RouteDecision is the result of the route phase. The zero value keeps the
// matched route's target unchanged.
type RouteDecision struct {
	// Service, when not "", replaces the route's service; it must name a
	// configured service.
	Service string
	// Path, when not "", replaces the path sent upstream. It must start
	// with "/".
	Path string
	// SetHeader sets request header fields sent upstream (replacing any
	// values). Reserved and hop-by-hop names are refused.
	SetHeader map[string]string
	// RemoveHeader removes request header fields sent upstream.
	RemoveHeader []string
	// Timeout, when > 0, is the upstream timeout for this request. It may
	// only tighten the route's bound; a longer value is refused.
	Timeout time.Duration
	// Labels are added to the request's labels.
	Labels map[string]string
}

// RespondDecision is the result of the respond phase: edits of the response
// header fields sent to the client. The zero value changes nothing.
type RespondDecision struct {
	// SetHeader sets response header fields (replacing any values).
	// Protected names (hop-by-hop, Content-Length, internal) are refused.
	SetHeader map[string]string
	// RemoveHeader removes response header fields.
	RemoveHeader []string
}
