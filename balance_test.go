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
	// The endpoint comes back on the same address. Its first request (the
	// probe) is held until the test has checked that no other request
	// reaches it meanwhile.
	probed, release := make(chan struct{}), make(chan struct{})
	var backHits atomic.Int64
	holding := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if backHits.Add(1) == 1 {
			close(probed)
			<-release
		}
		w.WriteHeader(200)
	})
	ln2, err := net.Listen("tcp", downAddr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", downAddr, err)
	}
	srv := &http.Server{Handler: holding}
	go srv.Serve(ln2)
	defer srv.Close()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	// Requests go out one at a time, each in the background (the probe
	// blocks), until one becomes the probe.
	var wg sync.WaitGroup
	defer wg.Wait()
	c := client(t)
	get := func() {
		defer wg.Done()
		resp, err := c.Get(h.url + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case <-probed:
			break wait
		case <-deadline:
			t.Fatal("the returning endpoint was never probed")
		case <-tick.C:
			wg.Add(1)
			go get()
		}
	}
	// While the probe is in flight, every other request goes elsewhere.
	goodBefore := good.hits.Load()
	for i := 0; i < 20; i++ {
		wg.Add(1)
		get()
	}
	if n := backHits.Load(); n != 1 {
		t.Fatalf("%d requests reached the returning endpoint while its probe was in flight, want exactly the probe", n)
	}
	if good.hits.Load()-goodBefore < 20 {
		t.Fatalf("the other endpoint served %d of the 20 requests sent during the probe", good.hits.Load()-goodBefore)
	}
	close(release)
	released = true
	// After a good probe it is readmitted: it gets its round-robin turn again.
	deadline = time.After(10 * time.Second)
	for backHits.Load() < 9 {
		select {
		case <-deadline:
			t.Fatalf("readmitted endpoint got %d requests", backHits.Load()-1)
		default:
		}
		before := backHits.Load()
		for i := 0; i < 20; i++ {
			wg.Add(1)
			get()
		}
		if got := backHits.Load() - before; got < 8 {
			t.Fatalf("readmitted endpoint got %d of 20 requests", got)
		}
	}
	t.Log(fmt.Sprintf("down endpoint: %d attempts before ejection, then none; readmitted after a probe", first))
}

// An endpoint failing its health_check path gets no traffic until it passes.
func TestBalancerHealthCheckGatesTraffic(t *testing.T) {
	var healthy atomic.Bool
	var checks, sickHits atomic.Int64
	sick := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			checks.Add(1)
			if !healthy.Load() {
				w.WriteHeader(500)
			}
			return
		}
		sickHits.Add(1)
	})
	good := &counting{status: 200}
	extra := "    outlier: {enabled: false}\n    health_check: {enabled: true, path: /healthz, interval: 20ms, timeout: 200ms, healthy: 1, unhealthy: 1}\n"
	h := start(t, serviceConfig("round_robin", extra, []string{backend(t, good), backend(t, sick)}), nil)
	// Poll until a failing check has marked it down (a check that finished
	// after the first one began).
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for checks.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the health check never ran")
		}
		<-tick.C
	}
	before := sickHits.Load()
	if ok := hammer(t, h.url+"/", 20, 1); ok != 20 {
		t.Fatalf("%d of 20 requests succeeded", ok)
	}
	if n := sickHits.Load() - before; n != 0 {
		t.Fatalf("the endpoint failing its health check got %d of 20 requests", n)
	}
	healthy.Store(true)
	for sickHits.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the endpoint never got traffic after passing its health check")
		}
		hammer(t, h.url+"/", 2, 1)
	}
}

// slow_start: an endpoint joining on a reload ramps up from a small share
// of round robin's turns to its full share over the window.
func TestBalancerSlowStartThroughConfig(t *testing.T) {
	var addrs []string
	var bs []*counting
	for i := 0; i < 5; i++ {
		b := &counting{status: 200}
		bs = append(bs, b)
		addrs = append(addrs, backend(t, b))
	}
	extra := "    outlier: {enabled: false}\n    slow_start: 1s\n"
	h := start(t, serviceConfig("round_robin", extra, addrs[:4]), nil)
	if err := h.g.Reload(*parse(t, serviceConfig("round_robin", extra, addrs), nil)); err != nil {
		t.Fatal(err)
	}
	joined := time.Now()
	share := func(n int) float64 {
		before := bs[4].hits.Load()
		if ok := hammer(t, h.url+"/", n, 1); ok != int64(n) {
			t.Fatalf("%d of %d requests succeeded", ok, n)
		}
		return float64(bs[4].hits.Load()-before) / float64(n)
	}
	early := share(100)
	if time.Since(joined) > 500*time.Millisecond {
		t.Skip("too slow to measure the start of the ramp")
	}
	for time.Since(joined) < 1100*time.Millisecond { // bounded: the window is 1s
		share(10)
	}
	late := share(100)
	t.Logf("share of the joining endpoint: %.2f in the first 100 requests, %.2f after the window", early, late)
	if early > 0.12 || late < 0.18 {
		t.Fatalf("joining endpoint's share %.2f early, %.2f late: want a ramp from well below 0.2 to about 0.2", early, late)
	}
}
