package scripts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce is how long the watcher waits after the last change before
// reloading: editors write a file in several steps (write a temporary,
// rename it over the original, touch it).
const reloadDebounce = 100 * time.Millisecond

// missingLogEvery is how often the error about a removed script is logged
// again while it stays removed (and its path checked again, in case its
// return was not seen), until it comes back or the configuration changes
// (which closes the Host).
var missingLogEvery = 30 * time.Second

// Host serves the current version of a script and replaces it when its
// files change. Callers take Current() once per request and make every call
// of that request on the version they got: a request in flight finishes on
// the version it started with, however many reloads happen meanwhile.
type Host struct {
	path     string
	opts     Options
	onSwap   func(old, new *Script)
	onRefuse func(err error)

	cur      atomic.Pointer[Script]
	reloads  atomic.Uint64
	refusals atomic.Uint64
	missing  atomic.Bool
	lastErr  atomic.Pointer[string]

	watcher   *fsnotify.Watcher
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// HostStats counts a Host's reloads.
type HostStats struct {
	Version   string // ID of the version serving now
	Reloads   uint64 // versions swapped in after the first
	Refusals  uint64 // changed versions refused (compile error or failing cases)
	Missing   bool   // the script's path is gone; the last good version serves
	LastError string // why the last refusal happened, "" when none
}

// Watch compiles the script at path, runs the cases it ships, and serves it
// from the returned Host; it then watches the script's directory and, after
// each change (debounced by 100 ms), compiles the new version, runs its
// cases and only then swaps it in atomically, calling onSwap. A version that
// does not compile or fails its cases is refused: onRefuse gets the error
// (a *LoadError, or the failing cases report), the refusal is counted and
// logged, and the old version keeps serving. If the script's path
// disappears, the last good version keeps serving and an error is logged
// until it comes back. Watching stops when ctx is done or Close is called.
// Callbacks run on the watcher's goroutine and may be nil. The Host's log
// lines name the script's path as "file"; the caller names the script (for
// the gateway, "script" is its configured name) in opts.Logger's context, so
// that each key appears once in a line.
func Watch(ctx context.Context, path string, opts Options, onSwap func(old, new *Script), onRefuse func(err error)) (*Host, error) {
	if _, err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.logs == nil {
		opts.logs = newLogLimiter(opts.LogRate, opts.LogBurst)
	}
	h := &Host{path: filepath.Clean(path), opts: opts, onSwap: onSwap, onRefuse: onRefuse, stop: make(chan struct{}), done: make(chan struct{})}
	s, err := h.load()
	if err != nil {
		return nil, err
	}
	h.cur.Store(s)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("scripts: watching %s: %w", path, err)
	}
	h.watcher = w
	if err := h.addWatches(); err != nil {
		w.Close()
		return nil, err
	}
	h.opts.Logger.Info().Str("file", h.path).Str("version", s.ID()).Str("phases", s.Phases().String()).Msg("script loaded")
	go h.loop(ctx)
	return h, nil
}

// Current returns the version serving now. Take it once per request.
func (h *Host) Current() *Script { return h.cur.Load() }

// Stats returns the Host's counters.
func (h *Host) Stats() HostStats {
	st := HostStats{Version: h.Current().ID(), Reloads: h.reloads.Load(), Refusals: h.refusals.Load(), Missing: h.missing.Load()}
	if e := h.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// Close stops watching and waits for the watcher to finish. The current
// version keeps working for callers that hold it.
func (h *Host) Close() error {
	h.closeOnce.Do(func() { close(h.stop) })
	<-h.done
	return nil
}

// addWatches watches the script's directory (the file's directory, or the
// bundle directory and its subdirectories): editors replace files by
// renaming, which a watch on the file itself would lose.
func (h *Host) addWatches() error {
	fi, err := os.Stat(h.path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return h.watcher.Add(filepath.Dir(h.path))
	}
	// A bundle's parent too: a bundle directory removed and made again
	// (a checkout, a deploy by rename) is seen coming back.
	if err := h.watcher.Add(filepath.Dir(h.path)); err != nil {
		return err
	}
	return h.watchTree(h.path)
}

// watchTree watches dir and its subdirectories.
func (h *Host) watchTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return h.watcher.Add(p)
		}
		return nil
	})
}

