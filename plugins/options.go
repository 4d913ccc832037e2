package plugins

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/plugins/wire"
)

// Options declare a plugin and bound its host. Every bound is required:
// Start refuses a zero or negative bound, naming the field. DefaultOptions
// returns finite defaults to start from.
type Options struct {
	// Name identifies the plugin in bindings, logs and metrics. Required.
	Name string
	// Path is the plugin binary. Required. A version runs the code it was
	// made from: when a version is made (Start, Reconfigure, the watcher)
	// the binary is copied into the Host's private directory (SocketDir),
	// its ID is the hash of the bytes copied, and its processes run that
	// copy, restarts after a crash or a hang included. A binary changed on
	// disk runs only as a new version: with Watch, once the watcher sees
	// the change (replace the binary by renaming a new file over it, mv or
	// install, so that no reload reads it half-written); without Watch,
	// when Recheck is called (a configuration reload does), Reconfigure is
	// given other options or the gateway starts again.
	// The plugin's program name (os.Args[0]) and os.Executable are the
	// copy's path.
	Path string
	// Args are the binary's arguments (without the program name).
	Args []string
	// Env is the plugin's whole environment, "KEY=value": the gateway's own
	// environment (and its secrets) is not passed on.
	Env []string
	// Config is the configuration blob passed to the plugin at start
	// (plugin.Configurer); the gateway passes the YAML it was given as JSON.
	Config []byte
	// ConfigFile, when set, is read when a version is made and its contents
	// are passed instead of Config (restarts pass the same contents); with
	// Watch it is watched like the binary. Symlinks are followed, and a
	// Kubernetes ConfigMap's swap of its ..data symlink is a change.
	ConfigFile string

	// StartTimeout bounds a start: process start, handshake, Configure and
	// the first health check. At the bound the process is killed and the
	// start fails (Start returns the error; a restart backs off; a reload is
	// refused). Default 10s.
	StartTimeout time.Duration
	// HealthInterval is the time between health pings of a running plugin.
	// Default 1s.
	HealthInterval time.Duration
	// HealthTimeout bounds one health ping. Default 500ms.
	HealthTimeout time.Duration
	// HealthFailures is how many pings in a row may fail before the plugin
	// is deemed hung, killed and restarted. Default 3.
	HealthFailures int
	// RestartBackoff is the wait before the first restart after a crash; it
	// doubles with each failed restart up to MaxRestartBackoff and is reset
	// once a process has run for StableAfter. Default 50ms.
	RestartBackoff time.Duration
	// MaxRestartBackoff caps the wait between restarts. Default 30s.
	MaxRestartBackoff time.Duration
	// StableAfter is how long a process must run for a later crash to
	// restart it after RestartBackoff again. Default 10s.
	StableAfter time.Duration
	// DrainTimeout bounds how long a replaced version (hot reload, Close)
	// waits for its calls in flight before its process is stopped; calls
	// still running then fail. Default 10s.
	DrainTimeout time.Duration
	// MaxConcurrent bounds the calls in flight to the plugin, across every
	// binding; over it a call fails at once (overloaded). Default 1024.
	MaxConcurrent int
	// MaxMessageBytes bounds every gRPC message to and from the plugin; a
	// larger answer fails its call (too_large). Default 1 MiB.
	MaxMessageBytes int
	// MaxBodyBytes bounds the request body sent to the plugin, when its
	// binding asks for the body (body_bytes); a longer body is cut and
	// marked truncated. Default 64 KiB; at most MaxMessageBytes/2.
	MaxBodyBytes int
	// Transport is how calls travel: wire.TransportFrames (default: calls
	// multiplexed on the plugin's framed call socket, the cheapest, falling
	// back to the gRPC stream), wire.TransportStream (one long-lived gRPC
	// stream multiplexing calls) or wire.TransportUnary (one RPC per call).
	Transport wire.Transport
	// CacheEntries bounds the decision cache (decisions a plugin marks
	// cacheable with plugin.CacheFor); 0 turns caching off. Default 0.
	CacheEntries int
	// CacheMaxTTL caps the time a cached decision is reused, whatever the
	// plugin asks. Required when CacheEntries > 0. Default 1m.
	CacheMaxTTL time.Duration
	// Watch reloads the plugin when its binary (or ConfigFile) changes: when
	// the path resolves to another file (a symlink swapped) or that file
	// changed. The new version starts and passes a health check before new
	// calls go to it; a version that fails to start is refused and the old
	// one keeps serving. The paths' directories (and their targets') are
	// watched, and the files are checked every 2s as well. Without Watch, a
	// changed binary or ConfigFile is picked up only by Recheck (a
	// configuration reload) or Reconfigure, never by a restart after a
	// crash. Default true.
	Watch bool
	// ReloadDebounce is how long the watcher waits after the last change
	// of a watched file before reloading. Default 200ms.
	ReloadDebounce time.Duration
	// Limits are optional OS bounds on the plugin process (zero: inherited).
	Limits wire.Limits
	// SocketDir is where the plugin's own private directory (mode 0700) is
	// made, and removed on Close: its processes' sockets and the copies of
	// its binary they run, so programs must be allowed to run there (not a
	// file system mounted noexec). Default os.TempDir(). Unix socket paths
	// are limited to 108 bytes: keep it short.
	SocketDir string
	// Logger receives the host's events and the plugin's output, tagged
	// with the plugin's name and version. Default: disabled.
	Logger zerolog.Logger
	// OnUp, when set, is told when the serving version's process goes down
	// (crash, hang: up is false, why says what happened) and when a process
	// serves again (up is true). It is called from the host's goroutines,
	// one call at a time, and must not block. Not a reason for a new
	// version: Reconfigure ignores it.
	OnUp func(up bool, why string) `json:"-"`

	// clock measures and waits the restart backoff; nil: the real one.
	// Tests inject a clock to check the backoff without sleeping.
	clock clock
	// pollInterval is how often the watcher checks the files without an
	// event; 0: pollInterval. Tests set it.
	pollInterval time.Duration
}

