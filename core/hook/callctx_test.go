package hook

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCallCtx(t *testing.T) {
	// Before the deadline: no error; Done closes at the deadline.
	c := newCallCtx(context.Background(), time.Now().Add(20*time.Millisecond))
	if err := c.Err(); err != nil {
		t.Fatalf("Err before the deadline: %v", err)
	}
	if dl, ok := c.Deadline(); !ok || dl != c.deadline {
		t.Fatalf("Deadline = %v, %v", dl, ok)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline: %v", c.Err())
	}
	c.release()

	// Past the deadline without anyone asking for Done: Err says so.
	c = newCallCtx(context.Background(), time.Now().Add(-time.Millisecond))
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline: %v", c.Err())
	}
	c.release()

	// The parent's cancellation and values pass through, lazily or not.
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	lazy := newCallCtx(parent, time.Now().Add(time.Hour))
	eager := newCallCtx(parent, time.Now().Add(time.Hour))
	done := eager.Done()
	if lazy.Value(key{}) != "v" {
		t.Fatal("Value not passed through")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed when the parent was canceled")
	}
	for _, c := range []*callCtx{lazy, eager} {
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err after the parent's cancellation: %v", c.Err())
		}
		c.release()
	}

	// After release the context is canceled, Done included.
	c = newCallCtx(context.Background(), time.Now().Add(time.Hour))
	c.release()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done open after release")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err after release: %v", c.Err())
	}
}
