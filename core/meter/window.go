package meter

import "github.com/HdrHistogram/hdrhistogram-go"

// Window is a histogram of the values recorded over the last Slots×Slot
// nanoseconds, with three significant digits (HdrHistogram): recording goes
// to the current slot, and a slot older than the window is cleared before
// it is reused. Reading merges the slots still inside the window. It also
// keeps every value since the last reset (SinceReset), in the same record
// call. It is not safe for concurrent use: the owner serializes calls, so
// that a request's numbers are recorded under one lock.
type Window struct {
	slot    int64
	hists   []*hdrhistogram.Histogram
	epochs  []int64 // the slot number each histogram holds, -1 if none
	scratch *hdrhistogram.Histogram
	total   *hdrhistogram.Histogram // since the last reset
}

// NewWindow returns a window of n slots of slot nanoseconds each, for
// values from 1 to max.
func NewWindow(n int, slot, max int64) *Window {
	w := &Window{slot: slot, scratch: hdrhistogram.New(1, max, 3), total: hdrhistogram.New(1, max, 3)}
	for i := 0; i < n; i++ {
		w.hists = append(w.hists, hdrhistogram.New(1, max, 3))
		w.epochs = append(w.epochs, -1)
	}
	return w
}

// Record adds v (clamped to the histogram's range) at now.
func (w *Window) Record(v, now int64) {
	e := now / w.slot
	i := int(e % int64(len(w.hists)))
	if w.epochs[i] != e {
		w.hists[i].Reset()
		w.epochs[i] = e
	}
	h := w.hists[i]
	v = min(max(v, 1), h.HighestTrackableValue())
	h.RecordValue(v)
	w.total.RecordValue(v)
}

// Quantiles are a window's summary.
type Quantiles struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	P999  int64 `json:"p999"`
	Max   int64 `json:"max"`
}

// Quantiles summarizes the values recorded in the window ending at now.
func (w *Window) Quantiles(now int64) Quantiles {
	e := now / w.slot
	s := w.scratch
	s.Reset()
	for i, h := range w.hists {
		if ep := w.epochs[i]; ep >= 0 && ep > e-int64(len(w.hists)) && ep <= e {
			s.Merge(h)
		}
	}
	return quantiles(s)
}

// SinceReset summarizes every value recorded since the last reset, and
// with reset starts anew.
func (w *Window) SinceReset(reset bool) Quantiles {
	q := quantiles(w.total)
	if reset {
		w.total.Reset()
	}
	return q
}

func quantiles(h *hdrhistogram.Histogram) Quantiles {
	return Quantiles{Count: h.TotalCount(), P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
}
