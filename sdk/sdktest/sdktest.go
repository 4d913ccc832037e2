// Package sdktest tests a Gatehouse hook plugin against example requests,
// in process or as the built binary, both over the real plugin protocol:
//
//	func TestAuthz(t *testing.T) {
//		p := sdktest.Serve(t, &authz{}, []byte(`{"secret":"…"}`)) // in process
//		p.Run(t, []sdktest.Case{{
//			Name:    "no credentials",
//			Request: sdktest.NewRequest("GET", "/orders"),
//			Want:    sdk.ValidateDecision{Reject: &sdk.Reject{Status: 401, …}},
//		}})
//	}
//
//	func TestAuthzBinary(t *testing.T) {
//		bin, err := sdktest.Build(".", t.TempDir())                  // go build
//		…
//		p := sdktest.Exec(t, bin, config)                             // as the gateway runs it
//		p.Run(t, cases)
//	}
//
// Serve runs the hook behind a gRPC server on an in-memory connection, so
// requests and decisions cross the same encoding as in production; Exec
// starts the binary with go-plugin exactly as the gateway does (handshake,
// AutoMTLS, Configure, health check), and calls it on the gateway's default
// transport (the framed call socket) unless ExecOptions.Transport says
// otherwise.
package sdktest

import (
	"context"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/plugin"
)

// Plugin is a plugin under test. It implements the sdk phase interfaces
// (and sdk.PhaseReporter) by calling the plugin over the plugin protocol;
// a call without a deadline gets wire.DefaultCallTimeout.
type Plugin struct {
	*wire.Conn
	pid int
}

// Pid returns the plugin's process ID (0 in process).
func (p *Plugin) Pid() int { return p.pid }

// Serve serves impl in process over the plugin protocol, configured with
// config (when impl is an plugin.Configurer). It stops with the test.
func Serve(t testing.TB, impl any, config []byte) *Plugin {
	t.Helper()
	s := grpc.NewServer()
	if err := plugin.Register(s, impl); err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = s.Serve(lis) }()
	cc, err := grpc.Dial("bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := wire.NewConn(ctx, cc, wire.ConnOptions{Name: fmt.Sprintf("%T", impl), Config: config, MaxBodyBytes: 64 << 10, MaxMessageBytes: 1 << 20, Transport: wire.TransportStream})
	if err != nil {
		cc.Close()
		s.Stop()
		t.Fatalf("sdktest: %T: %v", impl, err)
	}
	t.Cleanup(func() {
		conn.Close()
		cc.Close()
		s.Stop()
	})
	return &Plugin{Conn: conn}
}

// ExecOptions tune Exec.
type ExecOptions struct {
	// Args and Env are the binary's arguments and whole environment.
	Args []string
	Env  []string
	// StartTimeout bounds the start. Default 10s.
	StartTimeout time.Duration
	// Transport is how calls travel, as in the gateway's plugin options:
	// wire.TransportFrames, wire.TransportStream or wire.TransportUnary.
	// Default wire.DefaultTransport (frames), the gateway's default, so
	// that a built binary is tested on the transport it serves in
	// production. Plugin.Transport says which one calls use.
	Transport wire.Transport
	// Log receives the plugin's output. Default: the test's log.
	Log *zerolog.Logger
}

// Exec starts the plugin binary at path as the gateway does, configured
// with config, and stops it with the test (no process or socket left).
func Exec(t testing.TB, path string, config []byte, opts ...ExecOptions) *Plugin {
	t.Helper()
	var o ExecOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 10 * time.Second
	}
	if o.Transport == "" {
		o.Transport = wire.DefaultTransport
	}
	switch o.Transport {
	case wire.TransportFrames, wire.TransportStream, wire.TransportUnary:
	default:
		t.Fatalf("sdktest: ExecOptions.Transport %q: want %q, %q or %q", o.Transport, wire.TransportFrames, wire.TransportStream, wire.TransportUnary)
	}
	tl := &testLog{t: t}
	log := zerolog.New(tl).With().Str("plugin", filepath.Base(path)).Logger()
	if o.Log != nil {
		log = *o.Log
	}
	// Unix socket paths are short: not under t.TempDir().
	dir, err := os.MkdirTemp("", "sdktest-")
	if err != nil {
		t.Fatal(err)
	}
	p, err := wire.Launch(context.Background(), wire.LaunchOptions{
		Path: path, Args: o.Args, Env: o.Env, StartTimeout: o.StartTimeout, SocketDir: dir, MaxMessageBytes: 1 << 20, Log: log,
		Conn: wire.ConnOptions{Name: filepath.Base(path), Config: config, MaxBodyBytes: 64 << 10, Transport: o.Transport},
	})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("sdktest: %s: %v", path, err)
	}
	t.Cleanup(func() {
		p.Kill()
		tl.close()
		os.RemoveAll(dir)
	})
	return &Plugin{Conn: p.Conn, pid: p.Pid()}
}

