// Package passport records what happened to one request: an append-only
// list of (state, monotonic offset) stamps, preallocated so that stamping
// allocates nothing. Only the request state machine writes a passport; when
// the request ends, observers derive everything else from it (metrics, the
// access log, traces, the admin page). A passport prints as
//
//	+0.000ms=ACCEPTED +0.012ms=HEADERS_READ +0.020ms=HOOK_ENTER(validate:auth@1a2b) … +1.204ms=DONE
//
// and Parse reads that form back, so tests can assert timelines as text.
package passport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// State is one state of the request state machine, or an event stamped
// inside a state (hook enter/exit, request body sent). The transitions
// between states are a table in package machine.
type State uint8

// The states and events, in the order of the happy path.
const (
	Invalid State = iota
	Accepted
	HeadersRead
	Validated
	Shaped
	Queued
	Admitted
	Routed
	EndpointPicked
	ConnAcquired
	ReqHeadersSent
	ReqBodySent
	RespHeadersReceived
	Responded
	RespBodySent
	Upgraded
	AttemptFailed
	Done
	Failed
	HookEnter
	HookExit
	NumStates
)

var stateNames = [NumStates]string{
	Invalid:             "INVALID",
	Accepted:            "ACCEPTED",
	HeadersRead:         "HEADERS_READ",
	Validated:           "VALIDATED",
	Shaped:              "SHAPED",
	Queued:              "QUEUED",
	Admitted:            "ADMITTED",
	Routed:              "ROUTED",
	EndpointPicked:      "ENDPOINT_PICKED",
	ConnAcquired:        "CONN_ACQUIRED",
	ReqHeadersSent:      "REQ_HEADERS_SENT",
	ReqBodySent:         "REQ_BODY_SENT",
	RespHeadersReceived: "RESP_HEADERS_RECEIVED",
	Responded:           "RESPONDED",
	RespBodySent:        "RESP_BODY_SENT",
	Upgraded:            "UPGRADED",
	AttemptFailed:       "ATTEMPT_FAILED",
	Done:                "DONE",
	Failed:              "FAILED",
	HookEnter:           "HOOK_ENTER",
	HookExit:            "HOOK_EXIT",
}

// String returns the state's name, for example "HEADERS_READ".
func (s State) String() string {
	if s < NumStates {
		return stateNames[s]
	}
	return "STATE(" + strconv.Itoa(int(s)) + ")"
}

// ParseState returns the state with the given name.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name && i != int(Invalid) {
			return State(i), true
		}
	}
	return Invalid, false
}

// Stamp is one entry: a state reached (or event seen) at Offset from the
// start of the request, with an optional note (the outcome of FAILED, the
// hook of HOOK_ENTER, the endpoint of ENDPOINT_PICKED).
type Stamp struct {
	State  State
	Offset time.Duration
	Note   string
}

// Clock tells the time. Tests inject a fake; production uses the wall clock,
// whose readings carry a monotonic component.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

// Capacity is the number of stamps a passport holds without allocating. A
// request with many hooks or retries spills into a slice.
const Capacity = 40

// Passport is the record of one request. The zero value is not usable; get
// one from New (or a Pool) and Reset it per request. A passport is written by
// one goroutine at a time (the request's machine).
type Passport struct {
	clock  Clock
	start  time.Time
	n      int
	stamps [Capacity]Stamp
	spill  []Stamp
}

// New returns an empty passport that starts at clock.Now().
func New(clock Clock) *Passport {
	p := &Passport{}
	p.Reset(clock, clock.Now())
	return p
}

// Reset empties p and restarts it at start.
func (p *Passport) Reset(clock Clock, start time.Time) {
	p.clock = clock
	p.start = start
	p.n = 0
	p.spill = p.spill[:0]
}

// Start returns the time offset zero stands for.
func (p *Passport) Start() time.Time { return p.start }

// Clock returns the clock the passport stamps with.
func (p *Passport) Clock() Clock { return p.clock }

