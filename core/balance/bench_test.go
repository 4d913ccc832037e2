package balance

import (
	"fmt"
	"testing"
)

// BenchmarkPickDone measures one Pick and one Done with the real clock and
// randomness, and ejection on.
func BenchmarkPickDone(b *testing.B) {
	for _, name := range names {
		for _, n := range []int{5, 100} {
			b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
				e := make([]*Endpoint, n)
				for i := range e {
					e[i] = &Endpoint{Addr: fmt.Sprint(i)}
				}
				bal, err := New(name, e)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					ep := bal.Pick(nil)
					ep.InFlight.Add(1)
					ep.InFlight.Add(-1)
					bal.Done(ep, Result{LatencyNanos: int64(1000 + i%1000)})
				}
			})
		}
	}
}

// BenchmarkPickDoneParallel is the same from all Ps at once.
func BenchmarkPickDoneParallel(b *testing.B) {
	for _, name := range names {
		b.Run(name, func(b *testing.B) {
			e := make([]*Endpoint, 5)
			for i := range e {
				e[i] = &Endpoint{Addr: fmt.Sprint(i)}
			}
			bal, err := New(name, e)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					ep := bal.Pick(nil)
					ep.InFlight.Add(1)
					bal.Done(ep, Result{LatencyNanos: int64(1000 + i%1000)})
					ep.InFlight.Add(-1)
				}
			})
		})
	}
}
