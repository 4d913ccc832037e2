package wire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// rawPlugin is a plugin written against the wire protocol directly, to
// answer what no SDK would.
type rawPlugin struct {
	pluginpb.UnimplementedPluginServer
	features []string
	answer   func(*pluginpb.CallRequest) *pluginpb.CallResponse
}

func (p *rawPlugin) Configure(context.Context, *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	return &pluginpb.ConfigureResponse{Phases: []pluginpb.Phase{pluginpb.Phase_PHASE_VALIDATE, pluginpb.Phase_PHASE_SHAPE, pluginpb.Phase_PHASE_ROUTE, 42}, Features: p.features}, nil
}

func (p *rawPlugin) Call(_ context.Context, req *pluginpb.CallRequest) (*pluginpb.CallResponse, error) {
	return p.answer(req), nil
}

// Calls answers "/pair" calls late: after the next call (out of order),
// or after 10ms when no other call comes.
func (p *rawPlugin) Calls(stream pluginpb.Plugin_CallsServer) error {
	reqs := make(chan *pluginpb.CallRequest)
	go func() {
		defer close(reqs)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case reqs <- r:
			case <-stream.Context().Done():
				return
			}
		}
	}()
	var held *pluginpb.CallRequest
	var late <-chan time.Time
	for {
		select {
		case <-late:
			if err := stream.Send(p.answer(held)); err != nil {
				return err
			}
			held, late = nil, nil
		case req, ok := <-reqs:
			if !ok {
				return nil
			}
			if req.Cancel {
				continue
			}
			if held == nil && req.Request != nil && req.Request.Path == "/pair" {
				held, late = req, time.After(10*time.Millisecond)
				continue
			}
			if err := stream.Send(p.answer(req)); err != nil {
				return err
			}
			if held != nil {
				if err := stream.Send(p.answer(held)); err != nil {
					return err
				}
				held, late = nil, nil
			}
		}
	}
}

func dial(t *testing.T, srv pluginpb.PluginServer, tr Transport) *Conn {
	t.Helper()
	s := grpc.NewServer()
	pluginpb.RegisterPluginServer(s, srv)
	lis := bufconn.Listen(1 << 20)
	go s.Serve(lis)
	cc, err := grpc.Dial("bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConn(context.Background(), cc, ConnOptions{Name: "raw", MaxBodyBytes: 16, MaxMessageBytes: 1 << 20, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cc.Close()
		s.Stop()
	})
	return c
}

func req(path string) *sdk.Request {
	return &sdk.Request{Method: "GET", Path: path, Header: sdk.Header{"X-Bad": {"caf\xe9"}}, Labels: map[string]string{"l": "\xff"}}
}

// TestGarbageAnswers: answers that are not a decision of the phase asked
// are errors of kind invalid, never a wrong decision.
func TestGarbageAnswers(t *testing.T) {
	answers := map[string]*pluginpb.CallResponse{
		"/wrong-phase": {Decision: &pluginpb.CallResponse_Route{Route: &pluginpb.RouteDecision{Service: "x"}}},
		"/priority":    {Decision: &pluginpb.CallResponse_Shape{Shape: &pluginpb.ShapeDecision{Priority: 1000}}},
		"/timeout":     {Decision: &pluginpb.CallResponse_Route{Route: &pluginpb.RouteDecision{TimeoutNanos: -5}}},
		"/too-large":   {Error: "decision too big", ErrorKind: pluginpb.ErrorKind_ERROR_KIND_TOO_LARGE},
		"/error":       {Error: strings.Repeat("e", 5000)},
	}
	for _, tr := range []Transport{TransportStream, TransportUnary} {
		c := dial(t, &rawPlugin{features: []string{"stream"}, answer: func(r *pluginpb.CallRequest) *pluginpb.CallResponse {
			a := answers[r.Request.Path]
			out := &pluginpb.CallResponse{Id: r.Id, Decision: a.Decision, Error: a.Error, ErrorKind: a.ErrorKind}
			return out
		}}, tr)
		if c.Info().Transport != tr || c.Phases() != sdk.PhaseSetOf(sdk.PhaseValidate, sdk.PhaseShape, sdk.PhaseRoute) {
			t.Fatalf("info %+v", c.Info())
		}
		ctx := context.Background()
		if _, err := c.Validate(ctx, req("/wrong-phase")); KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "a route decision in answer to a validate call") {
			t.Errorf("%s wrong phase: %v", tr, err)
		}
		if _, err := c.Shape(ctx, req("/priority")); KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "priority 1000 out of range") {
			t.Errorf("%s priority: %v", tr, err)
		}
		if _, err := c.Route(ctx, req("/timeout")); KindOf(err) != KindInvalid {
			t.Errorf("%s negative timeout: %v", tr, err)
		}
		if _, err := c.Validate(ctx, req("/too-large")); KindOf(err) != KindTooLarge {
			t.Errorf("%s too large: %v", tr, err)
		}
		if _, err := c.Validate(ctx, req("/error")); KindOf(err) != KindPlugin || len(err.Error()) > maxErrorText+64 {
			t.Errorf("%s long error: kind %v, %d bytes", tr, KindOf(err), len(err.Error()))
		}
	}
}