// Now returns the current offset from the start.
func (p *Passport) Now() time.Duration { return p.clock.Now().Sub(p.start) }

// Stamp appends state at the current time.
func (p *Passport) Stamp(s State) { p.add(Stamp{State: s, Offset: p.Now()}) }

// StampNote appends state with a note at the current time. The note is kept
// by reference: pass strings that live at least as long as the passport.
func (p *Passport) StampNote(s State, note string) {
	p.add(Stamp{State: s, Offset: p.Now(), Note: note})
}

// StampAt records state at an offset measured elsewhere (for example by the
// goroutine that streamed the request body). It is inserted in offset order.
func (p *Passport) StampAt(s State, off time.Duration, note string) {
	st := Stamp{State: s, Offset: off, Note: note}
	p.add(st)
	// Bubble the new stamp back to keep offsets sorted; it is rarely more than
	// a few places out of order.
	for i := p.Len() - 1; i > 0; i-- {
		prev := p.At(i - 1)
		if prev.Offset <= off {
			break
		}
		p.set(i, prev)
		p.set(i-1, st)
	}
}

func (p *Passport) add(st Stamp) {
	if p.n < Capacity {
		p.stamps[p.n] = st
		p.n++
		return
	}
	p.spill = append(p.spill, st)
}

func (p *Passport) set(i int, st Stamp) {
	if i < Capacity {
		p.stamps[i] = st
		return
	}
	p.spill[i-Capacity] = st
}

// Len returns the number of stamps.
func (p *Passport) Len() int { return p.n + len(p.spill) }

// At returns stamp i.
func (p *Passport) At(i int) Stamp {
	if i < Capacity {
		return p.stamps[i]
	}
	return p.spill[i-Capacity]
}

// Stamps returns a copy of all stamps.
func (p *Passport) Stamps() []Stamp {
	out := make([]Stamp, 0, p.Len())
	for i := 0; i < p.Len(); i++ {
		out = append(out, p.At(i))
	}
	return out
}

// First returns the offset of the first stamp of s.
func (p *Passport) First(s State) (time.Duration, bool) {
	for i := 0; i < p.Len(); i++ {
		if st := p.At(i); st.State == s {
			return st.Offset, true
		}
	}
	return 0, false
}

// Last returns the offset of the last stamp of s.
func (p *Passport) Last(s State) (time.Duration, bool) {
	for i := p.Len() - 1; i >= 0; i-- {
		if st := p.At(i); st.State == s {
			return st.Offset, true
		}
	}
	return 0, false
}

// Has reports whether s was stamped.
func (p *Passport) Has(s State) bool {
	_, ok := p.First(s)
	return ok
}

// Between returns the time from the first stamp of a to the first stamp of b
// that follows it. ok is false if either is missing.
func (p *Passport) Between(a, b State) (d time.Duration, ok bool) {
	i := 0
	for ; i < p.Len(); i++ {
		if p.At(i).State == a {
			break
		}
	}
	if i == p.Len() {
		return 0, false
	}
	from := p.At(i).Offset
	for j := i; j < p.Len(); j++ {
		if st := p.At(j); st.State == b {
			return st.Offset - from, true
		}
	}
	return 0, false
}

// SumBetween returns the total time of every interval from a stamp of a to
// the next stamp of b (each upstream attempt, each hook call).
func (p *Passport) SumBetween(a, b State) time.Duration {
	var sum time.Duration
	open := false
	var from time.Duration
	for i := 0; i < p.Len(); i++ {
		st := p.At(i)
		switch {
		case st.State == a && !open:
			open, from = true, st.Offset
		case st.State == b && open:
			open = false
			sum += st.Offset - from
		}
	}
	return sum
}

// Total returns the offset of the last stamp: the request's duration once it ended.
func (p *Passport) Total() time.Duration {
	if p.Len() == 0 {
		return 0
	}
	return p.At(p.Len() - 1).Offset
}

