// Package plugin turns a hook into a Gatehouse plugin binary: a plugin's
// main is one call,
//
//	func main() { plugin.Serve(&myHook{}) }
//
// where myHook implements the sdk phase interfaces it takes part in (and
// optionally Configurer). The gateway starts the binary
// (github.com/hashicorp/go-plugin over gRPC, with mutual TLS on a Unix
// socket), negotiates the protocol version, passes it its configuration
// and calls its phases over the wire protocol of sdk/pluginpb (whose
// plugin.proto states the compatibility rule): one call per phase per
// request, each with the request's time left as its context's deadline.
// sdk/sdktest tests a plugin in process and as a built binary.
//
// Serve is what the design calls sdk.Serve. It lives in a package apart
// from sdk so that sdk, which the gateway's core imports, stays free of
// gRPC and go-plugin (sdk imports only the standard library; a test
// checks it); plugin authors import sdk and sdk/plugin only.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// ProtocolVersion is the plugin wire protocol's version, negotiated in the
// go-plugin handshake. It changes only when the protocol changes
// incompatibly (see sdk/pluginpb/plugin.proto for the rule); compatible
// additions keep it, and the gateway keeps offering older versions so that
// an old plugin keeps working with a newer gateway.
const ProtocolVersion = 1

// SDKVersion is this SDK's version, reported to the gateway for its logs.
const SDKVersion = "1.1.0"

// PluginName is the name the plugin service is dispensed under in go-plugin.
const PluginName = "gatehouse"

// Handshake is the go-plugin handshake shared by the gateway and its
// plugins. The magic cookie is not a secret: it only stops a plugin binary
// that is run by hand from waiting for a gateway that is not there.
func Handshake() goplugin.HandshakeConfig {
	return goplugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "GATEHOUSE_PLUGIN",
		MagicCookieValue: "d3b1a6f0-gatehouse-hook-plugin",
	}
}

// Features are the optional parts of the protocol this SDK serves.
var features = []string{"stream", "cache", "frames"}

// Configurer is implemented by plugins that take configuration. The
// gateway calls Configure once per process, before any phase, with the
// plugin's config blob from the gateway's configuration (its YAML, passed
// as JSON; nil when there is none). An error refuses the plugin: it is
// reported at start (or reload) and the plugin does not serve.
type Configurer interface {
	Configure(ctx context.Context, config []byte) error
}

// Serve serves impl as a Gatehouse plugin: it is the whole of a plugin
// binary's main. impl implements the sdk phase interfaces it takes part in
// (sdk.Validator, Shaper, Router, Responder, Observer; at least one), and
// optionally Configurer. Serve returns when the gateway stops the plugin.
//
// Before Serve, a plugin must not write to standard output: the handshake
// uses it. Once serving, what the plugin writes to its standard output and
// error (log.Printf, fmt.Println) reaches the gateway's log, tagged with the
// plugin's name. A panic in a phase is recovered and fails that call only.
// A binary started by hand (not by the gateway) prints a notice and exits 1.
//
// Unless its environment sets GOMAXPROCS, a plugin runs Go code on one CPU
// at a time (runtime.GOMAXPROCS(1)): plugins mostly wait on other services,
// one CPU serves thousands of concurrent calls, and with a single P the Go
// scheduler does not wake a second thread for each hand-off of a call,
// which halves the latency of a call (BenchmarkRoundTrip in package
// plugins) and keeps a busy plugin from taking a second core from the
// gateway. A plugin that needs more sets GOMAXPROCS in its environment.
func Serve(impl any) {
	if sdk.PhasesOf(impl).Empty() {
		fmt.Fprintf(os.Stderr, "gatehouse plugin: %T implements no phase interface (Validator, Shaper, Router, Responder, Observer)\n", impl)
		os.Exit(1)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  Handshake(),
		VersionedPlugins: map[int]goplugin.PluginSet{ProtocolVersion: {PluginName: &servePlugin{impl: impl}}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	})
}

