// Package failure names every way a request can end and maps each to one
// HTTP status. A failure says where it came from (client, core, hook,
// upstream), what kind it is, and whether retrying it is safe; Status is the
// only function in the gateway that turns an outcome into a status code.
package failure

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the outcome of a request: success or one named exit. It is the
// metric label, the log field and the span status.
type Kind uint8

// The outcomes. Append new kinds before numKinds and give each a name and a
// status in the tables below; a test checks that none is missing.
const (
	Success Kind = iota
	ClientGone
	HeaderTimeout
	HeaderTooLarge
	Malformed
	BodyTooLarge
	BodyTooSlow
	ClientTooSlow
	NoRoute
	NoEndpoint
	Overloaded
	Shed
	RateLimited
	Rejected
	HookFailed
	DeadlineExceeded
	DeadlineTooShort
	ConnectTimeout
	ConnectRefused
	ConnectFailed
	UpstreamHeaderTimeout
	UpstreamReset
	UpstreamMalformed
	UpstreamTooSlow
	UpstreamBodyTooLarge
	ShuttingDown
	Internal
	numKinds
)

var names = [numKinds]string{
	Success:               "success",
	ClientGone:            "client_gone",
	HeaderTimeout:         "header_timeout",
	HeaderTooLarge:        "header_too_large",
	Malformed:             "malformed",
	BodyTooLarge:          "body_too_large",
	BodyTooSlow:           "body_too_slow",
	ClientTooSlow:         "client_too_slow",
	NoRoute:               "no_route",
	NoEndpoint:            "no_endpoint",
	Overloaded:            "overloaded",
	Shed:                  "shed",
	RateLimited:           "rate_limited",
	Rejected:              "rejected",
	HookFailed:            "hook_failed",
	DeadlineExceeded:      "deadline_exceeded",
	DeadlineTooShort:      "deadline_too_short",
	ConnectTimeout:        "connect_timeout",
	ConnectRefused:        "connect_refused",
	ConnectFailed:         "connect_failed",
	UpstreamHeaderTimeout: "upstream_header_timeout",
	UpstreamReset:         "upstream_reset",
	UpstreamMalformed:     "upstream_malformed",
	UpstreamTooSlow:       "upstream_too_slow",
	UpstreamBodyTooLarge:  "upstream_body_too_large",
	ShuttingDown:          "shutting_down",
	Internal:              "internal",
}

// StatusClientClosed is the non-standard status logged for a client that
// went away before the response (nginx's 499); it is never sent.
const StatusClientClosed = 499

var statuses = [numKinds]int{
	Success:               200,
	ClientGone:            StatusClientClosed,
	HeaderTimeout:         408,
	HeaderTooLarge:        431,
	Malformed:             400,
	BodyTooLarge:          413,
	BodyTooSlow:           408,
	ClientTooSlow:         408,
	NoRoute:               404,
	NoEndpoint:            503,
	Overloaded:            503,
	Shed:                  503,
	RateLimited:           429,
	Rejected:              403,
	HookFailed:            500,
	DeadlineExceeded:      504,
	DeadlineTooShort:      504,
	ConnectTimeout:        504,
	ConnectRefused:        502,
	ConnectFailed:         502,
	UpstreamHeaderTimeout: 504,
	UpstreamReset:         502,
	UpstreamMalformed:     502,
	UpstreamTooSlow:       502,
	UpstreamBodyTooLarge:  502,
	ShuttingDown:          503,
	Internal:              500,
}

// Kinds returns every outcome, in order.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// String returns the outcome's name, for example "connect_timeout".
func (k Kind) String() string {
	if k < numKinds {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the outcome with the given name.
func ParseKind(s string) (Kind, bool) {
	for i, n := range names {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Status maps an outcome to the HTTP status sent to the client (or, for
// ClientGone, logged). Rejected and HookFailed carry their own status on the
// Error; Status gives their defaults.
func Status(k Kind) int {
	if k < numKinds {
		return statuses[k]
	}
	return 500
}

// Source says whose fault a failure is.
type Source uint8

// Sources of failure.
const (
	SourceCore Source = iota
	SourceClient
	SourceHook
	SourceUpstream
)

var sourceNames = [...]string{"core", "client", "hook", "upstream"}

// String returns the source's name.
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// SourceOf returns where an outcome comes from.
func SourceOf(k Kind) Source {
	switch k {
	case ClientGone, HeaderTimeout, HeaderTooLarge, Malformed, BodyTooLarge, BodyTooSlow, ClientTooSlow:
		return SourceClient
	case Rejected, HookFailed:
		return SourceHook
	case ConnectTimeout, ConnectRefused, ConnectFailed, UpstreamHeaderTimeout, UpstreamReset,
		UpstreamMalformed, UpstreamTooSlow, UpstreamBodyTooLarge:
		return SourceUpstream
	}
	return SourceCore
}

// Error is the gateway's one error type. Msg names the limit and the knob
// where one was hit: `route "api": upstream response header timeout
// (limits.upstream.header_timeout = 2s) exceeded`.
type Error struct {
	Kind Kind
	// Status overrides Status(Kind) when non-zero (a hook's reject status).
	Status int
	// Retryable is true when the request provably did not reach the
	// endpoint's application (connect failures), so any method may be retried.
	Retryable bool
	Msg       string
	Err       error
}

// New returns an Error of the given kind.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error of the given kind that wraps err.
func Wrap(k Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: k, Err: err, Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus is the status to send for this error.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return Status(e.Kind)
}

// KindOf returns the outcome of err: its Kind when it is (or wraps) an
// *Error, Success for nil, Internal otherwise.
func KindOf(err error) Kind {
	if err == nil {
		return Success
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}

// As returns err as an *Error, wrapping anything else as Internal.
func As(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return &Error{Kind: Internal, Err: err}
}
