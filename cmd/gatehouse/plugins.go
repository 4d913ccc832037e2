package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/plugins"
)

// checkPlugins starts every configured plugin as the gateway would
// (handshake, its configuration, a health check, within its start_timeout)
// and stops it again; it reports each one that does not start.
func checkPlugins(cfg *config.Config, stderr io.Writer) bool {
	ok := true
	for i, pc := range cfg.Plugins {
		o, err := gatehouse.PluginOptions(pc, zerolog.Nop())
		if err == nil {
			o.Watch = false
			var h *plugins.Host
			if h, err = plugins.Start(context.Background(), o); err == nil {
				h.Close()
				continue
			}
		}
		fmt.Fprintf(stderr, "plugins[%d] (%s): %v\n", i, pc.Name, err)
		ok = false
	}
	return ok
}