// TestStreamMatchesAnswersById: answers out of order reach their callers.
func TestStreamMatchesAnswersById(t *testing.T) {
	c := dial(t, &rawPlugin{features: []string{"stream"}, answer: func(r *pluginpb.CallRequest) *pluginpb.CallResponse {
		return &pluginpb.CallResponse{Id: r.Id, Decision: &pluginpb.CallResponse_Validate{Validate: &pluginpb.ValidateDecision{
			Labels: map[string]string{"q": r.Request.RawQuery}}}}
	}}, TransportStream)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/"
			if i%2 == 0 {
				path = "/pair"
			}
			r := &sdk.Request{Path: path, RawQuery: fmt.Sprint(i)}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d, err := c.Validate(ctx, r)
			if err != nil || d.Labels["q"] != fmt.Sprint(i) {
				t.Errorf("call %d: %v %v", i, d.Labels, err)
			}
		}()
	}
	wg.Wait()
}

// TestStreamTimeoutAndBreak: a call the plugin never answers times out at
// its deadline without holding up others; when the stream breaks, calls in
// flight fail at once, later calls go unary until it is re-opened.
func TestStreamTimeoutAndBreak(t *testing.T) {
	breakIt := make(chan struct{})
	var once sync.Once
	p := &rawPlugin{features: []string{"stream"}, answer: func(r *pluginpb.CallRequest) *pluginpb.CallResponse {
		return &pluginpb.CallResponse{Id: r.Id}
	}}
	srv := &breakingPlugin{rawPlugin: p, breakIt: breakIt}
	c := dial(t, srv, TransportStream)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Validate(ctx, &sdk.Request{Path: "/never"}); KindOf(err) != KindTimeout {
		t.Fatalf("unanswered call: %v", err)
	} else if el := time.Since(start); el > 250*time.Millisecond {
		t.Fatalf("unanswered call failed after %s, deadline 50ms", el)
	}
	if _, err := c.Validate(context.Background(), &sdk.Request{Path: "/"}); err != nil {
		t.Fatalf("call after a timeout: %v", err)
	}

	// A call waits for an answer; the stream breaks under it.
	done := make(chan error, 1)
	go func() {
		_, err := c.Validate(context.Background(), &sdk.Request{Path: "/never"})
		done <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for srv.waiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("call never reached the plugin")
		}
		time.Sleep(time.Millisecond)
	}
	once.Do(func() { close(breakIt) })
	select {
	case err := <-done:
		if KindOf(err) != KindUnavailable {
			t.Fatalf("call in flight when the stream broke: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("call in flight not failed when the stream broke")
	}
	// Later calls succeed: unary meanwhile, then a new stream.
	for i := range 20 {
		if _, err := c.Validate(context.Background(), &sdk.Request{Path: "/"}); err != nil {
			t.Fatalf("call %d after the break: %v", i, err)
		}
	}
	deadline = time.Now().Add(3 * time.Second)
	for srv.streams() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("stream not re-opened")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// breakingPlugin holds calls to "/never" and ends its first stream when
// breakIt is closed.
type breakingPlugin struct {
	*rawPlugin
	breakIt chan struct{}
	mu      sync.Mutex
	held    int
	opened  int
}

func (b *breakingPlugin) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

func (b *breakingPlugin) streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opened
}

func (b *breakingPlugin) Calls(stream pluginpb.Plugin_CallsServer) error {
	b.mu.Lock()
	b.opened++
	brk := b.breakIt
	if b.opened > 1 {
		brk = nil // only the first stream breaks
	}
	b.mu.Unlock()
	reqs := make(chan *pluginpb.CallRequest)
	go func() {
		defer close(reqs)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case reqs <- r:
			case <-stream.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case <-brk:
			return errors.New("broken on purpose")
		case r, ok := <-reqs:
			if !ok {
				return nil
			}
			if r.Cancel {
				continue
			}
			if r.Request.Path == "/never" {
				b.mu.Lock()
				b.held++
				b.mu.Unlock()
				continue
			}
			if err := stream.Send(b.answer(r)); err != nil {
				return err
			}
		}
	}
}

