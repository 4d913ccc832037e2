package gatehouse

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/metrics"
	"github.com/gatehouse/gatehouse/plugins"
	"github.com/gatehouse/gatehouse/plugins/wire"
)

// PluginOptions are the options a configured plugin runs with.
func PluginOptions(pc config.Plugin, lg zerolog.Logger) (plugins.Options, error) {
	o := plugins.DefaultOptions()
	o.Name, o.Path = pc.Name, pc.Path
	o.Args, o.Env = pc.Args, pc.Env
	if pc.Config != nil {
		b, err := json.Marshal(pc.Config)
		if err != nil {
			return o, fmt.Errorf("config: %w", err)
		}
		o.Config = b
	}
	o.ConfigFile = pc.ConfigFile
	o.StartTimeout = pc.StartTimeout.Std()
	o.HealthInterval, o.HealthTimeout, o.HealthFailures = pc.Health.Interval.Std(), pc.Health.Timeout.Std(), pc.Health.Failures
	o.RestartBackoff, o.MaxRestartBackoff, o.StableAfter = pc.Restart.BackoffMin.Std(), pc.Restart.BackoffMax.Std(), pc.Restart.StableAfter.Std()
	o.DrainTimeout = pc.DrainTimeout.Std()
	o.MaxConcurrent = pc.MaxConcurrent
	o.MaxMessageBytes, o.MaxBodyBytes = int(pc.MaxMessageBytes), int(pc.MaxBodyBytes)
	o.CacheEntries, o.CacheMaxTTL = pc.Cache.MaxEntries, pc.Cache.MaxTTL.Std()
	o.Watch = pc.Watch
	o.Limits = wire.Limits{
		MemoryBytes: uint64(pc.Limits.Memory),
		OpenFiles:   uint64(pc.Limits.OpenFiles),
		// RLIMIT_CPU counts whole seconds: round up, so that a bound below a
		// second is not "no bound".
		CPUSeconds: uint64((pc.Limits.CPU.Std() + time.Second - 1) / time.Second),
	}
	o.Logger = lg
	return o, nil
}

// pluginSet is the running plugin hosts, by name. Reload changes it under
// the gateway's lock; bindings resolve names through source.
type pluginSet struct {
	mu     sync.Mutex
	hosts  map[string]*pluginHost
	closes sync.WaitGroup // hosts being closed in the background

	downMu sync.Mutex
	down   map[string]func() // by plugin: releases the readiness hold of a plugin that is down
}

type pluginHost struct {
	cfg  config.Plugin
	host *plugins.Host
}

// pluginPlan is what a configuration does to the running plugins: hosts it
// started, hosts it reconfigured (with their previous settings, to roll
// back) and the resulting set.
type pluginPlan struct {
	next         map[string]*pluginHost
	started      []*pluginHost
	reconfigured map[*pluginHost]config.Plugin
}

// openPlugins starts the plugins of c that are not running, reconfigures
// (hot reloads) those whose settings changed and keeps the others. A plugin
// that fails to start refuses the whole configuration: what was started is
// closed, what was reconfigured goes back to its settings, and the error
// names the plugin's key.
func (g *Gateway) openPlugins(c *Config) (*pluginPlan, error) {
	g.plugins.mu.Lock()
	running := g.plugins.hosts
	g.plugins.mu.Unlock()
	plan := &pluginPlan{next: make(map[string]*pluginHost, len(c.Plugins)), reconfigured: map[*pluginHost]config.Plugin{}}
	for i, pc := range c.Plugins {
		path := fmt.Sprintf("plugins[%d]", i)
		o, err := PluginOptions(pc, g.log)
		o.OnUp = g.pluginUp(pc.Name)
		if err == nil {
			if old := running[pc.Name]; old != nil {
				if reflect.DeepEqual(old.cfg, pc) {
					// Same settings: the files may still have changed
					// (a binary replaced without watch).
					old.host.Recheck()
					plan.next[pc.Name] = old
					continue
				}
				if err = old.host.Reconfigure(o); err == nil {
					plan.reconfigured[old] = old.cfg
					old.cfg = pc
					plan.next[pc.Name] = old
					continue
				}
			} else {
				var h *plugins.Host
				if h, err = plugins.Start(context.Background(), o); err == nil {
					ph := &pluginHost{cfg: pc, host: h}
					plan.started = append(plan.started, ph)
					plan.next[pc.Name] = ph
					continue
				}
			}
		}
		g.rollbackPlugins(plan)
		msg := fmt.Sprintf("plugin %q did not start: %v", pc.Name, err)
		if ce := c.ErrorAt(path+".path", msg); ce != nil {
			return nil, config.Errors{ce}
		}
		return nil, fmt.Errorf("%s: %s", path, msg)
	}
	return plan, nil
}

