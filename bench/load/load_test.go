package load

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenLoopCountsStallsFromIntendedTime pins the reason for the open loop:
// when the target stalls, every request that was due during the stall must
// show the wait, not just the one that hit it (coordinated omission).
func TestOpenLoopCountsStallsFromIntendedTime(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 20 {
			time.Sleep(300 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	res, err := RunOpen(context.Background(), OpenConfig{
		Addr: addr, Rate: 200, Duration: time.Second, Conns: 1, Timeout: 5 * time.Second,
		MaxLagP99: time.Second, MaxLag: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Completed != 200 {
		t.Fatalf("completed %d, errors %d (%s)", res.Completed, res.Errors, res.ErrorSample)
	}
	// About 60 requests were due during the 300ms stall (200/s); a closed
	// loop would have recorded one slow request.
	slow := res.Latency.TotalCount() - countBelow(res, 100_000)
	if slow < 30 {
		t.Errorf("%d requests slower than 100ms, want the ~40 due during the stall's first 200ms", slow)
	}
}

func countBelow(res *Result, us int64) int64 {
	var c int64
	for _, b := range res.Latency.Distribution() {
		if b.To <= us {
			c += b.Count
		}
	}
	return c
}

func TestOpenLoopRefusesNonLoopbackTargets(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "example.com:80", "localhost:80", "0.0.0.0:80"} {
		_, err := RunOpen(context.Background(), OpenConfig{Addr: addr, Rate: 1, Duration: time.Second, Conns: 1, Timeout: time.Second, MaxLagP99: time.Second, MaxLag: time.Second})
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: err = %v, want a loopback refusal", addr, err)
		}
	}
}

func TestClosedLoopCountsNon200AsErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
		w.Write([]byte("body"))
	}))
	defer srv.Close()
	res, err := RunClosed(context.Background(), ClosedConfig{
		Addr: strings.TrimPrefix(srv.URL, "http://"), Duration: 300 * time.Millisecond, Conns: 4, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed == 0 || res.Errors == 0 || !strings.Contains(res.ErrorSample, "502") {
		t.Errorf("completed %d errors %d sample %q", res.Completed, res.Errors, res.ErrorSample)
	}
	if got := res.Completed + res.Errors; got != res.Scheduled {
		t.Errorf("completed+errors = %d, scheduled %d", got, res.Scheduled)
	}
}

func TestReadResponseFraming(t *testing.T) {
	for _, c := range []struct {
		name, in   string
		status     int
		keep       bool
		restPrefix string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcNEXT", 200, true, "NEXT"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\nNEXT", 200, true, "NEXT"},
		{"close", "HTTP/1.1 503 No\r\nConnection: close\r\nContent-Length: 0\r\n\r\nNEXT", 503, false, "NEXT"},
		{"204 without body", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, true, "NEXT"},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nxNEXT", 200, false, "NEXT"},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, false, ""},
	} {
		br := bufio.NewReader(strings.NewReader(c.in))
		status, keep, err := readResponse(br)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		rest, _ := br.Peek(br.Buffered())
		if status != c.status || keep != c.keep || !strings.HasPrefix(string(rest), c.restPrefix) {
			t.Errorf("%s: status %d keep %v rest %q", c.name, status, keep, rest)
		}
	}
	if _, _, err := readResponse(bufio.NewReader(strings.NewReader("garbage\r\n"))); err == nil {
		t.Error("garbage status line accepted")
	}
}

func TestHistRoundTripsThroughJSON(t *testing.T) {
	h := Hist{NewHistogram()}
	for v := int64(1); v <= 1000; v++ {
		h.RecordValue(v * 10)
	}
	b, err := h.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Hist
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if back.TotalCount() != 1000 || back.ValueAtQuantile(99) != h.ValueAtQuantile(99) {
		t.Errorf("round trip: count %d p99 %d", back.TotalCount(), back.ValueAtQuantile(99))
	}
}
