package timerfd

import (
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestSleepIsPrecise pins the reason this package exists: with one P and an
// otherwise idle process, a 200µs sleep must not round up to a millisecond.
func TestSleepIsPrecise(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	const d = 200 * time.Microsecond
	var took []time.Duration
	for range 50 {
		t0 := time.Now()
		if err := tm.Sleep(d); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	if took[0] < d {
		t.Fatalf("slept %v, less than %v", took[0], d)
	}
	// The median leaves room for a loaded CI machine; a millisecond-granular
	// sleep would take 1ms or more every time.
	if med := took[len(took)/2]; med > 700*time.Microsecond {
		t.Fatalf("median sleep of %v took %v", d, med)
	}
}
