package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/hook"
)

// Host runs one plugin: it is a hook.Source whose version is the plugin's
// serving version (ID: a hash of the binary, its arguments, environment and
// configuration; the version runs a private copy of that binary), restarts
// the process (from the same copy) when it crashes or hangs, and swaps in a
// new version when the binary or its configuration changes.
type Host struct {
	name string
	log  zerolog.Logger
	dir  string

	// launchCtx aborts starts in progress when the Host closes.
	launchCtx    context.Context
	cancelLaunch context.CancelFunc

	stats    counters
	inflight atomic.Int64
	maxConc  atomic.Int64
	lastErr  atomic.Pointer[string]

	cur atomic.Pointer[generation]

	mu       sync.Mutex // reloads, Reconfigure and Close, one at a time
	opts     Options
	closed   bool
	watch    *watcher
	retiring sync.WaitGroup

	closeOnce sync.Once
	stopCtx   chan struct{}

	onUp   func(up bool, why string)
	upMu   sync.Mutex // orders OnUp calls
	upLast bool
}

// Start starts the plugin described by o and returns its Host once the
// plugin has started, been configured and answered a health check, all
// within o.StartTimeout. A plugin that fails to start is an error (what
// went wrong, and the last lines of its stderr); nothing is left running.
// When ctx is done the Host closes itself.
func Start(ctx context.Context, o Options) (*Host, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	cleanStaleDirs(o.SocketDir)
	dir, err := os.MkdirTemp(o.SocketDir, dirPrefix(os.Getpid())+shortName(o.Name)+"-")
	if err != nil {
		return nil, fmt.Errorf("plugins: plugin %q: private directory: %w", o.Name, err)
	}
	h := &Host{name: o.Name, log: o.Logger.With().Str("plugin", o.Name).Logger(), dir: dir, opts: o, stopCtx: make(chan struct{}),
		onUp: o.OnUp, upLast: true}
	h.launchCtx, h.cancelLaunch = context.WithCancel(context.Background())
	h.maxConc.Store(int64(o.MaxConcurrent))
	var initial []fileState
	if o.Watch {
		initial = fileStates(watchedFiles(o))
	}
	abandon := context.AfterFunc(ctx, h.cancelLaunch)
	g, err := h.newGeneration(o)
	abandon()
	if err != nil {
		h.cancelLaunch()
		os.RemoveAll(dir)
		return nil, err
	}
	h.cur.Store(g)
	if o.Watch {
		if h.watch, err = h.startWatch(o, initial); err != nil {
			g.retire()
			h.cancelLaunch()
			os.RemoveAll(dir)
			return nil, err
		}
	}
	go func() {
		select {
		case <-ctx.Done():
			h.Close()
		case <-h.stopCtx:
		}
	}()
	return h, nil
}

// Name returns the plugin's name.
func (h *Host) Name() string { return h.name }

// Current implements hook.Source: the serving version. Requests keep the
// version they began with; once a newer version serves, calls made through
// an older one go to the newer one.
func (h *Host) Current() *hook.Version { return h.cur.Load().version }

// Up reports whether the serving version has a live process: false while
// the plugin restarts after a crash or a hang, and once it is closed.
func (h *Host) Up() bool {
	g := h.cur.Load()
	return !g.retired.Load() && g.proc.Load() != nil
}

// upChanged tells OnUp that g's process went down or serves again, when g
// is the serving version and the state changed.
func (h *Host) upChanged(g *generation, up bool, why string) {
	if h.onUp == nil {
		return
	}
	h.upMu.Lock()
	defer h.upMu.Unlock()
	if h.cur.Load() != g || h.upLast == up {
		return
	}
	h.upLast = up
	h.onUp(up, why)
}

// Dir returns the plugin's private directory (removed by Close): the
// socket directories of its processes and the copies of its binary they
// run.
func (h *Host) Dir() string { return h.dir }