// rollbackPlugins undoes what openPlugins did for a configuration that is
// refused.
func (g *Gateway) rollbackPlugins(plan *pluginPlan) {
	for _, ph := range plan.started {
		ph.host.Close()
	}
	for ph, prev := range plan.reconfigured {
		o, err := PluginOptions(prev, g.log)
		o.OnUp = g.pluginUp(prev.Name)
		if err == nil {
			err = ph.host.Reconfigure(o)
		}
		if err != nil {
			g.log.Error().Err(err).Str("plugin", prev.Name).Msg("plugin not restored to its previous settings after a refused configuration")
			continue
		}
		ph.cfg = prev
	}
}

// commit makes plan's hosts the running ones and closes, in the
// background, those it no longer uses (their calls in flight finish first).
func (s *pluginSet) commit(plan *pluginPlan) {
	s.mu.Lock()
	old := s.hosts
	s.hosts = plan.next
	s.mu.Unlock()
	for name, ph := range old {
		if plan.next[name] != ph {
			s.closes.Add(1)
			go func() {
				defer s.closes.Done()
				ph.host.Close()
				s.up(name)
			}()
		}
	}
}

// pluginUp returns the plugin's OnUp: while the plugin is down, it holds
// the gateway's readiness (/readyz answers 503 naming it), so that a
// balancer in front may prefer another instance; the bindings' failure
// policy answers requests meanwhile.
func (g *Gateway) pluginUp(name string) func(up bool, why string) {
	return func(up bool, _ string) {
		if up {
			g.plugins.up(name)
			return
		}
		s := &g.plugins
		s.downMu.Lock()
		defer s.downMu.Unlock()
		if s.down[name] == nil {
			if s.down == nil {
				s.down = map[string]func(){}
			}
			s.down[name] = g.gate.Hold("plugin " + name + " is down")
		}
	}
}

// up releases the readiness hold of plugin name, if any.
func (s *pluginSet) up(name string) {
	s.downMu.Lock()
	defer s.downMu.Unlock()
	if release := s.down[name]; release != nil {
		release()
		delete(s.down, name)
	}
}

// closeAll closes every host and waits until each has stopped its
// processes and removed its socket directory.
func (s *pluginSet) closeAll() {
	s.mu.Lock()
	hosts := s.hosts
	s.hosts = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for name, ph := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ph.host.Close()
			s.up(name)
		}()
	}
	wg.Wait()
	s.closes.Wait()
}

// source resolves a binding's plugin name (nil: not running).
func (s *pluginSet) source(m map[string]*pluginHost) func(string) hook.Source {
	return func(name string) hook.Source {
		if ph := m[name]; ph != nil {
			return ph.host
		}
		return nil
	}
}

// Ready reports whether every configured plugin is up: started, and its
// serving version has a live process. While a plugin restarts after a crash
// the gateway still answers (the bindings' failure policy applies), but it
// reports not ready, so that a balancer in front may prefer another
// instance.
func (s *pluginSet) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ph := range s.hosts {
		if !ph.host.Up() {
			return false
		}
	}
	return true
}

// stats lists the running plugins' counters for /metrics.
func (s *pluginSet) stats() []plugins.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]plugins.Stats, 0, len(s.hosts))
	for _, ph := range s.hosts {
		out = append(out, ph.host.Stats())
	}
	return out
}

// pluginCollector is the plugins' part of /metrics.
func (s *pluginSet) collector() metrics.PluginCollector {
	return metrics.PluginCollector{Plugins: func() []metrics.PluginStat {
		sts := s.stats()
		out := make([]metrics.PluginStat, len(sts))
		for i, st := range sts {
			out[i] = metrics.PluginStat{
				Name: st.Name, Version: st.Version, Up: st.Up,
				Calls: st.Calls, Failures: st.Failures,
				Restarts: st.Restarts, Reloads: st.Reloads, Refusals: st.Refusals,
				CacheHits: st.CacheHits, CacheMisses: st.CacheMisses,
				LatencyBuckets: plugins.LatencyBuckets, LatencyCounts: st.LatencyCounts, LatencySum: st.LatencySum,
			}
		}
		return out
	}}
}

// PluginsReady reports whether every configured plugin is up (see /readyz).
func (g *Gateway) PluginsReady() bool { return g.plugins.Ready() }

// PluginStats returns the running plugins' counters.
func (g *Gateway) PluginStats() []plugins.Stats { return g.plugins.stats() }
