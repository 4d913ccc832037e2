package scripts

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// leakyScript keeps 1 KB per call in a module variable and reports how
// many it holds.
const leakyScript = `var kept = [];
exports.validate = function (req) {
  kept.push("x".repeat(1000) + req.id);
  return { labels: { kept: String(kept.length) } };
};`

// A runtime is replaced after MaxRuntimeCalls calls, which drops what the
// script kept in it; no call waits or fails for it.
func TestRuntimesReplacedAfterMaxCalls(t *testing.T) {
	opts := DefaultOptions()
	opts.PoolSize = 1
	opts.MaxRuntimeCalls = 200
	s := compileSrc(t, leakyScript, opts)
	const calls = 20000
	most, drops := 0, 0
	prev := 0
	for i := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := s.Validate(ctx, &sdk.Request{ID: strconv.Itoa(i)})
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		n, _ := strconv.Atoi(d.Labels["kept"])
		most = max(most, n)
		if n < prev {
			drops++
		}
		prev = n
	}
	st := s.Stats()
	t.Logf("%d calls: %d replaced, at most %d kept, %d drops", calls, st.Replaced, most, drops)
	if st.Replaced < 2 || drops < 2 || uint64(drops) > st.Replaced {
		t.Errorf("replaced %d, kept counts fell %d times: want at least 2 replacements, each starting afresh", st.Replaced, drops)
	}
	// The runtime serves on until its successor is made (0.65 ms without
	// -race): a few thousand calls at most, not all of them.
	if most >= calls/2 {
		t.Errorf("a runtime kept %d of %d calls' worth", most, calls)
	}
	if st.Discarded != 0 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The memory a script keeps between calls stays bounded by the
// replacements.
func TestKeptMemoryBoundedByReplacement(t *testing.T) {
	opts := DefaultOptions()
	opts.PoolSize = 1
	opts.MaxRuntimeCalls = 1000
	s := compileSrc(t, leakyScript, opts)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const calls = 50000 // 50 MB kept without replacement
	for i := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := s.Validate(ctx, &sdk.Request{ID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %.1f MB over %d calls (%d runtimes replaced)", float64(grew)/(1<<20), calls, s.Stats().Replaced)
	if grew > 20<<20 {
		t.Errorf("heap grew by %d MB over %d calls keeping 1 KB each, want well under 50", grew>>20, calls)
	}
	runtime.KeepAlive(s)
}

// Replacement under concurrent calls: none fails, the pool keeps its
// bound, and its counts agree with its runtimes once the calls stop.
func TestReplacementUnderConcurrency(t *testing.T) {
	opts := DefaultOptions()
	opts.PoolSize = 4
	opts.MaxRuntimeCalls = 50
	s := compileSrc(t, leakyScript, opts)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := s.Validate(ctx, &sdk.Request{ID: strconv.Itoa(g*1000 + i)})
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Once the maker is done, the retiring runtimes still idle are gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := s.pool
		p.mu.Lock()
		live, retiring, idle, making, want := p.live, p.retiring, len(p.idle), p.making, p.want
		p.mu.Unlock()
		if !making && live == idle && live-retiring >= want && live <= opts.PoolSize && retiring == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool: live %d, retiring %d, idle %d, want %d, making %v", live, retiring, idle, want, making)
		}
		time.Sleep(time.Millisecond)
	}
	if st := s.Stats(); st.Replaced == 0 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
}
