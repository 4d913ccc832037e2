package plugins

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

// BenchmarkRoundTrip measures one plugin hook call, as the hook runner
// makes it (a context with the call's deadline, a request view with a
// dozen headers, a decision with two labels back), over the multiplexed stream
// and over unary RPCs, one call at a time (latency: p50 and p99 reported)
// and from parallel callers (throughput).
//
//	go test -run '^$' -bench RoundTrip -benchmem ./plugins/
//
// BENCH_PLUGIN_ENV sets the plugin's environment, e.g. "GOMAXPROCS=2" to
// compare with the SDK's default of one P.
func BenchmarkRoundTrip(b *testing.B) {
	for _, tr := range []wire.Transport{wire.TransportFrames, wire.TransportStream, wire.TransportUnary} {
		b.Run(string(tr), func(b *testing.B) {
			v, closeHost, pid := benchHost(b, tr)
			defer closeHost()
			req := benchRequest()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			hostCPU, pluginCPU := selfCPU(), procCPU(pid)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				if _, err := v.Validate(ctx, req); err != nil {
					b.Fatal(err)
				}
				cancel()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			// CPU time per call, the gateway's and the plugin's: unlike the
			// latency, it does not depend on how busy the machine is.
			b.ReportMetric(float64((selfCPU()-hostCPU).Nanoseconds())/1e3/float64(b.N), "host-cpu-µs/op")
			b.ReportMetric(float64((procCPU(pid)-pluginCPU).Nanoseconds())/1e3/float64(b.N), "plugin-cpu-µs/op")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
		b.Run(string(tr)+"-parallel", func(b *testing.B) {
			v, closeHost, pid := benchHost(b, tr)
			defer closeHost()
			b.ReportAllocs()
			b.SetParallelism(4)
			hostCPU, pluginCPU := selfCPU(), procCPU(pid)
			defer func() {
				b.ReportMetric(float64((selfCPU()-hostCPU).Nanoseconds())/1e3/float64(b.N), "host-cpu-µs/op")
				b.ReportMetric(float64((procCPU(pid)-pluginCPU).Nanoseconds())/1e3/float64(b.N), "plugin-cpu-µs/op")
			}()
			b.RunParallel(func(pb *testing.PB) {
				req := benchRequest()
				for pb.Next() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					if _, err := v.Validate(ctx, req); err != nil {
						b.Error(err)
					}
					cancel()
				}
			})
		})
	}
}

func benchHost(b *testing.B, tr wire.Transport) (sdk.Validator, func(), int) {
	o := DefaultOptions()
	o.Name, o.Path, o.Transport, o.Watch = "bench", bin.misbehave, tr, false
	if v := os.Getenv("BENCH_PLUGIN_ENV"); v != "" {
		o.Env = strings.Fields(v)
	}
	h, err := Start(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	if got := h.Stats().Transport; got != tr {
		b.Fatalf("transport %s, want %s", got, tr)
	}
	v := h.Current().Impl.(sdk.Validator)
	for range 100 { // warm up connections and buffers
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v.Validate(ctx, benchRequest())
		cancel()
	}
	return v, func() { h.Close() }, h.Stats().PID
}

// selfCPU is the CPU time this process used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time process pid used so far (Linux /proc, in clock
// ticks of 10ms: measure enough calls).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14 of stat
	st, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func benchRequest() *sdk.Request {
	r := sdktest.NewRequest("GET", "/api/v1/orders/12345?expand=items&limit=20",
		"Host", "api.example.com", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
		"Accept", "application/json", "Accept-Encoding", "gzip, br", "Accept-Language", "en-GB,en;q=0.9",
		"Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJ0aWVyIjoiZ29sZCJ9.c2lnbmF0dXJl",
		"X-Request-Id", "01HZX3JQ9V7K2M4N6P8R0S2T4V", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"Cookie", "session=abc123; theme=dark", "X-Forwarded-For", "203.0.113.7", "X-Bench", "1")
	r.Labels["tenant"] = "acme"
	return r
}
