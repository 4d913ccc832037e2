package wire

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/plugin"
	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// Kind says how a plugin call failed, for counters and logs.
type Kind uint8

// Ways a plugin call fails.
const (
	// KindPlugin: the plugin's hook returned an error (or panicked).
	KindPlugin Kind = iota
	// KindTimeout: the call's deadline passed first.
	KindTimeout
	// KindUnavailable: the plugin is down or restarting, or its connection
	// broke; the call failed fast.
	KindUnavailable
	// KindInvalid: the plugin answered with something that is not a
	// decision of the phase asked (or out of range on the wire).
	KindInvalid
	// KindTooLarge: a message was over the bound on message size.
	KindTooLarge
	// KindOverloaded: the host's bound on calls in flight was reached.
	KindOverloaded
	// KindTransport: any other failure of the RPC itself.
	KindTransport
	numKinds
)

// NumKinds is the number of kinds.
const NumKinds = int(numKinds)

var kindNames = [numKinds]string{"plugin_error", "timeout", "unavailable", "invalid", "too_large", "overloaded", "transport"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Kinds lists every kind, for metrics.
func Kinds() []Kind {
	out := make([]Kind, numKinds)
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

// Error is a failed plugin call.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Kind.String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a call's error (KindTransport for an error
// that is not an *Error).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransport
}

// maxErrorText bounds the text of a plugin's error kept in the gateway.
const maxErrorText = 1 << 10

// DefaultCallTimeout bounds a call whose context has no deadline (the
// gateway's calls always have one; tests may not).
const DefaultCallTimeout = 10 * time.Second

// Transport is how calls travel to the plugin.
type Transport string

// The transports. Frames is the default (DefaultTransport): measured with
// BenchmarkRoundTrip on a 2-core machine, a call on the framed call socket
// takes about a quarter less CPU on each side than one on the gRPC stream,
// which itself costs about half of a unary call.
const (
	// TransportStream multiplexes calls over one long-lived bidirectional
	// stream (falling back to unary calls while the stream is re-opened,
	// or for a plugin whose SDK does not serve it).
	TransportStream Transport = "stream"
	// TransportUnary makes one unary RPC per call.
	TransportUnary Transport = "unary"
	// TransportFrames multiplexes calls like TransportStream, but on the
	// plugin's framed call socket (length-prefixed messages on a Unix
	// socket checked with SO_PEERCRED, without HTTP/2 and TLS) when the
	// plugin offers one (SDK 1.1, Linux); otherwise, or once that socket
	// breaks, on the Calls stream.
	TransportFrames Transport = "frames"
)

// DefaultTransport is the transport the gateway uses unless a plugin's
// options say otherwise (plugins.DefaultOptions), and sdktest.Exec's.
const DefaultTransport = TransportFrames

// ConnOptions configure a Conn.
type ConnOptions struct {
	// Name is the plugin's name, for errors and logs.
	Name string
	// Config is the plugin's configuration blob, passed to Configure.
	Config []byte
	// MaxBodyBytes bounds the request body sent to the plugin; a longer
	// body is cut and marked truncated. 0 sends no body.
	MaxBodyBytes int
	// MaxMessageBytes is the largest message the host accepts (told to the
	// plugin; the gRPC connection must enforce it).
	MaxMessageBytes int
	// Transport picks unary calls, the multiplexed stream or frames.
	Transport Transport
	// PeerPID is the plugin's process ID: the framed call socket must be
	// served by it. 0: no frames.
	PeerPID int
}

// Info is what a plugin said of itself at Configure.
type Info struct {
	Phases     sdk.PhaseSet
	Features   []string
	SDKVersion string
	// Transport is the transport chosen at Configure; Conn.Transport says
	// which one calls use now (after a fallback).
	Transport Transport
	// FramesError says why frames were asked for and not used ("" when
	// they were, or were not asked for, or the plugin does not offer them).
	FramesError string
}

// Conn is the host side of one plugin connection: it implements the sdk
// phase interfaces (and sdk.PhaseReporter) by calling the plugin, each call
// bounded by its context's deadline, which travels with the call.
type Conn struct {
	name    string
	client  pluginpb.PluginClient
	health  healthpb.HealthClient
	info    Info
	maxBody int
	mux     *mux
	closed  atomic.Bool
}

// NewConn configures the plugin served on cc (Configure, within ctx) and
// returns a Conn to it. It does not own cc.
func NewConn(ctx context.Context, cc grpc.ClientConnInterface, o ConnOptions) (*Conn, error) {
	if o.MaxMessageBytes <= 0 {
		return nil, fmt.Errorf("ConnOptions.MaxMessageBytes = %d: must be positive", o.MaxMessageBytes)
	}
	c := &Conn{name: o.Name, client: pluginpb.NewPluginClient(cc), health: healthpb.NewHealthClient(cc), maxBody: o.MaxBodyBytes}
	frames := o.Transport == TransportFrames && o.PeerPID > 0
	resp, err := c.client.Configure(ctx, &pluginpb.ConfigureRequest{
		ProtocolVersion: plugin.ProtocolVersion, Name: o.Name, Config: o.Config, MaxMessageBytes: int64(o.MaxMessageBytes),
		Frames: frames,
	})
	if err != nil {
		if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
			return nil, fmt.Errorf("the plugin refused its configuration: %s", s.Message())
		}
		return nil, fmt.Errorf("configure: %w", err)
	}
	for _, p := range resp.Phases {
		if sp := sdk.Phase(p - 1); p > 0 && sp.Valid() {
			c.info.Phases = c.info.Phases.With(sp)
		}
	}
	if c.info.Phases.Empty() {
		return nil, errors.New("the plugin takes part in no phase")
	}
	c.info.Features, c.info.SDKVersion = resp.Features, resp.SdkVersion
	c.info.Transport = TransportUnary
	if o.Transport != TransportUnary && slices.Contains(resp.Features, "stream") {
		var fs *frameStream
		if frames && resp.FramesAddress != "" {
			timeout := time.Second
			if dl, ok := ctx.Deadline(); ok {
				timeout = time.Until(dl)
			}
			if fs, err = dialFrames(resp.FramesAddress, o.PeerPID, o.MaxMessageBytes, timeout); err != nil {
				c.info.FramesError = err.Error()
			}
		}
		m, err := newMux(c.client, fs, o.MaxMessageBytes, o.Name)
		if err != nil {
			return nil, fmt.Errorf("open the call stream: %w", err)
		}
		c.mux, c.info.Transport = m, TransportStream
		if fs != nil {
			c.info.Transport = TransportFrames
		}
	}
	return c, nil
}

