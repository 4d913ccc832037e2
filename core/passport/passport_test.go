package passport

import (
	"errors"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time { c.t = c.t.Add(c.step); return c.t }

func newFake(step time.Duration) (*fakeClock, time.Time) {
	c := &fakeClock{t: time.Unix(1700000000, 0), step: step}
	return c, c.t
}

func TestGoldenTimeline(t *testing.T) {
	c, start := newFake(0)
	p := &Passport{}
	p.Reset(c, start)
	at := func(d time.Duration) { c.t = start.Add(d) }
	p.Stamp(Accepted)
	at(12 * time.Microsecond)
	p.Stamp(HeadersRead)
	at(20 * time.Microsecond)
	p.StampNote(HookEnter, "validate:auth@1a2b")
	at(55 * time.Microsecond)
	p.StampNote(HookExit, "validate:auth@1a2b")
	p.Stamp(Validated)
	at(1204500 * time.Nanosecond)
	p.Stamp(Done)
	const want = "+0.000ms=ACCEPTED +0.012ms=HEADERS_READ +0.020ms=HOOK_ENTER(validate:auth@1a2b) " +
		"+0.055ms=HOOK_EXIT(validate:auth@1a2b) +0.055ms=VALIDATED +1.204ms=DONE"
	if got := p.String(); got != want {
		t.Fatalf("String()\n got %s\nwant %s", got, want)
	}
	back, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != p.Len() {
		t.Fatalf("parsed %d stamps, want %d", len(back), p.Len())
	}
	for i, st := range back {
		orig := p.At(i)
		if st.State != orig.State || st.Note != orig.Note || st.Offset != orig.Offset.Truncate(time.Microsecond) {
			t.Fatalf("stamp %d: parsed %+v, orig %+v", i, st, orig)
		}
	}
	if d, ok := p.Between(Accepted, Validated); !ok || d != 55*time.Microsecond {
		t.Fatalf("Between(ACCEPTED, VALIDATED) = %v, %v", d, ok)
	}
	if d := p.SumBetween(HookEnter, HookExit); d != 35*time.Microsecond {
		t.Fatalf("SumBetween(hook) = %v", d)
	}
	if _, ok := p.Between(Validated, Accepted); ok {
		t.Fatal("Between must not look backwards")
	}
	if p.Total() != 1204500*time.Nanosecond || p.Final().State != Done {
		t.Fatalf("Total/Final = %v %v", p.Total(), p.Final())
	}
}

func TestStampAtKeepsOrder(t *testing.T) {
	c, start := newFake(0)
	p := &Passport{}
	p.Reset(c, start)
	for i, s := range []State{Accepted, HeadersRead, ReqHeadersSent, RespHeadersReceived, Responded} {
		c.t = start.Add(time.Duration(i) * time.Millisecond)
		p.Stamp(s)
	}
	p.StampAt(ReqBodySent, 2500*time.Microsecond, "")
	want := "+0.000ms=ACCEPTED +1.000ms=HEADERS_READ +2.000ms=REQ_HEADERS_SENT +2.500ms=REQ_BODY_SENT " +
		"+3.000ms=RESP_HEADERS_RECEIVED +4.000ms=RESPONDED"
	if got := p.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestSpillBeyondCapacity(t *testing.T) {
	c, start := newFake(time.Microsecond)
	p := &Passport{}
	p.Reset(c, start)
	for i := 0; i < Capacity+10; i++ {
		p.StampNote(HookEnter, "h")
	}
	p.StampAt(Accepted, 0, "")
	if p.Len() != Capacity+11 || p.At(0).State != Accepted {
		t.Fatalf("len %d first %v", p.Len(), p.At(0))
	}
	back, err := Parse(p.String())
	if err != nil || len(back) != p.Len() {
		t.Fatalf("round trip: %v, %d", err, len(back))
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"0.000ms=ACCEPTED", "+0.00ms=ACCEPTED", "+x.000ms=ACCEPTED", "+0.000ms=NOPE",
		"+0.000ms=FAILED(", "+0.000ms=FAILED()", "+0.000=DONE", "+99999999999999999.000ms=DONE",
	} {
		if _, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) err = %v, want ErrSyntax", in, err)
		}
	}
}

