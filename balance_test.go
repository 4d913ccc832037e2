package gatehouse_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counting is a backend that counts its requests and answers after delay
// with status.
type counting struct {
	hits   atomic.Int64
	delay  time.Duration
	status int
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.hits.Add(1)
	if c.delay > 0 {
		select {
		case <-time.After(c.delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(c.status)
}

// hammer sends n GETs from workers concurrent clients and returns how many
// got a 2xx.
func hammer(t *testing.T, url string, n, workers int) int64 {
	c := client(t)
	var ok atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := c.Get(url)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 300 {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load()
}

func serviceConfig(balancer, extra string, addrs []string) string {
	return `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false, level: error}
limits:
  request: {deadline: 10s}
  upstream: {connect_timeout: 500ms, header_timeout: 5s}
routes: [{name: app, service: app}]
services:
  - name: app
    endpoints: ["` + strings.Join(addrs, `", "`) + `"]
    balancer: ` + balancer + `
` + extra
}

func TestSlowEndpointShare(t *testing.T) {
	for _, c := range []struct {
		balancer string
		min, max float64 // share of requests the slow endpoint gets
	}{
		{"round_robin", 0.15, 0.25},
		{"least_in_flight", 0, 0.10},
		{"p2c_ewma", 0, 0.08},
	} {
		t.Run(c.balancer, func(t *testing.T) {
			var addrs []string
			var bs []*counting
			for i := 0; i < 5; i++ {
				b := &counting{delay: 2 * time.Millisecond, status: 200}
				if i == 2 {
					b.delay = 100 * time.Millisecond // 50× slower
				}
				bs = append(bs, b)
				addrs = append(addrs, backend(t, b))
			}
			h := start(t, serviceConfig(c.balancer, "    outlier: {enabled: false}\n", addrs), nil)
			const n = 400
			if ok := hammer(t, h.url+"/", n, 8); ok != n {
				t.Fatalf("%d of %d requests succeeded", ok, n)
			}
			share := float64(bs[2].hits.Load()) / n
			t.Logf("%s: the slow endpoint got %.1f%% of %d requests", c.balancer, 100*share, n)
			if share < c.min || share > c.max {
				t.Fatalf("slow endpoint share %.3f, want within [%.2f, %.2f]", share, c.min, c.max)
			}
		})
	}
}

func TestFastFailingEndpointUnderLeastInFlight(t *testing.T) {
	var addrs []string
	var bs []*counting
	for i := 0; i < 4; i++ {
		b := &counting{delay: 2 * time.Millisecond, status: 200}
		if i == 0 {
			b.delay, b.status = 0, 503 // fails at once: least-in-flight alone would flood it
		}
		bs = append(bs, b)
		addrs = append(addrs, backend(t, b))
	}
	h := start(t, serviceConfig("least_in_flight", "    outlier: {enabled: false}\n", addrs), nil)
	const n = 400
	ok := hammer(t, h.url+"/", n, 8)
	var total int64
	for _, b := range bs {
		total += b.hits.Load()
	}
	share := float64(bs[0].hits.Load()) / float64(total)
	t.Logf("failing endpoint got %d of %d attempts (%.1f%%); %d of %d requests succeeded", bs[0].hits.Load(), total, 100*share, ok, n)
	if share > 0.10 {
		t.Fatalf("the failing endpoint got %.1f%% of attempts", 100*share)
	}
	if float64(ok)/n < 0.97 {
		t.Fatalf("success rate %d/%d", ok, n)
	}
}

func TestDownEndpointEjectedProbedAndReadmitted(t *testing.T) {
	good := &counting{status: 200}
	back := &counting{status: 200}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	downAddr := ln.Addr().String()
	ln.Close() // down: connections refused
	extra := "    outlier: {consecutive_failures: 3, base_ejection: 300ms, jitter_percent: 1, min_requests: 1000}\n"
	h := start(t, serviceConfig("round_robin", extra, []string{backend(t, good), downAddr}), nil)
	attempts := func(path string, n int) (toDown int) {
		for i := 0; i < n; i++ {
			resp, err := client(t).Get(h.url + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("request failed with %d while one endpoint was down", resp.StatusCode)
			}
			r := h.next()
			toDown += strings.Count(r.Passport, "ENDPOINT_PICKED("+downAddr+")")
		}
		return toDown
	}
	first := attempts("/", 20)
	if first < 3 || first > 6 {
		t.Fatalf("the down endpoint got %d attempts before ejection, want about consecutive_failures = 3", first)
	}
	if later := attempts("/", 20); later != 0 {
		t.Fatalf("an ejected endpoint got %d attempts", later)
	}
	// The endpoint comes back on the same address.
	ln2, err := net.Listen("tcp", downAddr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", downAddr, err)
	}
	srv := &http.Server{Handler: back}
	go srv.Serve(ln2)
	defer srv.Close()
	deadline := time.Now().Add(10 * time.Second)
	for back.hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the returning endpoint was never probed")
		}
		attempts("/", 1)
		time.Sleep(20 * time.Millisecond)
	}
	// After a good probe it is readmitted: it gets its round-robin turn again.
	before := back.hits.Load()
	attempts("/", 20)
	if got := back.hits.Load() - before; got < 8 {
		t.Fatalf("readmitted endpoint got %d of 20 requests", got)
	}
	t.Log(fmt.Sprintf("down endpoint: %d attempts before ejection, then none; readmitted after a probe", first))
}