// Build compiles the plugin package pkg (a path as go build takes it,
// relative to the current directory) into dir and returns the binary's
// path. It is meant for TestMain (or a test's own temp dir).
func Build(pkg, dir string) (string, error) {
	name := filepath.Base(filepath.Clean(pkg))
	if name == "." {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		name = filepath.Base(wd)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// Case is one example request and the decision expected of one phase.
type Case struct {
	Name string
	// Request is the request view; Response the response (respond phase).
	Request  *sdk.Request
	Response *sdk.Response
	// Want is the expected decision, and its type names the phase:
	// sdk.ValidateDecision, sdk.ShapeDecision, sdk.RouteDecision or
	// sdk.RespondDecision. Nil maps and slices equal empty ones.
	Want any
	// WantErr, when not "", expects the call to fail with an error whose
	// text contains it (Want still names the phase).
	WantErr string
	// Timeout bounds the call. Default 1s.
	Timeout time.Duration
}

// Run runs every case as a subtest.
func (p *Plugin) Run(t *testing.T, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Helper()
			timeout := c.Timeout
			if timeout <= 0 {
				timeout = time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			req := c.Request
			if req == nil {
				req = NewRequest("GET", "/")
			}
			var got any
			var err error
			switch c.Want.(type) {
			case sdk.ValidateDecision:
				got, err = p.Validate(ctx, req)
			case sdk.ShapeDecision:
				got, err = p.Shape(ctx, req)
			case sdk.RouteDecision:
				got, err = p.Route(ctx, req)
			case sdk.RespondDecision:
				resp := c.Response
				if resp == nil {
					resp = &sdk.Response{Status: 200, Header: sdk.Header{}}
				}
				got, err = p.Respond(ctx, req, resp)
			default:
				t.Fatalf("Case.Want is a %T: want an sdk decision type", c.Want)
			}
			switch {
			case c.WantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.WantErr) {
					t.Fatalf("error = %v, want one containing %q", err, c.WantErr)
				}
			case err != nil:
				t.Fatalf("error: %v", err)
			default:
				if g, w := Normalize(got), Normalize(c.Want); !reflect.DeepEqual(g, w) {
					t.Fatalf("decision\n got  %+v\n want %+v", describe(g), describe(w))
				}
			}
		})
	}
}

// Normalize returns a decision with empty maps and slices made nil, so
// that decisions compare by meaning.
func Normalize(d any) any {
	switch d := d.(type) {
	case sdk.ValidateDecision:
		d.Reject, d.Labels = normReject(d.Reject), normMap(d.Labels)
		return d
	case sdk.ShapeDecision:
		d.Reject, d.Labels = normReject(d.Reject), normMap(d.Labels)
		return d
	case sdk.RouteDecision:
		d.SetHeader, d.Labels = normMap(d.SetHeader), normMap(d.Labels)
		if len(d.RemoveHeader) == 0 {
			d.RemoveHeader = nil
		}
		return d
	case sdk.RespondDecision:
		d.SetHeader = normMap(d.SetHeader)
		if len(d.RemoveHeader) == 0 {
			d.RemoveHeader = nil
		}
		return d
	}
	return d
}

func normReject(r *sdk.Reject) *sdk.Reject {
	if r == nil {
		return nil
	}
	c := *r
	c.Header = normMap(c.Header)
	return &c
}

func normMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func describe(d any) string {
	switch d := d.(type) {
	case sdk.ValidateDecision:
		if d.Reject != nil {
			return fmt.Sprintf("{Reject:%+v Labels:%v}", *d.Reject, d.Labels)
		}
	case sdk.ShapeDecision:
		if d.Reject != nil {
			return fmt.Sprintf("{Reject:%+v Priority:%v RateKey:%q Cost:%d Labels:%v}", *d.Reject, d.Priority, d.RateKey, d.Cost, d.Labels)
		}
	}
	return fmt.Sprintf("%+v", d)
}

// NewRequest returns a request view for method and target (a path with an
// optional query, or an absolute URL that also sets Scheme and Host), with
// header given as name, value pairs. Route and Service are "test",
// ClientIP 192.0.2.1, Labels empty.
func NewRequest(method, target string, header ...string) *sdk.Request {
	if len(header)%2 != 0 {
		panic("sdktest.NewRequest: header wants name, value pairs")
	}
	u, err := url.Parse(target)
	if err != nil {
		panic(fmt.Sprintf("sdktest.NewRequest: %v", err))
	}
	r := &sdk.Request{
		ID: "test", Method: method, Scheme: "http", Host: "example.test", Path: u.EscapedPath(), RawQuery: u.RawQuery,
		Header: sdk.Header{}, ClientIP: "192.0.2.1", Route: "test", Service: "test", Labels: map[string]string{},
	}
	if u.Scheme != "" {
		r.Scheme, r.Host = u.Scheme, u.Host
	}
	if r.Path == "" {
		r.Path = "/"
	}
	for i := 0; i < len(header); i += 2 {
		k := textproto.CanonicalMIMEHeaderKey(header[i])
		r.Header[k] = append(r.Header[k], header[i+1])
	}
	return r
}

// WithLabels returns r with labels added (for later phases).
func WithLabels(r *sdk.Request, kv ...string) *sdk.Request {
	if len(kv)%2 != 0 {
		panic("sdktest.WithLabels: want name, value pairs")
	}
	c := *r
	c.Labels = map[string]string{}
	for k, v := range r.Labels {
		c.Labels[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		c.Labels[kv[i]] = kv[i+1]
	}
	return &c
}

// testLog writes the plugin's log lines to the test's log until the
// plugin is stopped.
type testLog struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}
