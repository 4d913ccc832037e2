package fleet

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func newTestFleet(t *testing.T, n int) (*Fleet, []string) {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = "127.0.0.1:0"
	}
	f, err := New(addrs, Body(64))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, f.Addrs()
}

// get sends one request on a new connection and returns the status, or 0
// with the transport error.
func get(t *testing.T, addr string) (int, error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitFor polls cond until it holds or two seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2s", what)
		}
	}
}

func TestModes(t *testing.T) {
	f, addrs := newTestFleet(t, 4)
	for _, a := range addrs {
		if st, err := get(t, a); st != 200 {
			t.Fatalf("%s before any plan: %d %v", a, st, err)
		}
	}
	err := f.Run(Plan{Events: []Event{
		{Endpoint: 0, Mode: ModeDown},
		{Endpoint: 1, Mode: ModeSlow, Delay: 60 * time.Millisecond},
		{Endpoint: 2, Mode: ModeFail},
		{Endpoint: 3, Mode: ModeReset},
	}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "endpoint 0 refusing connections", func() bool {
		c, err := net.DialTimeout("tcp", addrs[0], time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	waitFor(t, "endpoint 2 failing", func() bool { st, _ := get(t, addrs[2]); return st == 503 })
	t0 := time.Now()
	if st, err := get(t, addrs[1]); st != 200 || time.Since(t0) < 60*time.Millisecond {
		t.Errorf("slow endpoint: %d %v after %v, want 200 after at least 60ms", st, err, time.Since(t0))
	}
	if st, err := get(t, addrs[3]); err == nil {
		t.Errorf("resetting endpoint answered %d", st)
	}

	s := f.Snapshot()
	e := s.Endpoints
	if e[0].Restarts != 1 || e[1].Slowed != 1 || e[2].Failed < 1 || e[3].Reset != 1 {
		t.Errorf("counts: %+v", e)
	}
	if got := s.Total(func(e EndpointStats) int64 { return e.Attempts }); got != s.AttemptsBetween(0, time.Hour)+s.Early {
		t.Errorf("%d attempts in total, %d in buckets (+%d early)", got, s.AttemptsBetween(0, time.Hour), s.Early)
	}

	// Stop brings the down endpoint back on the same address.
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if st, err := get(t, a); st != 200 {
			t.Errorf("%s after Stop: %d %v", a, st, err)
		}
	}
}

func TestScheduleAppliesEventsInTime(t *testing.T) {
	f, addrs := newTestFleet(t, 1)
	start := time.Now()
	err := f.Run(Plan{Start: start, Events: []Event{
		{At: 300 * time.Millisecond, Endpoint: AllEndpoints, Mode: ModeOK},
		{At: 100 * time.Millisecond, Endpoint: AllEndpoints, Mode: ModeFail},
	}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failing", func() bool { st, _ := get(t, addrs[0]); return st == 503 })
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("failing after %v, before the event's time", d)
	}
	waitFor(t, "back to ok", func() bool { st, _ := get(t, addrs[0]); return st == 200 })
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("ok after %v, before the event's time", d)
	}
}

func TestPlanCheck(t *testing.T) {
	for _, p := range []Plan{
		{Events: []Event{{Endpoint: 2, Mode: ModeOK}}},
		{Events: []Event{{Endpoint: 0, Mode: "sleepy"}}},
		{Events: []Event{{Endpoint: 0, Mode: ModeSlow, Delay: time.Hour}}},
		{Length: time.Hour},
	} {
		if err := p.Check(2); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestControlAPI(t *testing.T) {
	f, addrs := newTestFleet(t, 2)
	srv := httptest.NewServer(Handler(f))
	defer srv.Close()
	c := Client{Addr: srv.Listener.Addr().String()}
	ctx := context.Background()
	if err := c.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx, Plan{Events: []Event{{Endpoint: 1, Mode: ModeFail}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "endpoint 1 failing", func() bool { st, _ := get(t, addrs[1]); return st == 503 })
	get(t, addrs[0])
	s, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Endpoints[0].OK != 1 || s.Endpoints[1].Failed < 1 {
		t.Errorf("stats %+v", s.Endpoints)
	}
	if err := c.Run(ctx, Plan{Events: []Event{{Endpoint: 5, Mode: ModeFail}}}); err == nil {
		t.Error("a plan naming endpoint 5 of 2 was accepted")
	}
}

// TestTrafficPhases pins what the fault scenarios compute their load
// multiplier from: requests sent per phase at the client, attempts per
// bucket at the fleet, over the same time origin.
func TestTrafficPhases(t *testing.T) {
	f, addrs := newTestFleet(t, 1)
	start := time.Now().Add(50 * time.Millisecond)
	if err := f.Run(Plan{Start: start, Events: []Event{
		{At: 300 * time.Millisecond, Endpoint: AllEndpoints, Mode: ModeFail},
		{At: 600 * time.Millisecond, Endpoint: AllEndpoints, Mode: ModeOK},
	}}); err != nil {
		t.Fatal(err)
	}
	tr, err := RunTraffic(context.Background(), TrafficConfig{
		Addr: addrs[0], Rate: 200, Start: start, Conns: 4, Timeout: 2 * time.Second,
		Phases:    []Phase{{"before", 300 * time.Millisecond}, {"outage", 300 * time.Millisecond}, {"after", 300 * time.Millisecond}},
		MaxLagP99: time.Second, MaxLag: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Phases) != 3 {
		t.Fatalf("%d phases", len(tr.Phases))
	}
	var sent int64
	for _, p := range tr.Phases {
		sent += p.Sent
		if p.Sent < 50 || p.Sent > 70 {
			t.Errorf("%s: %d sent, want about 60", p.Name, p.Sent)
		}
		if p.Latency.TotalCount() != p.Sent {
			t.Errorf("%s: %d latencies for %d requests", p.Name, p.Latency.TotalCount(), p.Sent)
		}
	}
	// Requests near a switch may land on either side of it, and on a busy
	// machine the switch itself may be late by some milliseconds; on a
	// starved one (the generator late by more than 30ms) timing says
	// nothing.
	if lag := tr.Lag.Max(); lag > 30_000 {
		t.Logf("generator lag up to %dµs: phase timing not checked", lag)
	} else if b, o, a := tr.Phases[0], tr.Phases[1], tr.Phases[2]; b.Failed() > o.Sent/4 || a.Failed() > o.Sent/4 || o.Statuses[503] < o.Sent/2 {
		t.Errorf("failures before %d, during %d (%v), after %d", b.Failed(), o.Failed(), o.Statuses, a.Failed())
	}
	s := f.Snapshot()
	if got := s.AttemptsBetween(0, time.Hour); got != sent {
		t.Errorf("fleet counted %d attempts after start, client sent %d", got, sent)
	}
	if s.Early != 0 {
		t.Errorf("%d attempts before start", s.Early)
	}
}