// TestRequestEncoding: bodies are bounded, strings that are not UTF-8 are
// repaired rather than failing the call.
func TestRequestEncoding(t *testing.T) {
	var got *pluginpb.Request
	c := dial(t, &rawPlugin{answer: func(r *pluginpb.CallRequest) *pluginpb.CallResponse {
		got = r.Request
		return &pluginpb.CallResponse{}
	}}, TransportUnary)
	r := req("/")
	r.Body = []byte("0123456789abcdefXYZ")
	r.TLS = &sdk.TLSInfo{Version: "TLS 1.3", PeerSubject: "CN=x"}
	if _, err := c.Validate(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != "0123456789abcdef" || !got.BodyTruncated || got.Tls.PeerSubject != "CN=x" {
		t.Fatalf("body %q truncated %v tls %v", got.Body, got.BodyTruncated, got.Tls)
	}
	if got.Header[0].Values[0] != "caf\uFFFD" || got.Labels["l"] != "\uFFFD" {
		t.Fatalf("repaired strings: %q %q", got.Header[0].Values[0], got.Labels["l"])
	}
	if r.Header["X-Bad"][0] != "caf\xe9" || r.Labels["l"] != "\xff" {
		t.Fatal("the request view was modified")
	}
}

func TestLineLog(t *testing.T) {
	var buf strings.Builder
	l := newLineLog(zerolog.New(&buf), "stdout", zerolog.InfoLevel)
	l.skipHandshake = true
	fmt.Fprint(l, "1|1|unix|/tmp/x|grpc|cert\nhello ")
	fmt.Fprint(l, "world\n"+strings.Repeat("y", maxLogLine+10)+"\n")
	fmt.Fprint(l, `{"@level":"error","@message":"boom","@module":"plugin","k":"v"}`+"\npanic: oops\nno newline")
	l.Flush()
	out := buf.String()
	for _, want := range []string{`"message":"hello world"`, `"cut":true`, `"level":"error","stream":"stdout","k":"v","message":"boom"`, `"level":"error","stream":"stdout","message":"panic: oops"`, `"message":"no newline"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "1|1|unix") || strings.Count(out, "y") > maxLogLine {
		t.Errorf("handshake logged or long line not cut:\n%.300s", out)
	}
	if tail := l.Tail(); len(tail) != 5 || tail[4] != "no newline" {
		t.Errorf("tail %q", tail)
	}

	// Rate: a flood is cut to the burst, and the count of dropped lines is
	// reported with the next line let through.
	buf.Reset()
	l = newLineLog(zerolog.New(&buf), "stderr", zerolog.InfoLevel)
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { return clock }
	for i := range 1000 {
		fmt.Fprintf(l, "line %d\n", i)
	}
	if n := strings.Count(buf.String(), "\n"); n != logBurst {
		t.Errorf("%d lines logged from a flood, burst %d", n, logBurst)
	}
	clock = clock.Add(100 * time.Millisecond) // 10 lines' worth at logRate
	for i := range 20 {
		fmt.Fprintf(l, "later %d\n", i)
	}
	if n := strings.Count(buf.String(), "later"); n != logRate/10 {
		t.Errorf("%d lines let through after 100ms, want %d", n, logRate/10)
	}
	if !strings.Contains(buf.String(), `"suppressed":`) {
		t.Errorf("suppressed count not logged")
	}
}

// TestFramesPeerChecked: the host talks on a framed call socket only to
// the plugin's process, and frames carry calls both ways, bounded.
func TestFramesPeerChecked(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/f.sock"
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The peer here is this process; a host expecting another PID refuses.
	if _, err := dialFrames(path, os.Getpid()+1, 1<<20, time.Second); err == nil || !strings.Contains(err.Error(), "not the plugin") {
		t.Fatalf("dial with the wrong peer: %v", err)
	}
	if conn, err := ln.AcceptUnix(); err == nil { // the refused dial's connection
		conn.Close()
	}
	served := make(chan error, 1)
	go func() {
		// The "plugin": answers one call by echoing its id and phase.
		conn, err := ln.AcceptUnix()
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var req pluginpb.CallRequest
		if _, err := pluginpb.ReadFrame(r, nil, 1<<20, &req); err != nil {
			served <- err
			return
		}
		b, _ := pluginpb.AppendFrame(nil, &pluginpb.CallResponse{Id: req.Id, Error: req.Phase.String()})
		_, err = conn.Write(b)
		served <- err
	}()
	fs, err := dialFrames(path, os.Getpid(), 64, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.conn.Close()
	if err := fs.Send(&pluginpb.CallRequest{Id: 7, Phase: pluginpb.Phase_PHASE_SHAPE}); err != nil {
		t.Fatal(err)
	}
	resp, err := fs.Recv()
	if err != nil || resp.Id != 7 || resp.Error != "PHASE_SHAPE" {
		t.Fatalf("answer %+v, %v", resp, err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	// A frame over the bound is refused before it is read.
	var buf bytes.Buffer
	b, _ := pluginpb.AppendFrame(nil, &pluginpb.CallResponse{Error: strings.Repeat("x", 100)})
	buf.Write(b)
	if _, err := pluginpb.ReadFrame(bufio.NewReader(&buf), nil, 64, &pluginpb.CallResponse{}); err == nil || !strings.Contains(err.Error(), "over the bound") {
		t.Fatalf("oversized frame: %v", err)
	}
}
