package balance

import "testing"

func eps(addrs ...string) []*Endpoint {
	out := make([]*Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = &Endpoint{Addr: a}
	}
	return out
}

func TestRoundRobinEvenAndExclude(t *testing.T) {
	e := eps("a", "b", "c")
	b, err := New("round_robin", e)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := 0; i < 300; i++ {
		counts[b.Pick(nil).Addr]++
	}
	for _, a := range []string{"a", "b", "c"} {
		if counts[a] != 100 {
			t.Fatalf("counts %v, want 100 each", counts)
		}
	}
	for i := 0; i < 10; i++ {
		if b.Pick(e[1]) == e[1] {
			t.Fatal("picked the excluded endpoint although others exist")
		}
	}
	one, _ := New("round_robin", e[:1])
	if one.Pick(e[0]) != e[0] {
		t.Fatal("the only endpoint must be picked even when excluded")
	}
	empty, _ := New("round_robin", nil)
	if empty.Pick(nil) != nil {
		t.Fatal("empty balancer must return nil")
	}
}

func TestUnknownBalancer(t *testing.T) {
	if _, err := New("nope", nil); err == nil {
		t.Fatal("want error for unknown balancer")
	}
}
