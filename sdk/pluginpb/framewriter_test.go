package pluginpb

import (
	"bufio"
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
)

// countingWriter records what is written and how many writes it took.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes++
	return w.buf.Write(p)
}

func send(t *testing.T, fw *FrameWriter, id uint64, later bool) {
	t.Helper()
	m := &CallResponse{Id: id, Error: "x"}
	if err := fw.Send(m, later); err != nil {
		t.Error(err)
	}
}

// readAll decodes every frame written and returns the ids seen.
func readAll(t *testing.T, w *countingWriter) map[uint64]int {
	t.Helper()
	seen := map[uint64]int{}
	r := bufio.NewReader(bytes.NewReader(w.buf.Bytes()))
	var buf []byte
	for {
		if _, err := r.Peek(1); err != nil {
			return seen // the end
		}
		m := new(CallResponse)
		var err error
		if buf, err = ReadFrame(r, buf, 1<<20, m); err != nil {
			t.Fatal(err)
		}
		seen[m.Id]++
	}
}

// Frames sent from many goroutines at once arrive whole, each once.
func TestFrameWriterConcurrentFramesIntact(t *testing.T) {
	w := &countingWriter{}
	fw := NewFrameWriter(w)
	const senders, each = 8, 200
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				send(t, fw, uint64(g*each+i+1), i%2 == 0)
			}
		}()
	}
	wg.Wait()
	seen := readAll(t, w)
	if len(seen) != senders*each {
		t.Fatalf("%d distinct frames read, want %d", len(seen), senders*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("frame %d read %d times", id, n)
		}
	}
	t.Logf("%d frames in %d writes", senders*each, w.writes)
}

// A frame sent alone (later false) is written at once, by itself.
func TestFrameWriterAloneWritesAtOnce(t *testing.T) {
	w := &countingWriter{}
	fw := NewFrameWriter(w)
	for i := range 5 {
		send(t, fw, uint64(i+1), false)
		if w.writes != i+1 {
			t.Fatalf("after %d sends: %d writes", i+1, w.writes)
		}
	}
}

// Frames sent in the same scheduling round, while others are in flight
// (later), go out together: on one P, the first sender yields, the others
// add their frames, and it writes them all.
func TestFrameWriterCoalescesOneRound(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	w := &countingWriter{}
	fw := NewFrameWriter(w)
	const senders = 16
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			send(t, fw, uint64(g+1), true)
		}()
	}
	close(start)
	wg.Wait()
	if got := len(readAll(t, w)); got != senders {
		t.Fatalf("%d frames read, want %d", got, senders)
	}
	t.Logf("%d frames in %d writes", senders, w.writes)
	if w.writes > senders/2 {
		t.Fatalf("%d frames sent in one round took %d writes, want them coalesced", senders, w.writes)
	}
}

// A failed write fails that Send and every later one.
func TestFrameWriterErrorSticks(t *testing.T) {
	boom := errors.New("broken pipe")
	w := &countingWriter{fail: boom}
	fw := NewFrameWriter(w)
	m := &CallResponse{Id: 1}
	if err := fw.Send(m, false); !errors.Is(err, boom) {
		t.Fatalf("Send = %v, want %v", err, boom)
	}
	w.mu.Lock()
	w.fail = nil
	w.mu.Unlock()
	if err := fw.Send(m, false); !errors.Is(err, boom) {
		t.Fatalf("Send after a failed write = %v, want %v", err, boom)
	}
	if w.writes != 0 {
		t.Fatalf("%d writes after the failure", w.writes)
	}
}

// A message the fast encoder does not take (a respond phase's call) goes
// out through proto; one proto cannot encode (a string that is not UTF-8)
// fails its Send alone and leaves the frames before it whole.
func TestFrameWriterProtoFallback(t *testing.T) {
	w := &countingWriter{}
	fw := NewFrameWriter(w)
	m := &CallRequest{Id: 7, Phase: Phase_PHASE_RESPOND, Request: &Request{Path: "/x"}, Response: &Response{Status: 201}}
	if err := fw.Send(m, false); err != nil {
		t.Fatal(err)
	}
	if err := fw.Send(&CallRequest{Id: 8, Request: &Request{Path: "\xff"}}, false); err == nil {
		t.Fatal("a string that is not UTF-8 was sent")
	}
	r := bufio.NewReader(bytes.NewReader(w.buf.Bytes()))
	got := new(CallRequest)
	if _, err := ReadFrame(r, nil, 1<<20, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, m) {
		t.Fatalf("read %v, want %v", got, m)
	}
	if _, err := r.Peek(1); err == nil {
		t.Fatal("bytes after the only frame sent")
	}
}
