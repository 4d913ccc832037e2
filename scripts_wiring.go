package gatehouse

import (
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/scripts"
)

// scriptHost serves a configured script to hook bindings: a hook.Source
// whose version follows the script host's hot reloads.
type scriptHost struct {
	cfg  config.Script
	host *scripts.Host
	cur  atomic.Pointer[hook.Version]
}

func (s *scriptHost) Current() *hook.Version { return s.cur.Load() }

// ScriptOptions are the options a configured script runs with.
func ScriptOptions(sc config.Script, lg zerolog.Logger) scripts.Options {
	o := scripts.DefaultOptions()
	o.Config = sc.Config
	o.PoolSize = sc.Runtimes
	o.MaxCallMemory = int64(sc.MaxCallMemory)
	o.MaxRuntimeCalls = sc.MaxRuntimeCalls
	// "script" is the configured name; the script host's own lines name
	// the file as "file", so that no line holds a key twice.
	o.Logger = lg.With().Str("script", sc.Name).Logger()
	return o
}

// openScripts returns a host per configured script: the running one when its
// settings did not change, a new one otherwise. A running host reads its
// files again first and reloads them if they changed, as it does for a
// change it is notified of: a reload (POST /admin/reload, SIGHUP) picks up
// a script change the watcher missed. A script that does not compile (or
// fails its own cases) refuses the whole configuration when its host is
// new (the new hosts opened so far are closed again); a running host
// refuses the changed version and keeps serving the one it has.
func (g *Gateway) openScripts(c *Config) (map[string]*scriptHost, error) {
	out := make(map[string]*scriptHost, len(c.Scripts))
	var opened []*scriptHost
	for i, sc := range c.Scripts {
		if old := g.scripts[sc.Name]; old != nil && reflect.DeepEqual(old.cfg, sc) {
			old.host.Recheck()
			out[sc.Name] = old
			continue
		}
		sh := &scriptHost{cfg: sc}
		// The host logs each refusal itself, once, with where the
		// error is and both versions: no callback is needed for that.
		host, err := scripts.Watch(g.ctx, sc.File, ScriptOptions(sc, g.log),
			func(_, next *scripts.Script) { sh.cur.Store(hook.NewVersion(sc.Name, next, next.ID())) },
			nil)
		if err != nil {
			for _, o := range opened {
				o.host.Close()
			}
			path := fmt.Sprintf("scripts[%d].file", i)
			if ce := c.ErrorAt(path, err.Error()); ce != nil {
				return nil, config.Errors{ce}
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		sh.host = host
		if cur := host.Current(); cur != nil {
			sh.cur.Store(hook.NewVersion(sc.Name, cur, cur.ID()))
		}
		out[sc.Name] = sh
		opened = append(opened, sh)
	}
	return out, nil
}

// closeScripts closes the hosts of old that next does not use.
func closeScripts(old, next map[string]*scriptHost) {
	for name, sh := range old {
		if next[name] != sh {
			sh.host.Close()
		}
	}
}

func scriptSource(m map[string]*scriptHost) func(string) hook.Source {
	return func(name string) hook.Source {
		if sh := m[name]; sh != nil {
			return sh
		}
		return nil
	}
}

func init() { hook.RegisterErrorKinds(scriptErrorKind) }

// scriptErrorKind counts a script's answer that is not a decision as
// invalid, like a decision the core's checks refuse.
func scriptErrorKind(err error) (hook.FailureKind, bool) {
	if errors.Is(err, scripts.ErrInvalidDecision) {
		return hook.FailInvalid, true
	}
	return 0, false
}
