// Command misbehave is a test plugin that does, on request, everything a
// plugin should not: it sleeps past its budget ignoring its context,
// panics, returns invalid decisions or oversized answers, writes garbage
// to stdout, exits or hangs at start, refuses its configuration.
//
// At start (environment MISBEHAVE_START): "exit" exits 3 after a line on
// stderr, "garbage" writes to stdout before serving, "hang" never serves.
// Per call (request headers): X-Sleep (a duration, context ignored),
// X-Panic, X-Error, X-Invalid, X-Big (bytes of label), X-Stdout (a line
// written to stdout), X-Cache (cache the decision per X-User), X-Alloc
// (4 GiB), X-Bench (the lean answer of an auth hook, for benchmarks),
// X-Exit-Stderr (a line written to plugin.Stderr, then exit 3).
// Respond sets X-Plugin-Build, X-Plugin-Pid, X-Plugin-Validated-By (the
// pid label of validate), X-Plugin-Labels (the user and tier labels
// earlier hooks set), X-Plugin-Body and X-Plugin-Truncated (the request
// body validate saw, and whether it was cut) on the response.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/plugin"
)

// build is set with -ldflags "-X main.build=2" to make another binary.
var build = "1"

type misbehave struct {
	version string
	calls   atomic.Int64
}

func (m *misbehave) Configure(_ context.Context, raw []byte) error {
	var c struct {
		Fail    string `json:"fail"`
		Version string `json:"version"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
	}
	if c.Fail != "" {
		return errors.New(c.Fail)
	}
	m.version = c.Version
	return nil
}

func (m *misbehave) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	n := m.calls.Add(1)
	if req.Header.Has("X-Bench") { // what an auth hook typically answers
		return sdk.ValidateDecision{Labels: map[string]string{"user": "bob", "tier": "gold"}}, nil
	}
	if d, err := time.ParseDuration(req.Header.Get("X-Sleep")); err == nil {
		time.Sleep(d) // a bad plugin: ignores ctx
	}
	if s := req.Header.Get("X-Stdout"); s != "" {
		fmt.Println(s)
	}
	if s := req.Header.Get("X-Exit-Stderr"); s != "" {
		fmt.Fprintln(plugin.Stderr, s) // last words, then exit mid-call
		os.Exit(3)
	}
	switch {
	case req.Header.Has("X-Panic"):
		panic("misbehave: asked to panic")
	case req.Header.Has("X-Error"):
		return sdk.ValidateDecision{}, errors.New("misbehave: asked to fail")
	case req.Header.Has("X-Invalid"):
		return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 999}}, nil
	}
	labels := map[string]string{
		"pid": strconv.Itoa(os.Getpid()), "build": build, "version": m.version, "n": strconv.FormatInt(n, 10),
		"body": string(req.Body), "truncated": strconv.FormatBool(req.BodyTruncated),
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		labels["nofile"] = strconv.FormatUint(rl.Cur, 10)
	}
	if syscall.Getrlimit(syscall.RLIMIT_AS, &rl) == nil {
		labels["as"] = strconv.FormatUint(rl.Cur, 10)
	}
	if req.Header.Has("X-Alloc") { // allocate and touch 4 GiB
		b := make([]byte, 4<<30)
		for i := range b {
			b[i] = 1
		}
		labels["alloc"] = strconv.Itoa(len(b))
	}
	if dl, ok := ctx.Deadline(); ok {
		labels["deadline_ms"] = strconv.FormatInt(time.Until(dl).Milliseconds(), 10)
	}
	if b, err := strconv.Atoi(req.Header.Get("X-Big")); err == nil {
		labels["big"] = strings.Repeat("x", b)
	}
	if req.Header.Has("X-Cache") {
		if err := plugin.CacheFor(ctx, time.Minute, "header:X-User"); err != nil {
			return sdk.ValidateDecision{}, err
		}
	}
	return sdk.ValidateDecision{Labels: labels}, nil
}

func (m *misbehave) Shape(ctx context.Context, req *sdk.Request) (sdk.ShapeDecision, error) {
	if req.Header.Has("X-Invalid") {
		return sdk.ShapeDecision{Priority: 99}, nil
	}
	return sdk.ShapeDecision{Priority: sdk.PriorityDefault, RateKey: "user:" + req.Labels["user"], Cost: 1}, nil
}

func (m *misbehave) Respond(ctx context.Context, req *sdk.Request, resp *sdk.Response) (sdk.RespondDecision, error) {
	// Which process and build answered, and the labels validate set: what
	// tests through the gateway see of the plugin.
	return sdk.RespondDecision{SetHeader: map[string]string{
		"X-Plugin-Status": strconv.Itoa(resp.Status), "X-Plugin-Build": build, "X-Plugin-Pid": strconv.Itoa(os.Getpid()),
		"X-Plugin-Validated-By": req.Labels["pid"], "X-Plugin-Labels": labelList(req.Labels),
		"X-Plugin-Body": req.Labels["body"], "X-Plugin-Truncated": req.Labels["truncated"],
	}}, nil
}

// labelList renders labels as "k=v,k=v", sorted, without the ones validate
// sets itself.
func labelList(l map[string]string) string {
	var out []string
	for k, v := range l {
		switch k {
		case "user", "tier":
			out = append(out, k+"="+v)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func main() {
	switch os.Getenv("MISBEHAVE_START") {
	case "exit":
		fmt.Fprintln(os.Stderr, "misbehave: refusing to start")
		os.Exit(3)
	case "garbage":
		fmt.Println("hello, I am not a handshake")
	case "hang":
		select {}
	}
	plugin.Serve(&misbehave{})
}
