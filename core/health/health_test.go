package health

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gatehouse/gatehouse/core/balance"
)

// TestMain checks that no goroutine outlives the tests: checkers stop on
// Close, servers on their cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastOptions checks every 2ms, with a timeout generous enough for a
// loaded machine: tests poll for the outcome with a deadline.
func fastOptions() Options {
	return Options{Path: "/healthz", Interval: 2 * time.Millisecond, Timeout: 2 * time.Second, Healthy: 2, Unhealthy: 3}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for the condition
	}
}

// backend is a loopback server whose health answer the test sets.
type backend struct {
	srv    *httptest.Server
	status atomic.Int32
	hits   atomic.Int64
	fails  atomic.Int64 // answers with a status >= 500
	path   atomic.Value
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.status.Store(200)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.path.Store(r.URL.RequestURI())
		st := int(b.status.Load())
		if st >= 500 {
			b.fails.Add(1)
		}
		w.WriteHeader(st)
		w.Write([]byte("ok"))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

// An endpoint answering 500 is marked down after Unhealthy checks, and up
// again after Healthy good ones; a good neighbour stays up throughout.
func TestDownAndUpAgain(t *testing.T) {
	bad, good := newBackend(t), newBackend(t)
	eps := []*balance.Endpoint{{Addr: bad.addr()}, {Addr: good.addr()}}
	var mu sync.Mutex
	var changes []string
	o := fastOptions()
	o.OnChange = func(ep *balance.Endpoint, up bool) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, map[bool]string{true: "up", false: "down"}[up])
	}
	c, err := New(eps, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "both were checked", func() bool { return bad.hits.Load() > 0 && good.hits.Load() > 0 })
	if !eps[0].Healthy() || !eps[1].Healthy() {
		t.Fatal("endpoints must start up")
	}
	if p := good.path.Load(); p != "/healthz" {
		t.Fatalf("checked path %v, want /healthz", p)
	}

	bad.status.Store(500)
	eventually(t, "the failing endpoint is down", func() bool { return !eps[0].Healthy() })
	if n := bad.fails.Load(); n < 3 {
		t.Fatalf("marked down after %d checks, want Unhealthy = 3", n)
	}
	bal, _ := balance.New("round_robin", eps)
	for i := 0; i < 10; i++ {
		if bal.Pick(nil) == eps[0] {
			t.Fatal("balancer picked an endpoint marked down")
		}
	}

	bad.status.Store(204)
	eventually(t, "the endpoint is up again", func() bool { return eps[0].Healthy() })
	if !eps[1].Healthy() {
		t.Fatal("the good endpoint was marked down")
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(changes, ","); got != "down,up" {
		t.Fatalf("changes %q, want down,up", got)
	}
}

// An endpoint that does not answer in Timeout, or refuses connections, is
// marked down.
func TestTimeoutAndRefused(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	eps := []*balance.Endpoint{{Addr: strings.TrimPrefix(slow.URL, "http://")}, {Addr: refused}}
	o := fastOptions()
	o.Timeout = 10 * time.Millisecond
	c, err := New(eps, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "the slow endpoint is down", func() bool { return !eps[0].Healthy() })
	eventually(t, "the refusing endpoint is down", func() bool { return !eps[1].Healthy() })
}

// Close stops every check at once, even one waiting on its timeout, and a
// check cut short by Close does not mark the endpoint.
func TestCloseStops(t *testing.T) {
	var hits atomic.Int64
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	o := fastOptions()
	o.Interval, o.Timeout, o.Unhealthy = time.Hour, time.Hour, 1
	ep := &balance.Endpoint{Addr: strings.TrimPrefix(hang.URL, "http://")}
	c, err := New([]*balance.Endpoint{ep}, o)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the check is waiting on the endpoint", func() bool { return hits.Load() > 0 })
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v with a check in flight", d)
	}
	if !ep.Healthy() {
		t.Fatal("a check cut by Close marked the endpoint down")
	}
}

func TestOptionsValidated(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, c := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Path = "healthz" }, "health_check.path"},
		{func(o *Options) { o.Path = "/a b" }, "health_check.path"},
		{func(o *Options) { o.Interval = 0 }, "health_check.interval"},
		{func(o *Options) { o.Timeout = -1 }, "health_check.timeout"},
		{func(o *Options) { o.Healthy = 0 }, "health_check.healthy"},
		{func(o *Options) { o.Unhealthy = 0 }, "health_check.unhealthy"},
	} {
		o := DefaultOptions()
		c.edit(&o)
		if _, err := New(nil, o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one with %q", err, c.want)
		}
	}
}
