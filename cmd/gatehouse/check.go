package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/balance"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/core/trace"
)

// cmdCheck runs `gatehouse check`: it builds the configuration as run would,
// without binding any socket, and reports every error it finds, each with
// its file, line and key, so that a file check accepts is one run starts.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	ca, code, done := parseConfigArgs("check", args, stdout, stderr)
	if done {
		return code
	}
	cfg, err := loadConfig(ca.path, ca.format)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if es := checkConfig(cfg); len(es) > 0 {
		printErrors(stderr, es)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d services, %d routes)\n", ca.path, len(cfg.Listeners), len(cfg.Services), len(cfg.Routes))
	return 0
}

// checkConfig does what gatehouse.New does to a valid configuration before
// it listens, and returns what New would refuse, sorted by line. New stops
// at its first error; checkConfig checks each balancer, Go hook, script and
// plugin on its own so that it reports them all, then builds the runtime
// (proxy.Build, as New does) for whatever else New would refuse.
func checkConfig(cfg *config.Config) config.Errors {
	var es config.Errors
	add := func(path, msg string) { es = append(es, cfg.ErrorAt(path, msg)) }

	for i, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		// Validate only finds the files readable; the listener parses them.
		if _, err := tls.LoadX509KeyPair(l.TLS.Cert, l.TLS.Key); err != nil {
			add(fmt.Sprintf("listeners[%d].tls.cert", i), "listener tls: "+err.Error())
		}
	}
	if t := cfg.Observe.Tracing; t.Enabled {
		exp, err := trace.NewOTLP(t.Endpoint, t.ExportTimeout.Std())
		if err != nil {
			add("observe.tracing.endpoint", err.Error())
		} else {
			exp.Shutdown(context.Background())
		}
	}
	for i, sc := range cfg.Services {
		eps := make([]*balance.Endpoint, len(sc.Endpoints))
		for j, addr := range sc.Endpoints {
			eps[j] = &balance.Endpoint{Addr: addr}
		}
		// The name is what the balance registry knows; the options are
		// checked with the service's own values by proxy.Build below.
		if _, err := balance.New(sc.Balancer, eps); err != nil {
			add(fmt.Sprintf("services[%d].balancer", i), err.Error())
		}
	}
	checkGoHooks := func(path string, bs []config.HookBinding) {
		for i, b := range bs {
			if b.Go == "" {
				continue
			}
			if _, err := hook.NewGo(b.Go, b.Config); err != nil {
				add(fmt.Sprintf("%s[%d].go", path, i), err.Error())
			}
		}
	}
	checkGoHooks("hooks", cfg.Hooks)
	for i, r := range cfg.Routes {
		checkGoHooks(fmt.Sprintf("routes[%d].hooks", i), r.Hooks)
	}
	es = append(es, checkScripts(cfg)...)
	es = append(es, checkPlugins(cfg)...)

	reported := make(map[string]bool, len(es))
	for _, e := range es {
		reported[e.Path] = true
	}
	for _, e := range buildRuntime(cfg) {
		if e.Path == "" || !reported[e.Path] {
			es = append(es, e)
		}
	}
	slices.SortStableFunc(es, func(a, b *config.Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return es
}

// buildRuntime builds the proxy runtime as gatehouse.New does, with every
// configured script and plugin standing in as loaded (checkConfig checks
// them itself), and releases it again; it never activates the runtime, so
// no health check starts.
func buildRuntime(cfg *config.Config) config.Errors {
	loaded := func(names map[string]bool) func(string) hook.Source {
		return func(name string) hook.Source {
			if names[name] {
				return hook.Static{}
			}
			return nil
		}
	}
	scriptNames, pluginNames := map[string]bool{}, map[string]bool{}
	for _, sc := range cfg.Scripts {
		scriptNames[sc.Name] = true
	}
	for _, pc := range cfg.Plugins {
		pluginNames[pc.Name] = true
	}
	shared := &proxy.Shared{Log: zerolog.Nop(), Scripts: loaded(scriptNames), Plugins: loaded(pluginNames)}
	_, err := proxy.Build(cfg, shared)
	shared.Close()
	if shared.HookObservers != nil {
		shared.HookObservers.Close()
	}
	if err == nil {
		return nil
	}
	var es config.Errors
	if errors.As(err, &es) {
		return es
	}
	return config.Errors{{File: cfg.Source, Msg: err.Error()}}
}