// Stats returns the Host's counters and state.
func (h *Host) Stats() Stats {
	s := Stats{Name: h.name}
	h.stats.snapshot(&s)
	g := h.cur.Load()
	s.Version = g.id
	if p := g.proc.Load(); p != nil && !g.retired.Load() {
		s.PID, s.Up, s.Transport = p.Pid(), true, p.Transport()
	}
	if g.cache != nil {
		s.CacheEntries = g.cache.len()
	}
	if e := h.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// Reconfigure applies new options (binary, arguments, environment,
// configuration, bounds) as a hot reload: the new version starts and is
// health-checked, new calls go to it, calls in flight finish on the old
// one, which is then stopped. If the new version fails to start, the error
// is returned and the old version keeps serving. Options that change
// nothing are a no-op. The Name cannot change.
func (h *Host) Reconfigure(o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Name != h.name {
		return fmt.Errorf("plugins: plugin %q: Reconfigure cannot rename it to %q", h.name, o.Name)
	}
	var stale *watcher
	defer func() {
		// Closed without the lock: the watcher's loop may be waiting for
		// it in reload.
		if stale != nil {
			stale.close()
		}
	}()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("plugins: plugin %q: closed", h.name)
	}
	if sameOptions(o, h.opts) {
		return nil
	}
	var initial []fileState
	if o.Watch && (h.watch == nil || !h.watch.same(o)) {
		initial = fileStates(watchedFiles(o))
	}
	old := h.cur.Load()
	g, err := h.newGeneration(o)
	if err != nil {
		h.refused(err)
		return err
	}
	if h.watch != nil && (!h.watch.same(o) || !o.Watch) {
		stale, h.watch = h.watch, nil
	}
	if o.Watch && h.watch == nil {
		if h.watch, err = h.startWatch(o, initial); err != nil {
			h.log.Error().Err(err).Msg("plugin files not watched")
		}
	}
	h.opts = o
	h.swap(old, g)
	return nil
}

// sameOptions reports whether a and b make the same version with the same
// bounds (OnUp, a function, is not compared).
func sameOptions(a, b Options) bool {
	a.OnUp, b.OnUp = nil, nil
	return reflect.DeepEqual(a, b)
}

// Recheck starts a new version if the binary or the config file on disk
// changed since the running version started: a configuration reload asks,
// so that a binary replaced without watch is picked up by it (with watch
// the watcher does it on its own). A version that does not start is
// refused and logged; the running one keeps serving.
func (h *Host) Recheck() { h.reload() }

// reload starts the plugin again if its files changed (called by the
// watcher and Recheck).
func (h *Host) reload() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	old := h.cur.Load()
	config, err := readConfig(h.opts)
	if err == nil {
		var id string
		if id, err = versionID(h.opts, config); err == nil && id == old.id {
			return
		}
	}
	if err != nil {
		h.refused(fmt.Errorf("plugins: plugin %q: %w", h.name, err))
		return
	}
	g, err := h.newGeneration(h.opts)
	if err != nil {
		h.refused(err)
		return
	}
	h.swap(old, g)
}

func (h *Host) refused(err error) {
	h.stats.refusals.Add(1)
	h.setLastError(err.Error())
	h.log.Error().Err(err).Msg("plugin version refused; the running version keeps serving")
}

// swap makes g the serving version and retires old in the background.
func (h *Host) swap(old, g *generation) {
	h.maxConc.Store(int64(g.opts.MaxConcurrent))
	h.cur.Store(g)
	h.upChanged(g, true, "")
	h.stats.reloads.Add(1)
	h.log.Info().Str("version", g.id).Str("previous", old.id).Msg("plugin version swapped in")
	// Retired at once, so that a call through the old version made after
	// the swap goes to the new one; the drain runs in the background.
	old.retired.Store(true)
	h.retiring.Add(1)
	go func() {
		defer h.retiring.Done()
		old.retire()
	}()
}

func (h *Host) setLastError(s string) { h.lastErr.Store(&s) }

// Close stops the plugin: starts in progress are aborted, calls in flight
// finish (within DrainTimeout), then every process is stopped (killed if it
// does not exit) and the plugin's private directory (sockets, binary
// copies) is removed. Calls made after Close fail (unavailable); Current
// keeps returning the last version so that its bindings' failure policy
// applies. Close is safe to call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		close(h.stopCtx)
		h.cancelLaunch()
		h.mu.Lock()
		h.closed = true
		w := h.watch
		h.watch = nil
		h.mu.Unlock()
		if w != nil {
			w.close()
		}
		h.cur.Load().retire()
		h.retiring.Wait()
		if err := os.RemoveAll(h.dir); err != nil {
			h.log.Error().Err(err).Msg("plugin directory not removed")
		}
		h.log.Info().Msg("plugin stopped")
	})
	return nil
}

// readConfig returns the configuration blob o passes to the plugin.
func readConfig(o Options) ([]byte, error) {
	if o.ConfigFile == "" {
		return o.Config, nil
	}
	b, err := os.ReadFile(o.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return b, nil
}

// A Host's private directory (its processes' socket directories and the
// copies of its binary) is named gatehouse-plugin-<gateway pid>-<name>-*,
// so that a gateway can remove those a dead gateway left behind.
const dirBase = "gatehouse-plugin-"

func dirPrefix(pid int) string { return dirBase + strconv.Itoa(pid) + "-" }

// shortName keeps socket paths under the 108-byte limit of Unix sockets.
func shortName(name string) string {
	if len(name) > 24 {
		name = name[:24]
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// cleanStaleDirs removes the private directories (sockets, binary copies)
// of gateways that are gone.
func cleanStaleDirs(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), dirBase)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}
