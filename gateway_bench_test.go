package gatehouse_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
)

// BenchmarkProxy compares the CPU per request of the whole loop (client,
// proxy, backend, all in this process over loopback) through Gatehouse and
// through a tuned httputil.ReverseProxy. The client and backend are the
// same in both, so the difference between the two is the difference between
// the proxies. Run with -benchmem; ns/op is CPU-bound wall time per request
// at GOMAXPROCS.
func BenchmarkProxy(b *testing.B) {
	body := strings.Repeat("x", 64)
	backendLn, _ := net.Listen("tcp", "127.0.0.1:0")
	backendSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})}
	go backendSrv.Serve(backendLn)
	defer backendSrv.Close()
	backendAddr := backendLn.Addr().String()

	b.Run("httputil", func(b *testing.B) {
		target, _ := url.Parse("http://" + backendAddr)
		tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, DisableCompression: true,
			IdleConnTimeout: time.Minute, ForceAttemptHTTP2: false}
		rp := &httputil.ReverseProxy{
			Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			Transport:  tr,
			BufferPool: bufPool{},
			ErrorLog:   nil,
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		go srv.Serve(ln)
		defer srv.Close()
		defer tr.CloseIdleConnections()
		load(b, "http://"+ln.Addr().String()+"/bench")
	})

	base := `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false, level: error}
limits:
  upstream: {max_conns_per_endpoint: 1024, max_idle_per_endpoint: 1024}
routes: [{name: all, service: app}]
services: [{name: app, endpoints: ["` + backendAddr + `"]}]
`
	b.Run("gatehouse", func(b *testing.B) { benchGatehouse(b, base) })
	// The hooks bench scenario's JavaScript validate and route hooks on
	// every request: the host's cost inside the request path. The budget
	// is generous so that a busy machine does not turn the cost
	// measurement into a failure-policy test.
	dir, _ := filepath.Abs("bench/scenario/testdata/hooks")
	b.Run("gatehouse+go", func(b *testing.B) {
		benchGatehouse(b, base+`
hooks:
  - {go: response_headers, config: {set: {X-Frame-Options: DENY}}, budget: 100ms}
`)
	})
	b.Run("gatehouse+js", func(b *testing.B) {
		benchGatehouse(b, base+`
scripts:
  - {name: validate, file: "`+filepath.Join(dir, "validate.js")+`"}
  - {name: route, file: "`+filepath.Join(dir, "route.js")+`"}
hooks:
  - {script: validate, budget: 100ms}
  - {script: route, budget: 100ms}
`)
	})
	// A JavaScript validate hook that does nothing: the host's fixed cost
	// per call (checkout, request view, decision check, stamps, counters).
	b.Run("gatehouse+js-noop", func(b *testing.B) {
		benchGatehouse(b, base+`
scripts:
  - {name: noop, file: "`+filepath.Join(dir, "noop.js")+`"}
hooks:
  - {script: noop, budget: 100ms}
`)
	})
	// The hooks scenario's no-op plugin on every request. cpu-ns/op counts
	// this process only, not the plugin's; run under -cpuprofile to see
	// the gateway's side of a plugin call in place.
	b.Run("gatehouse+plugin", func(b *testing.B) {
		bin := filepath.Join(b.TempDir(), "noopplugin")
		if out, err := exec.Command("go", "build", "-o", bin, "./bench/cmd/noopplugin").CombinedOutput(); err != nil {
			b.Fatalf("building the plugin: %v\n%s", err, out)
		}
		benchGatehouse(b, base+`
plugins:
  - {name: noop, path: "`+bin+`"}
hooks:
  - {plugin: noop, phases: [validate], budget: 100ms}
`)
	})
}

// benchGatehouse runs load through a gateway built from the YAML config.
func benchGatehouse(b *testing.B, yaml string) {
	{
		cfg := parse(b, yaml, nil)
		g, err := gatehouse.New(*cfg, gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop()))
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { g.Serve(context.Background()); close(done) }()
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			g.Shutdown(ctx)
			<-done
		}()
		load(b, "http://"+g.Addr("public").String()+"/bench")
	}
}

// load sends b.N GET requests from 16 concurrent keep-alive clients.
func load(b *testing.B, url string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	for i := 0; i < 100; i++ {
		get()
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get()
		}
	})
	b.StopTimer()
	// CPU time of the whole process (client, proxy and backend) per
	// request: robust to other load on the machine, unlike ns/op.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type bufPool struct{}

var bp = sync.Pool{New: func() any { return make([]byte, 32<<10) }}

func (bufPool) Get() []byte  { return bp.Get().([]byte) }
func (bufPool) Put(b []byte) { bp.Put(b) }
