package trace

import (
	"time"

	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/passport"
)

// SegmentKind says what a segment of a passport stands for.
type SegmentKind uint8

// The kinds of segments.
const (
	// Interval is the time between one state of the machine and the next
	// (the waterfall's rows: which step took the time).
	Interval SegmentKind = iota
	// HookCall is one hook call, HOOK_ENTER → HOOK_EXIT.
	HookCall
	// Attempt is one upstream attempt: from ENDPOINT_PICKED to the attempt's
	// failure, or to the end of the response body.
	Attempt
)

// String names the kind.
func (k SegmentKind) String() string {
	switch k {
	case HookCall:
		return "hook"
	case Attempt:
		return "attempt"
	}
	return "interval"
}

// Segment is one span of time derived from a passport.
type Segment struct {
	Kind SegmentKind
	// Name is the interval's "FROM→TO", the hook's label
	// ("validate:auth@1a2b") or the attempt's endpoint address.
	Name       string
	Start, End time.Duration
	// Failed is set for an attempt or a hook call that failed, or for the
	// interval that ends in FAILED.
	Failed bool
	// Note is the attempt's failure note, the final outcome, or a hook
	// call's failure ("failed=KIND,policy=open|closed") followed by
	// "+wait" for an out-of-process call.
	Note string
	// Events are the stamps inside an attempt (connection, sent, received).
	Events []passport.Stamp
}

// Segments derives the intervals between states, the hook calls and the
// upstream attempts from a passport's stamps. Events inside a state (hook
// enter/exit, the request body sent) do not cut intervals.
func Segments(stamps []passport.Stamp) []Segment { return segments(stamps, true) }

// segments is Segments, leaving out the intervals unless asked for them
// (spans are built from hook calls and attempts only).
func segments(stamps []passport.Stamp, intervals bool) []Segment {
	out := make([]Segment, 0, len(stamps))
	prev := -1 // index of the last state stamp
	hookAt := -1
	attempt := -1 // index in out of the open attempt
	closeAttempt := func(at time.Duration, failed bool, note string) {
		if attempt >= 0 {
			out[attempt].End = at
			out[attempt].Failed = failed
			out[attempt].Note = note
			attempt = -1
		}
	}
	for i, st := range stamps {
		switch st.State {
		case passport.HookEnter:
			hookAt = i
			continue
		case passport.HookExit:
			if hookAt >= 0 {
				x := hook.ParseExit(st.Note)
				s := Segment{Kind: HookCall, Name: x.Label, Start: stamps[hookAt].Offset, End: st.Offset, Failed: x.Failed}
				if x.Failed {
					s.Note = "failed=" + x.Kind + ",policy=" + x.Policy
				}
				if x.Wait {
					s.Note += "+wait"
				}
				out = append(out, s)
				hookAt = -1
			}
			continue
		case passport.ReqBodySent:
			if attempt >= 0 {
				out[attempt].Events = append(out[attempt].Events, st)
			}
			continue
		}
		if prev >= 0 && intervals {
			p := stamps[prev]
			s := Segment{Kind: Interval, Name: p.State.String() + "→" + st.State.String(), Start: p.Offset, End: st.Offset}
			if st.State == passport.Failed {
				s.Failed, s.Note = true, st.Note
			}
			out = append(out, s)
		}
		prev = i
		switch st.State {
		case passport.EndpointPicked:
			closeAttempt(st.Offset, false, "")
			out = append(out, Segment{Kind: Attempt, Name: st.Note, Start: st.Offset})
			attempt = len(out) - 1
		case passport.AttemptFailed:
			if attempt >= 0 {
				out[attempt].Events = append(out[attempt].Events, st)
			}
			closeAttempt(st.Offset, true, st.Note)
		case passport.RespBodySent, passport.Done:
			closeAttempt(st.Offset, false, "")
		case passport.Failed:
			closeAttempt(st.Offset, true, st.Note)
		default:
			if attempt >= 0 {
				out[attempt].Events = append(out[attempt].Events, st)
			}
		}
	}
	if attempt >= 0 && len(stamps) > 0 {
		closeAttempt(stamps[len(stamps)-1].Offset, false, "")
	}
	return out
}
