package harness

import "context"

// Direct is the direct path: the load goes to the backend itself. Its latency
// is the floor every proxy's overhead is measured against.
type Direct struct{}

var _ Peer = Direct{}

// Name implements Peer.
func (Direct) Name() string { return "direct" }

// Prepare implements Peer.
func (Direct) Prepare(context.Context, *Env) (string, error) {
	return "no proxy (load → backend)", nil
}

// Start implements Peer.
func (Direct) Start(_ context.Context, _ *Env, cfg StartConfig) (*Instance, error) {
	return &Instance{Addr: cfg.Backend}, nil
}