// maxMessageBytes bounds the messages a plugin accepts and sends (4 MiB,
// gRPC's default). The gateway bounds what it accepts on its own side.
const maxMessageBytes = 4 << 20

// Register registers impl as the plugin service on s. Serve uses it;
// sdktest uses it to serve a hook in process over the same protocol. It
// fails when impl implements no phase interface.
func Register(s *grpc.Server, impl any) error {
	if sdk.PhasesOf(impl).Empty() {
		return fmt.Errorf("plugin: %T implements no phase interface", impl)
	}
	pluginpb.RegisterPluginServer(s, newPluginServer(impl))
	return nil
}

// servePlugin is the go-plugin side of Serve.
type servePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	impl any
}

func (p *servePlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	return Register(s, p.impl)
}

func (p *servePlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("plugin: the client side of a plugin is the gateway's")
}

// Cache hints.

// cacheSlot is where CacheFor leaves its hint for the call in progress.
type cacheSlot struct {
	ttl  time.Duration
	vary []string
}

type cacheSlotKey struct{}

// VaryParts lists the request parts a cached decision may depend on, for
// CacheFor: a header is "header:NAME", a label "label:NAME".
var VaryParts = []string{"method", "host", "path", "query", "client_ip", "route", "service", "tls_peer", "header:NAME", "label:NAME"}

// CacheFor lets the gateway reuse the decision being returned, for at most
// ttl, for requests that agree on the parts named in vary (see VaryParts),
// e.g. an auth decision per token:
//
//	plugin.CacheFor(ctx, time.Minute, "header:Authorization")
//
// Call it from a phase method with the context it received, before
// returning. The gateway bounds the cache in entries and time (its TTL
// caps ttl) and never caches errors. An empty vary is refused: a decision
// that depends on nothing would be shared by every request. Outside a
// plugin call (a Go hook in process, a test calling the method directly)
// CacheFor does nothing and returns nil once its arguments are valid.
func CacheFor(ctx context.Context, ttl time.Duration, vary ...string) error {
	if ttl <= 0 {
		return fmt.Errorf("plugin.CacheFor: ttl %v is not positive", ttl)
	}
	if len(vary) == 0 {
		return errors.New("plugin.CacheFor: no request part to vary on")
	}
	for _, v := range vary {
		if !validVary(v) {
			return fmt.Errorf("plugin.CacheFor: unknown request part %q (valid: %s)", v, strings.Join(VaryParts, ", "))
		}
	}
	if s, ok := ctx.Value(cacheSlotKey{}).(*cacheSlot); ok {
		s.ttl, s.vary = ttl, append(s.vary[:0], vary...)
	}
	return nil
}

func validVary(v string) bool {
	switch v {
	case "method", "host", "path", "query", "client_ip", "route", "service", "tls_peer":
		return true
	}
	name, ok := strings.CutPrefix(v, "header:")
	if !ok {
		name, ok = strings.CutPrefix(v, "label:")
	}
	return ok && name != ""
}

// Stderr is the plugin process's own standard error, as it was before
// Serve. Serve (go-plugin) replaces os.Stderr with a stream to the gateway
// that loses what was written last when the process exits right after (an
// os.Exit, a crash); what is written to Stderr is read by the gateway to
// the end. Each line is logged by the gateway under the plugin's name; a
// line in hclog's JSON form keeps its level and fields.
var Stderr io.Writer = os.Stderr

// panicLog logs recovered panics to Stderr, one JSON line each: the
// gateway logs it as one error with the panic and its stack.
var panicLog = hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Error, Output: Stderr, JSONFormat: true})

// maxStack bounds the stack logged with a panic, under the gateway's
// longest log line (4 KiB).
const maxStack = 3 << 10

// panicError describes a recovered panic with the stack of the phase.
func panicError(r any) string {
	stack := string(debug.Stack())
	if len(stack) > maxStack {
		stack = stack[:maxStack] + "..."
	}
	panicLog.Error("panic in phase", "panic", fmt.Sprint(r), "stack", stack)
	return fmt.Sprintf("panic: %v", r)
}
