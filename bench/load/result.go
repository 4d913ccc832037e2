package load

import (
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram ranges: values are microseconds, from 1 µs to 60 s, 3 significant
// digits (0.1% precision).
const (
	histMin     = 1
	histMax     = 60_000_000
	histSigFigs = 3
)

// NewHistogram returns an empty histogram of microseconds with the ranges every
// result uses, so that histograms of different runs can be merged.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histSigFigs)
}

// micros converts d to whole microseconds for a histogram, rounding to nearest
// and clamping to the histogram's range.
func micros(d time.Duration) int64 {
	us := (int64(d) + 500) / 1000
	if us < histMin {
		return histMin
	}
	if us > histMax {
		return histMax
	}
	return us
}

// Hist is a histogram of microseconds that marshals to JSON as the compact
// base64 HdrHistogram V2 encoding.
type Hist struct {
	*hdrhistogram.Histogram
}

// MarshalJSON encodes h as a JSON string.
func (h Hist) MarshalJSON() ([]byte, error) {
	if h.Histogram == nil {
		return []byte("null"), nil
	}
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON decodes a histogram written by MarshalJSON.
func (h *Hist) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		h.Histogram = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return fmt.Errorf("decoding histogram: %w", err)
	}
	h.Histogram = d
	return nil
}

// Result is the outcome of one load run, as the loadgen program prints it.
type Result struct {
	// Mode is "open" or "closed".
	Mode string `json:"mode"`
	// Target is the address the load was sent to.
	Target string `json:"target"`
	// Rate is the open loop's intended rate in requests per second.
	Rate float64 `json:"rate,omitempty"`
	// Conns is the number of client connections.
	Conns int `json:"conns"`
	// Duration is the configured length of the sending window.
	Duration time.Duration `json:"duration_ns"`
	// Scheduled is how many requests the open loop's schedule called for, or
	// how many the closed loop started.
	Scheduled int64 `json:"scheduled"`
	// Completed counts responses with status 200.
	Completed int64 `json:"completed"`
	// Errors counts requests that failed: connection errors, timeouts,
	// malformed responses and statuses other than 200.
	Errors int64 `json:"errors"`
	// ErrorSample is the first error seen, if any.
	ErrorSample string `json:"error_sample,omitempty"`
	// Elapsed runs from the first intended send to the last response.
	Elapsed time.Duration `json:"elapsed_ns"`
	// CPU is the generator's own CPU time (user and system) over the run,
	// without its start-up and its report.
	CPU time.Duration `json:"cpu_ns"`
	// Latency holds one value per completed request, in microseconds: for the
	// open loop from the intended send time, for the closed loop from the
	// actual send time.
	Latency Hist `json:"latency"`
	// Lag holds, for the open loop, how late the generator handed each request
	// to a connection relative to its intended send time, in microseconds.
	Lag Hist `json:"lag"`
	// Behind is true when the generator could not keep its schedule; such a
	// run is invalid.
	Behind bool `json:"behind"`
	// BehindReason says which limit the generator's lag exceeded.
	BehindReason string `json:"behind_reason,omitempty"`
}

// RPS returns completed requests per second of elapsed time.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Completed) / r.Elapsed.Seconds()
}

// processCPU returns this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// errorTally counts errors and keeps the first one.
type errorTally struct {
	n      int64
	sample string
}

func (t *errorTally) add(err error) {
	if t.n == 0 {
		t.sample = describe(err)
	}
	t.n++
}