// relevant reports whether an event concerns the script.
func (h *Host) relevant(ev fsnotify.Event) bool {
	p := filepath.Clean(ev.Name)
	if p == h.path || strings.HasPrefix(p, h.path+string(filepath.Separator)) {
		return true
	}
	// A single file: its own cases file too.
	return p == strings.TrimSuffix(h.path, filepath.Ext(h.path))+".cases.yaml"
}

func (h *Host) loop(ctx context.Context) {
	defer close(h.done)
	defer h.watcher.Close()
	var debounce *time.Timer
	var fire <-chan time.Time
	var missing *time.Ticker
	var missingTick <-chan time.Time
	defer func() {
		if missing != nil {
			missing.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.stop:
			return
		case ev, ok := <-h.watcher.Events:
			if !ok {
				return
			}
			if !h.relevant(ev) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = h.watchTree(ev.Name)
				}
			}
			if debounce == nil {
				debounce = time.NewTimer(reloadDebounce)
			} else {
				debounce.Stop()
				debounce.Reset(reloadDebounce)
			}
			fire = debounce.C
		case err, ok := <-h.watcher.Errors:
			if !ok {
				return
			}
			h.opts.Logger.Error().Err(err).Str("file", h.path).Msg("script watcher error")
		case <-fire:
			fire = nil
			h.reload()
		case <-missingTick:
			h.reload()
		}
		// While the script is missing, say so again every missingLogEvery.
		switch {
		case h.missing.Load() && missing == nil:
			missing = time.NewTicker(missingLogEvery)
			missingTick = missing.C
		case !h.missing.Load() && missing != nil:
			missing.Stop()
			missing, missingTick = nil, nil
		}
	}
}

// load compiles the script and runs the cases it ships.
func (h *Host) load() (*Script, error) {
	s, err := Compile(h.path, h.opts)
	if err != nil {
		return nil, err
	}
	if cp := s.CasesPath(); cp != "" {
		rep, err := RunCases(s, cp)
		if err != nil {
			return nil, err
		}
		if !rep.OK() {
			return nil, &CasesError{Report: rep}
		}
	}
	return s, nil
}

// CasesError is the refusal of a version whose own cases fail.
type CasesError struct{ Report CaseReport }

// Error returns the failing cases report.
func (e *CasesError) Error() string { return "cases failed:\n" + e.Report.String() }

// reload replaces the current version with the one on disk if it compiles
// and passes its cases.
func (h *Host) reload() {
	old := h.Current()
	if _, err := os.Stat(h.path); errors.Is(err, fs.ErrNotExist) {
		h.missing.Store(true)
		h.opts.Logger.Error().Str("file", h.path).Str("version", old.ID()).Msg("script removed; the last good version keeps serving until it comes back or the configuration changes")
		return
	}
	if h.missing.Load() {
		// Back (a bundle directory made again): watch its tree anew.
		if fi, err := os.Stat(h.path); err == nil && fi.IsDir() {
			_ = h.watchTree(h.path)
		}
	}
	h.missing.Store(false)
	s, err := h.load()
	if err != nil {
		h.refusals.Add(1)
		msg := err.Error()
		h.lastErr.Store(&msg)
		h.opts.Logger.Error().Str("file", h.path).Str("version", old.ID()).Err(err).Msg("script change refused; the previous version keeps serving")
		if h.onRefuse != nil {
			h.onRefuse(err)
		}
		return
	}
	if s.ID() == old.ID() {
		return // same content (a touch, a rewrite with the same bytes)
	}
	h.cur.Store(s)
	h.reloads.Add(1)
	h.opts.Logger.Info().Str("file", h.path).Str("version", s.ID()).Str("previous", old.ID()).Str("phases", s.Phases().String()).Msg("script reloaded")
	if h.onSwap != nil {
		h.onSwap(old, s)
	}
}
