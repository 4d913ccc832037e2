package harness

import (
	"context"
	"runtime"
	"strconv"
)

// Stdproxy is a tuned httputil.ReverseProxy (bench/cmd/stdproxy): what a Go
// user would write instead of a gateway.
type Stdproxy struct{}

var _ Peer = Stdproxy{}

// Name implements Peer.
func (Stdproxy) Name() string { return "stdproxy" }

// Prepare implements Peer.
func (Stdproxy) Prepare(context.Context, *Env) (string, error) {
	return "httputil.ReverseProxy, " + runtime.Version(), nil
}

// Start implements Peer.
func (Stdproxy) Start(ctx context.Context, e *Env, cfg StartConfig) (*Instance, error) {
	listen, err := FreePort()
	if err != nil {
		return nil, err
	}
	return e.startProxy(ctx, "stdproxy", listen, []string{"GOMAXPROCS=1"},
		e.Stdproxy, "-addr", listen, "-backend", cfg.Backend, "-conns", strconv.Itoa(cfg.Conns))
}