func TestStampDoesNotAllocate(t *testing.T) {
	var pl Pool
	allocs := testing.AllocsPerRun(1000, func() {
		p := pl.Get(SystemClock, time.Now())
		for s := Accepted; s <= Done; s++ {
			p.Stamp(s)
		}
		p.StampNote(Failed, "connect_timeout")
		p.StampAt(ReqBodySent, time.Microsecond, "")
		pl.Put(p)
	})
	if allocs != 0 {
		t.Fatalf("stamping allocated %.1f times per request", allocs)
	}
}

func BenchmarkStamp(b *testing.B) {
	p := New(SystemClock)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if p.Len() >= Capacity {
			p.Reset(SystemClock, p.Start())
		}
		p.Stamp(Accepted)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("+0.000ms=ACCEPTED +0.012ms=HEADERS_READ +1.204ms=FAILED(connect_timeout)")
	f.Add("+12.345ms=HOOK_ENTER(validate:auth@1)")
	f.Add("+-0.001ms=DONE")
	f.Fuzz(func(t *testing.T, s string) {
		stamps, err := Parse(s)
		if err != nil {
			return
		}
		c, start := newFake(0)
		p := &Passport{}
		p.Reset(c, start)
		for _, st := range stamps {
			p.add(st)
		}
		again, err := Parse(p.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", p.String(), err)
		}
		if len(again) != len(stamps) {
			t.Fatalf("round trip changed length")
		}
		for i := range again {
			if again[i] != stamps[i] {
				t.Fatalf("round trip changed stamp %d: %+v vs %+v", i, again[i], stamps[i])
			}
		}
	})
}

func TestOverheadFromTimeline(t *testing.T) {
	cases := []struct {
		name, timeline string
		wait           time.Duration
	}{
		{"happy path, reused conn",
			"+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.015ms=VALIDATED +0.016ms=SHAPED +0.017ms=ADMITTED " +
				"+0.020ms=ROUTED +0.021ms=ENDPOINT_PICKED(127.0.0.1:1) +0.025ms=CONN_ACQUIRED(reused) " +
				"+0.030ms=REQ_HEADERS_SENT +0.031ms=REQ_BODY_SENT +1.030ms=RESP_HEADERS_RECEIVED +1.040ms=RESPONDED " +
				"+3.040ms=RESP_BODY_SENT +3.050ms=DONE",
			// client 10µs + upstream 1000µs + body 2000µs
			3010 * time.Microsecond},
		{"new conn and a plugin hook",
			"+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.011ms=HOOK_ENTER(validate:authz@1) " +
				"+0.111ms=HOOK_EXIT(validate:authz@1+wait) +0.112ms=VALIDATED +0.113ms=SHAPED +0.114ms=ADMITTED " +
				"+0.115ms=ROUTED +0.116ms=ENDPOINT_PICKED(a) +0.316ms=CONN_ACQUIRED(new) +0.320ms=REQ_HEADERS_SENT " +
				"+0.820ms=RESP_HEADERS_RECEIVED +0.830ms=RESPONDED +0.840ms=RESP_BODY_SENT +0.850ms=DONE",
			(10 + 100 + 200 + 500 + 10) * time.Microsecond},
		{"upstream header timeout",
			"+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.020ms=VALIDATED +0.021ms=SHAPED +0.022ms=ADMITTED " +
				"+0.023ms=ROUTED +0.024ms=ENDPOINT_PICKED(a) +0.025ms=CONN_ACQUIRED(reused) +0.030ms=REQ_HEADERS_SENT " +
				"+2000.030ms=FAILED(upstream_header_timeout)",
			(10 + 2000000) * time.Microsecond},
		{"rejected before upstream", "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.050ms=FAILED(rejected)", 10 * time.Microsecond},
	}
	for _, c := range cases {
		stamps, err := Parse(c.timeline)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p := &Passport{}
		p.Reset(SystemClock, time.Now())
		for _, st := range stamps {
			p.add(st)
		}
		if got := p.Waiting(); got != c.wait {
			t.Errorf("%s: Waiting = %v, want %v", c.name, got, c.wait)
		}
		if got := p.Overhead(); got != p.Total()-c.wait {
			t.Errorf("%s: Overhead = %v, want %v", c.name, got, p.Total()-c.wait)
		}
	}
}