// Final returns the last stamp (DONE or FAILED for an ended request).
func (p *Passport) Final() Stamp {
	if p.Len() == 0 {
		return Stamp{}
	}
	return p.At(p.Len() - 1)
}

// AppendText appends the passport in its text form to dst.
func (p *Passport) AppendText(dst []byte) []byte {
	for i := 0; i < p.Len(); i++ {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = AppendStamp(dst, p.At(i))
	}
	return dst
}

// AppendStamp appends one stamp as "+1.234ms=STATE" or "+1.234ms=STATE(note)".
func AppendStamp(dst []byte, st Stamp) []byte {
	dst = append(dst, '+')
	us := st.Offset.Microseconds()
	if us < 0 {
		dst = append(dst, '-')
		us = -us
	}
	dst = strconv.AppendInt(dst, us/1000, 10)
	dst = append(dst, '.')
	frac := us % 1000
	dst = append(dst, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	dst = append(dst, "ms="...)
	dst = append(dst, st.State.String()...)
	if st.Note != "" {
		dst = append(dst, '(')
		dst = append(dst, st.Note...)
		dst = append(dst, ')')
	}
	return dst
}

// String returns the text form.
func (p *Passport) String() string { return string(p.AppendText(nil)) }

// ErrSyntax is returned (wrapped) by Parse for malformed input.
var ErrSyntax = errors.New("passport: syntax error")

// Parse reads the text form back into stamps. Offsets have microsecond
// precision, as printed.
func Parse(s string) ([]Stamp, error) {
	fields := strings.Fields(s)
	out := make([]Stamp, 0, len(fields))
	for _, f := range fields {
		st, err := parseStamp(f)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func parseStamp(f string) (Stamp, error) {
	bad := func(why string) (Stamp, error) {
		return Stamp{}, fmt.Errorf("%w: %q: %s", ErrSyntax, f, why)
	}
	if len(f) < 2 || f[0] != '+' {
		return bad("want +<ms>ms=STATE")
	}
	eq := strings.Index(f, "ms=")
	if eq < 0 {
		return bad("missing ms=")
	}
	num := f[1:eq]
	neg := strings.HasPrefix(num, "-")
	if neg {
		num = num[1:]
	}
	whole, frac, ok := strings.Cut(num, ".")
	if !ok || len(frac) != 3 || whole == "" {
		return bad("offset must have three decimals")
	}
	w, err := strconv.ParseUint(whole, 10, 63)
	if err != nil {
		return bad("offset")
	}
	fr, err := strconv.ParseUint(frac, 10, 16)
	if err != nil {
		return bad("offset")
	}
	if w > uint64(1<<62)/uint64(time.Millisecond) {
		return bad("offset too large")
	}
	off := time.Duration(w)*time.Millisecond + time.Duration(fr)*time.Microsecond
	if neg {
		off = -off
	}
	rest := f[eq+3:]
	name, note := rest, ""
	if i := strings.IndexByte(rest, '('); i >= 0 {
		if !strings.HasSuffix(rest, ")") || i == len(rest)-2 {
			return bad("unterminated or empty note")
		}
		name, note = rest[:i], rest[i+1:len(rest)-1]
	}
	state, ok := ParseState(name)
	if !ok {
		return bad("unknown state " + strconv.Quote(name))
	}
	return Stamp{State: state, Offset: off, Note: note}, nil
}

// Pool recycles passports between requests.
type Pool struct{ p sync.Pool }

// Get returns an empty passport started at start.
func (pl *Pool) Get(clock Clock, start time.Time) *Passport {
	p, _ := pl.p.Get().(*Passport)
	if p == nil {
		p = &Passport{}
	}
	p.Reset(clock, start)
	return p
}

// Put returns p to the pool; p must not be used afterwards.
func (pl *Pool) Put(p *Passport) {
	if cap(p.spill) > 4*Capacity {
		p.spill = nil
	}
	pl.p.Put(p)
}
