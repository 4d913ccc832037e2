package scripts

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Options are the bounds and settings of a compiled script. Every bound is
// required: Compile refuses a zero or negative bound, naming the field.
// DefaultOptions returns finite defaults to start from.
type Options struct {
	// Config is exposed to the script as gatehouse.config: deep-copied
	// through JSON when the script is compiled (so it must be JSON
	// serialisable) and deep-frozen, so the script can read it but not change
	// it. Nil exposes an empty object.
	Config map[string]any

	// PoolSize is the number of runtimes per script version, which is also
	// the number of calls into one version that run at once. A call that
	// finds every runtime busy waits for one until its context's deadline,
	// then fails. Runtimes are created lazily. Default 4.
	PoolSize int

	// MaxCallStackSize is the deepest JavaScript call nesting allowed; a
	// deeper call fails the call with a stack overflow (uncatchable by the
	// script). It also bounds nesting in the guarded built-ins
	// (JSON.stringify/parse, nested Array.prototype.join). Default 256.
	MaxCallStackSize int

	// MaxStringLength is the longest string, in UTF-16 code units, that a
	// guarded built-in creates (String.prototype.repeat, padStart, padEnd,
	// concat, replace, replaceAll, Array.prototype.join, JSON.stringify,
	// String.raw, gatehouse helpers, the + and += operators and template
	// literal substitutions, the result of every String.prototype method,
	// normalize, encodeURI, encodeURIComponent, escape) or accepts as its
	// receiver or input (String.prototype methods, RegExp exec/test and the
	// Symbol methods, JSON.parse). Beyond it the built-in or operator
	// throws a RangeError the script may catch. Default 1 MiB (1<<20).
	MaxStringLength int

	// MaxArrayLength is the largest length of an array (or array-like) that
	// a guarded built-in works on or creates: every Array.prototype method,
	// spread and for-of over an array, Array.from, Function.prototype.apply,
	// Reflect.apply/construct, String.prototype.split, concat's spreadable
	// arguments, flat's result. A string counts as an array of its length
	// for Object.keys, values, entries, assign, getOwnPropertyNames,
	// getOwnPropertyDescriptors, defineProperties, create and
	// Reflect.ownKeys; an object spread ({...x}) takes at most
	// MaxArrayLength/4 properties. Beyond it the built-in throws a
	// RangeError. An array-like whose length is an accessor or an object,
	// and a Proxy, are refused (TypeError) where a length is checked.
	// Default 1<<18 (262144).
	MaxArrayLength int

	// MaxCallMemory bounds, in bytes, how much the Go heap may grow while
	// a call with more than 10 ms to its deadline, or a runtime's top-level
	// code, runs: beyond it the call is stopped (uncatchably; errors.Is(err,
	// ErrMemory)) and its runtime discarded, which frees what it kept. The
	// heap is sampled every 5ms and is the whole process's: what
	// other requests allocate meanwhile counts too. Shorter calls are bounded
	// by their deadline. See memwatch.go. Default 64 MiB.
	MaxCallMemory int64

	// MaxRuntimeCalls is how many calls a runtime serves before it is
	// replaced by a new one (made in the background first, so that the
	// pool does not shrink), which drops whatever the script kept in it
	// between calls: a module variable that grows on every call (1 KB a
	// call kept 100 MB after 100 000 calls) or a cache without a bound.
	// State a script keeps is per runtime anyway, never shared between
	// calls that run at once. Making a runtime of a small script takes
	// about 0.65 ms (BenchmarkNewRuntime). Default 10000.
	MaxRuntimeCalls int

	// CallTimeout bounds a call whose context carries no deadline. The
	// gateway always passes a deadline (the binding's budget); this keeps
	// direct callers (tests, tools) bounded too. Default 1s.
	CallTimeout time.Duration

	// Logger receives the script's console output and the host's own
	// events, tagged with the script's name and version ID. Default: a
	// disabled logger.
	Logger zerolog.Logger

	// LogRate is the number of console lines per second a script may log,
	// across all its runtimes and versions on one Host; lines beyond it are
	// dropped and counted. Default 20.
	LogRate float64

	// LogBurst is the number of console lines a script may log at once
	// before LogRate applies. Default 50.
	LogBurst int

	// logs is shared between the versions of one Host, so that reloading a
	// noisy script does not reset its rate limit.
	logs *logLimiter
}

// DefaultOptions returns options with every bound set to its documented
// default.
func DefaultOptions() Options {
	return Options{
		PoolSize:         4,
		MaxCallStackSize: 256,
		MaxStringLength:  1 << 20,
		MaxArrayLength:   1 << 18,
		MaxCallMemory:    64 << 20,
		MaxRuntimeCalls:  10000,
		CallTimeout:      time.Second,
		Logger:           zerolog.Nop(),
		LogRate:          20,
		LogBurst:         50,
	}
}

// validate checks every bound and returns the config as JSON.
func (o *Options) validate() ([]byte, error) {
	def := DefaultOptions()
	checks := []struct {
		name     string
		ok       bool
		value    any
		default_ any
	}{
		{"PoolSize", o.PoolSize > 0, o.PoolSize, def.PoolSize},
		{"MaxCallStackSize", o.MaxCallStackSize > 0, o.MaxCallStackSize, def.MaxCallStackSize},
		{"MaxStringLength", o.MaxStringLength > 0, o.MaxStringLength, def.MaxStringLength},
		{"MaxArrayLength", o.MaxArrayLength > 0, o.MaxArrayLength, def.MaxArrayLength},
		{"MaxCallMemory", o.MaxCallMemory > 0, o.MaxCallMemory, def.MaxCallMemory},
		{"MaxRuntimeCalls", o.MaxRuntimeCalls > 0, o.MaxRuntimeCalls, def.MaxRuntimeCalls},
		{"CallTimeout", o.CallTimeout > 0, o.CallTimeout, def.CallTimeout},
		{"LogRate", o.LogRate > 0, o.LogRate, def.LogRate},
		{"LogBurst", o.LogBurst > 0, o.LogBurst, def.LogBurst},
	}
	for _, c := range checks {
		if !c.ok {
			return nil, fmt.Errorf("scripts: Options.%s = %v: must be > 0 (DefaultOptions uses %v)", c.name, c.value, c.default_)
		}
	}
	cfg := o.Config
	if cfg == nil {
		cfg = map[string]any{}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("scripts: Options.Config is not JSON serialisable: %w", err)
	}
	return b, nil
}
