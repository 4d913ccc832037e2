// Command noopplugin is a Gatehouse plugin whose validate phase allows every
// request at once: what one plugin hook call costs the gateway before a
// plugin does any work (the hooks benchmark's gatehouse+plugin peer).
package main

import (
	"context"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/plugin"
)

type noop struct{}

func (noop) Validate(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
	return sdk.ValidateDecision{}, nil
}

func main() { plugin.Serve(noop{}) }