// Info returns what the plugin said of itself.
func (c *Conn) Info() Info { return c.info }

// Transport returns the transport calls use now: the one chosen at
// Configure until it breaks; then TransportStream once a new Calls stream
// is open, and TransportUnary meanwhile (or when the plugin serves no
// stream).
func (c *Conn) Transport() Transport {
	if c.mux == nil {
		return TransportUnary
	}
	return c.mux.transport()
}

// Phases implements sdk.PhaseReporter: the phases the plugin reported.
func (c *Conn) Phases() sdk.PhaseSet { return c.info.Phases }

// Close stops the Conn's stream; calls fail (unavailable) afterwards.
func (c *Conn) Close() {
	if c.closed.CompareAndSwap(false, true) && c.mux != nil {
		c.mux.close()
	}
}

// Ping checks the plugin's health service within ctx.
func (c *Conn) Ping(ctx context.Context) error {
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "plugin"})
	if err != nil {
		return err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// do makes one call and returns the plugin's answer, or the call's error.
func (c *Conn) do(ctx context.Context, req *pluginpb.CallRequest) (*pluginpb.CallResponse, error) {
	if c.closed.Load() {
		return nil, &Error{Kind: KindUnavailable, Err: errors.New("the plugin connection is closed")}
	}
	dl, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
		dl, _ = ctx.Deadline()
	}
	left := time.Until(dl)
	if left <= 0 {
		return nil, &Error{Kind: KindTimeout, Err: errors.New("no time left for the call")}
	}
	req.TimeoutNanos = int64(left)
	var resp *pluginpb.CallResponse
	var err error
	if c.mux != nil {
		resp, err = c.mux.call(ctx, req)
	} else {
		resp, err = c.client.Call(ctx, req)
	}
	if err != nil {
		return nil, classify(ctx, err)
	}
	if resp.Error != "" {
		msg := resp.Error
		if len(msg) > maxErrorText {
			msg = msg[:maxErrorText] + "…"
		}
		kind := KindPlugin
		switch resp.ErrorKind {
		case pluginpb.ErrorKind_ERROR_KIND_TOO_LARGE:
			kind = KindTooLarge
		case pluginpb.ErrorKind_ERROR_KIND_MALFORMED:
			kind = KindInvalid
		}
		return nil, &Error{Kind: kind, Err: errors.New(msg)}
	}
	return resp, nil
}

