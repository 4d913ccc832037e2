package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/plugins"
)

// checkPlugins starts every configured plugin as run does (handshake, its
// configuration, a health check, within its start_timeout) and stops it
// again; errors are worded as run's.
func checkPlugins(cfg *config.Config) config.Errors {
	var es config.Errors
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
		es = append(es, cfg.ErrorAt(fmt.Sprintf("plugins[%d].path", i), fmt.Sprintf("plugin %q did not start: %v", pc.Name, err)))
	}
	return es
}
