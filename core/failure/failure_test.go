package failure

import (
	"errors"
	"fmt"
	"testing"
)

func TestEveryKindHasNameAndStatus(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		n := k.String()
		if n == "" || seen[n] {
			t.Fatalf("kind %d: empty or duplicate name %q", k, n)
		}
		seen[n] = true
		if s := Status(k); s < 200 || s > 599 {
			t.Fatalf("%s: status %d out of range", k, s)
		}
		if back, ok := ParseKind(n); !ok || back != k {
			t.Fatalf("ParseKind(%q) = %v, %v", n, back, ok)
		}
	}
}

func TestStatusMapping(t *testing.T) {
	cases := []struct {
		k    Kind
		want int
	}{
		{Success, 200}, {ClientGone, 499}, {HeaderTimeout, 408}, {HeaderTooLarge, 431},
		{Malformed, 400}, {BodyTooLarge, 413}, {BodyTooSlow, 408}, {NoRoute, 404},
		{NoEndpoint, 503}, {Overloaded, 503}, {Shed, 503}, {RateLimited, 429},
		{DeadlineExceeded, 504}, {ConnectTimeout, 504}, {ConnectRefused, 502},
		{UpstreamHeaderTimeout, 504}, {UpstreamReset, 502}, {UpstreamTooSlow, 502},
		{ShuttingDown, 503}, {Internal, 500},
	}
	for _, c := range cases {
		if got := Status(c.k); got != c.want {
			t.Errorf("Status(%s) = %d, want %d", c.k, got, c.want)
		}
	}
}

func TestErrorStatusAndKindOf(t *testing.T) {
	e := &Error{Kind: Rejected, Status: 401, Msg: `hook "auth": no credentials`}
	if e.HTTPStatus() != 401 {
		t.Fatalf("reject status = %d", e.HTTPStatus())
	}
	wrapped := fmt.Errorf("outer: %w", e)
	if KindOf(wrapped) != Rejected {
		t.Fatalf("KindOf(wrapped) = %s", KindOf(wrapped))
	}
	if KindOf(errors.New("plain")) != Internal || KindOf(nil) != Success {
		t.Fatal("KindOf plain/nil")
	}
	got := Wrap(ConnectRefused, errors.New("connection refused"), "service %q endpoint %s", "users", "127.0.0.1:1").Error()
	want := `connect_refused: service "users" endpoint 127.0.0.1:1: connection refused`
	if got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if SourceOf(UpstreamReset) != SourceUpstream || SourceOf(BodyTooSlow) != SourceClient || SourceOf(NoRoute) != SourceCore {
		t.Fatal("SourceOf")
	}
}