// classify turns a transport error into an *Error of the right kind.
func classify(ctx context.Context, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if ctx.Err() != nil {
		return &Error{Kind: KindTimeout, Err: ctx.Err()}
	}
	s, ok := status.FromError(err)
	if !ok {
		return &Error{Kind: KindTransport, Err: err}
	}
	switch s.Code() {
	case codes.DeadlineExceeded:
		return &Error{Kind: KindTimeout, Err: errors.New(s.Message())}
	case codes.Unavailable, codes.Canceled:
		return &Error{Kind: KindUnavailable, Err: errors.New(s.Message())}
	case codes.ResourceExhausted:
		return &Error{Kind: KindTooLarge, Err: errors.New(s.Message())}
	}
	return &Error{Kind: KindTransport, Err: fmt.Errorf("%s: %s", s.Code(), s.Message())}
}

// CallValidate runs the validate phase and returns the plugin's cache hint.
func (c *Conn) CallValidate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, Hint, error) {
	resp, err := c.do(ctx, &pluginpb.CallRequest{Phase: pluginpb.Phase_PHASE_VALIDATE, Request: requestToWire(req, c.maxBody)})
	if err != nil {
		return sdk.ValidateDecision{}, Hint{}, err
	}
	d, err := validateFromWire(resp)
	return d, hintFromWire(resp.Cache), err
}

// CallShape runs the shape phase and returns the plugin's cache hint.
func (c *Conn) CallShape(ctx context.Context, req *sdk.Request) (sdk.ShapeDecision, Hint, error) {
	resp, err := c.do(ctx, &pluginpb.CallRequest{Phase: pluginpb.Phase_PHASE_SHAPE, Request: requestToWire(req, c.maxBody)})
	if err != nil {
		return sdk.ShapeDecision{}, Hint{}, err
	}
	d, err := shapeFromWire(resp)
	return d, hintFromWire(resp.Cache), err
}

// CallRoute runs the route phase and returns the plugin's cache hint.
func (c *Conn) CallRoute(ctx context.Context, req *sdk.Request) (sdk.RouteDecision, Hint, error) {
	resp, err := c.do(ctx, &pluginpb.CallRequest{Phase: pluginpb.Phase_PHASE_ROUTE, Request: requestToWire(req, c.maxBody)})
	if err != nil {
		return sdk.RouteDecision{}, Hint{}, err
	}
	d, err := routeFromWire(resp)
	return d, hintFromWire(resp.Cache), err
}

// CallRespond runs the respond phase.
func (c *Conn) CallRespond(ctx context.Context, req *sdk.Request, r *sdk.Response) (sdk.RespondDecision, error) {
	resp, err := c.do(ctx, &pluginpb.CallRequest{
		Phase: pluginpb.Phase_PHASE_RESPOND, Request: requestToWire(req, c.maxBody),
		Response: &pluginpb.Response{Status: clamp32(r.Status), Header: headerToWire(r.Header)},
	})
	if err != nil {
		return sdk.RespondDecision{}, err
	}
	return respondFromWire(resp)
}

// CallObserve runs the observe phase.
func (c *Conn) CallObserve(ctx context.Context, obs *sdk.Observation) error {
	_, err := c.do(ctx, &pluginpb.CallRequest{Phase: pluginpb.Phase_PHASE_OBSERVE, Observation: observationToWire(obs, c.maxBody)})
	return err
}

// Validate implements sdk.Validator.
func (c *Conn) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	d, _, err := c.CallValidate(ctx, req)
	return d, err
}

// Shape implements sdk.Shaper.
func (c *Conn) Shape(ctx context.Context, req *sdk.Request) (sdk.ShapeDecision, error) {
	d, _, err := c.CallShape(ctx, req)
	return d, err
}

// Route implements sdk.Router.
func (c *Conn) Route(ctx context.Context, req *sdk.Request) (sdk.RouteDecision, error) {
	d, _, err := c.CallRoute(ctx, req)
	return d, err
}

// Respond implements sdk.Responder.
func (c *Conn) Respond(ctx context.Context, req *sdk.Request, resp *sdk.Response) (sdk.RespondDecision, error) {
	return c.CallRespond(ctx, req, resp)
}

// Observe implements sdk.Observer; a failed call is dropped.
func (c *Conn) Observe(ctx context.Context, obs *sdk.Observation) { _ = c.CallObserve(ctx, obs) }

var (
	_ sdk.Validator     = (*Conn)(nil)
	_ sdk.Shaper        = (*Conn)(nil)
	_ sdk.Router        = (*Conn)(nil)
	_ sdk.Responder     = (*Conn)(nil)
	_ sdk.Observer      = (*Conn)(nil)
	_ sdk.PhaseReporter = (*Conn)(nil)
)