// DefaultOptions returns options with every bound set to its documented
// default (Name and Path are left to the caller).
func DefaultOptions() Options {
	return Options{
		StartTimeout:      10 * time.Second,
		HealthInterval:    time.Second,
		HealthTimeout:     500 * time.Millisecond,
		HealthFailures:    3,
		RestartBackoff:    50 * time.Millisecond,
		MaxRestartBackoff: 30 * time.Second,
		StableAfter:       10 * time.Second,
		DrainTimeout:      10 * time.Second,
		MaxConcurrent:     1024,
		MaxMessageBytes:   1 << 20,
		MaxBodyBytes:      64 << 10,
		Transport:         wire.DefaultTransport,
		CacheMaxTTL:       time.Minute,
		Watch:             true,
		ReloadDebounce:    200 * time.Millisecond,
		SocketDir:         os.TempDir(),
		Logger:            zerolog.Nop(),
	}
}

// validate checks every field and makes Path absolute.
func (o *Options) validate() error {
	if o.Name == "" || strings.ContainsAny(o.Name, "/\\\x00") {
		return fmt.Errorf("plugins: Options.Name %q: must be a non-empty name without slashes", o.Name)
	}
	if o.Path == "" {
		return fmt.Errorf("plugins: plugin %q: Options.Path is required", o.Name)
	}
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return fmt.Errorf("plugins: plugin %q: Options.Path: %w", o.Name, err)
	}
	o.Path = abs
	fi, err := os.Stat(o.Path)
	if err != nil {
		return fmt.Errorf("plugins: plugin %q: Options.Path: %w", o.Name, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("plugins: plugin %q: Options.Path %s is not an executable file", o.Name, o.Path)
	}
	if o.ConfigFile != "" {
		if o.ConfigFile, err = filepath.Abs(o.ConfigFile); err != nil {
			return fmt.Errorf("plugins: plugin %q: Options.ConfigFile: %w", o.Name, err)
		}
	}
	def := DefaultOptions()
	checks := []struct {
		name     string
		ok       bool
		value    any
		default_ any
	}{
		{"StartTimeout", o.StartTimeout > 0, o.StartTimeout, def.StartTimeout},
		{"HealthInterval", o.HealthInterval > 0, o.HealthInterval, def.HealthInterval},
		{"HealthTimeout", o.HealthTimeout > 0, o.HealthTimeout, def.HealthTimeout},
		{"HealthFailures", o.HealthFailures > 0, o.HealthFailures, def.HealthFailures},
		{"RestartBackoff", o.RestartBackoff > 0, o.RestartBackoff, def.RestartBackoff},
		{"MaxRestartBackoff", o.MaxRestartBackoff >= o.RestartBackoff, o.MaxRestartBackoff, def.MaxRestartBackoff},
		{"StableAfter", o.StableAfter > 0, o.StableAfter, def.StableAfter},
		{"DrainTimeout", o.DrainTimeout > 0, o.DrainTimeout, def.DrainTimeout},
		{"MaxConcurrent", o.MaxConcurrent > 0, o.MaxConcurrent, def.MaxConcurrent},
		{"MaxMessageBytes", o.MaxMessageBytes >= 4<<10, o.MaxMessageBytes, def.MaxMessageBytes},
		{"MaxBodyBytes", o.MaxBodyBytes >= 0 && o.MaxBodyBytes <= o.MaxMessageBytes/2, o.MaxBodyBytes, def.MaxBodyBytes},
		{"CacheEntries", o.CacheEntries >= 0, o.CacheEntries, def.CacheEntries},
		{"CacheMaxTTL", o.CacheEntries == 0 || o.CacheMaxTTL > 0, o.CacheMaxTTL, def.CacheMaxTTL},
		{"ReloadDebounce", !o.Watch || o.ReloadDebounce > 0, o.ReloadDebounce, def.ReloadDebounce},
	}
	for _, c := range checks {
		if !c.ok {
			return fmt.Errorf("plugins: plugin %q: Options.%s = %v is out of range (DefaultOptions uses %v)", o.Name, c.name, c.value, c.default_)
		}
	}
	switch o.Transport {
	case wire.TransportFrames, wire.TransportStream, wire.TransportUnary:
	default:
		return fmt.Errorf("plugins: plugin %q: Options.Transport %q: want %q, %q or %q", o.Name, o.Transport,
			wire.TransportFrames, wire.TransportStream, wire.TransportUnary)
	}
	if o.SocketDir == "" {
		return errors.New("plugins: Options.SocketDir is required (DefaultOptions uses os.TempDir())")
	}
	for _, kv := range o.Env {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("plugins: plugin %q: Options.Env entry %q is not KEY=value", o.Name, kv)
		}
	}
	return nil
}
