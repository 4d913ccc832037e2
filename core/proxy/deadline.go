package proxy

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// TimeoutHeader carries a deadline as a relative value, both ways: a
// client may send it to tighten the route's deadline (never to loosen it),
// and the gateway sends the time left to the endpoint on every attempt.
// Values are Go durations ("250ms", "2s").
const TimeoutHeader = "X-Gatehouse-Timeout"

// clientDeadline returns the deadline the client asked for with
// X-Gatehouse-Timeout or gRPC's grpc-timeout, if any. Malformed values are
// ignored (the route's deadline stands).
func clientDeadline(h http.Header, start time.Time) (time.Time, bool) {
	var best time.Duration
	if v := h[TimeoutHeader]; len(v) == 1 {
		if d, err := time.ParseDuration(v[0]); err == nil && d > 0 {
			best = d
		}
	}
	if v := h["Grpc-Timeout"]; len(v) == 1 {
		if d, ok := parseGRPCTimeout(v[0]); ok && (best == 0 || d < best) {
			best = d
		}
	}
	if best == 0 {
		return time.Time{}, false
	}
	return start.Add(best), true
}

// parseGRPCTimeout reads gRPC's TimeoutValue TimeoutUnit: up to 8 digits
// and one of H M S m u n.
func parseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	digits := s[:len(s)-1]
	if digits[0] < '0' || digits[0] > '9' { // no sign: gRPC's TimeoutValue is digits only
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > int64(math.MaxInt64/unit) {
		// 99999999H is valid gRPC and longer than time.Duration holds:
		// as good as no deadline, which then cannot tighten the route's.
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// formatGRPCTimeout writes d in gRPC's form, in milliseconds (at least 1).
func formatGRPCTimeout(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "m"
}

// setTimeLeft tells the endpoint how much time the request has left.
func setTimeLeft(h http.Header, left time.Duration, grpc bool) {
	ms := max(left.Milliseconds(), 1)
	h[TimeoutHeader] = []string{strconv.FormatInt(ms, 10) + "ms"}
	if grpc {
		h["Grpc-Timeout"] = []string{formatGRPCTimeout(left)}
	}
}
