package harness

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const wrkSample = `Running 5s test @ http://127.0.0.1:18081/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.97ms    7.56ms  63.83ms   94.25%
    Req/Sec    21.63k     7.04k   37.50k    70.00%
  65217 requests in 3.06s, 8.02MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  21346.94
Transfer/sec:      2.63MB
`

func TestParseWrkCountsEveryKindOfError(t *testing.T) {
	w, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if w.requests != 65217 || w.non2xx != 5 || w.socketErrors != 3 {
		t.Errorf("parsed %+v", w)
	}
	if w.elapsed != 3060*time.Millisecond {
		t.Errorf("elapsed %v", w.elapsed)
	}
	if !strings.Contains(w.errorSample, "read 2") {
		t.Errorf("error sample %q", w.errorSample)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("wrk output without totals parsed without error")
	}
}

func TestParseStatWithSpacesInName(t *testing.T) {
	st, err := parseStat([]byte("1234 (nginx: worker (x)) S 1200 1234 1234 0 -1 4194560 100 0 0 0 250 75 3 4 20 0 1 0"))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 1200 || st.utime != 250 || st.stime != 75 {
		t.Errorf("parsed %+v", st)
	}
}

// TestTreeUsageCountsChildren pins why CPU is summed over the process tree:
// nginx's work is done by a worker, a child of the process we start.
func TestTreeUsageCountsChildren(t *testing.T) {
	// The child burns CPU; the parent only waits for it.
	cmd := exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5' & wait`)
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, err := treeUsage(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		own, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		st, _ := parseStat(own)
		if u.Procs >= 2 && u.CPU > time.Duration(st.utime+st.stime)*time.Second/userHZ {
			return // the child's CPU is counted
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree usage %+v never exceeded the parent's own", u)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSummaryUsesValidRunsAndMarksInvalid(t *testing.T) {
	pr := &PeerResult{Runs: []*Run{
		{Kind: "closed", RPS: 100, Valid: true},
		{Kind: "closed", RPS: 300, Valid: true},
		{Kind: "closed", RPS: 999, Valid: false},
		{Kind: "open", RPS: 5, Valid: false},
	}}
	rps := func(r *Run) float64 { return r.RPS }
	s := pr.summary(isClosed, rps)
	if s.median != 200 || s.lo != 100 || s.hi != 300 || s.n != 2 || s.total != 3 {
		t.Errorf("closed summary %+v", s)
	}
	if got := fmtStat(s, f0); got != "200 (100–300) ⚠2/3 valid" {
		t.Errorf("fmtStat = %q", got)
	}
	o := pr.summary(atLevel(-1), rps)
	if o.total != 0 || fmtStat(o, f0) != "—" {
		t.Errorf("no open run at level -1: %+v", o)
	}
	inv := pr.summary(func(r *Run) bool { return r.Kind == "open" }, rps)
	if got := fmtStat(inv, f0); got != "**INVALID** 5" {
		t.Errorf("all-invalid cell = %q", got)
	}
}

func TestNinesLabels(t *testing.T) {
	want := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}
	for x, w := range want {
		if got := ninesLabel(x); got != w {
			t.Errorf("ninesLabel(%d) = %q, want %q", x, got, w)
		}
	}
}

func TestPlacementPinsAndPrioritizes(t *testing.T) {
	p := Placement{Pinned: true, ProxyCPU: 1, LoadCPU: 0, taskset: "/usr/bin/taskset", Prio: PrioRT}
	got := strings.Join(p.wrap(RoleProxy, []string{"nginx", "-c", "x"}), " ")
	if got != "chrt -f 1 /usr/bin/taskset -c 1 nginx -c x" {
		t.Errorf("proxy argv = %q", got)
	}
	p.Prio = PrioNone
	if got := strings.Join(p.wrap(RoleGenerator, []string{"wrk"}), " "); got != "/usr/bin/taskset -c 0 wrk" {
		t.Errorf("generator argv = %q", got)
	}
	p.Pinned = false
	if got := strings.Join(p.wrap(RoleBackend, []string{"backend"}), " "); got != "backend" {
		t.Errorf("unpinned argv = %q", got)
	}
}

// FreePort does not hand an address out twice in a row, even when the
// kernel would (it gives a port just closed out again).
func TestFreePortDoesNotRepeat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		a, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("FreePort returned %s twice", a)
		}
		seen[a] = true
	}
}
