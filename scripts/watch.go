package scripts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce is how long the watcher waits after the last change before
// reloading: editors write a file in several steps (write a temporary,
// rename it over the original, touch it). reloadMaxDelay bounds the wait
// under a stream of changes: a script rewritten without pause still gets a
// new version checked and served at least that often.
var (
	reloadDebounce = 100 * time.Millisecond
	reloadMaxDelay = time.Second
)

// pollEvery is how often a Host reads its script's files whatever the
// watcher saw, and reloads when their content changed: the safety net for
// changes that file notifications miss (network filesystems, watch limits,
// a file edited through another hard link). Reading an unchanged script
// compiles nothing and logs nothing.
var pollEvery = 2 * time.Second

// missingLogEvery is how often the error about a removed script is logged
// again while it stays removed (and its path checked again, in case its
// return was not seen), until it comes back or the configuration changes
// (which closes the Host).
var missingLogEvery = 30 * time.Second

// newWatcher opens the file notifications a Host watches with.
var newWatcher = fsnotify.NewWatcher

// Host serves the current version of a script and replaces it when its
// files change. Callers take Current() once per request and make every call
// of that request on the version they got: a request in flight finishes on
// the version it started with, however many reloads happen meanwhile.
type Host struct {
	path     string // as given: named in log lines and compiled
	abs      string // absolute, to resolve symbolic links from
	opts     Options
	onSwap   func(old, new *Script)
	onRefuse func(err error)

	debounce, maxDelay, pollEvery, missingEvery time.Duration

	cur      atomic.Pointer[Script]
	reloads  atomic.Uint64
	refusals atomic.Uint64
	missing  atomic.Bool
	lastErr  atomic.Pointer[string]
	compiles atomic.Uint64 // versions compiled after the first
	polls    atomic.Uint64 // checks made by the poll

	// The watcher goroutine's own state.
	watcher  *fsnotify.Watcher      // nil when notifications could not be had: the poll alone
	watched  map[string]os.FileInfo // watched directories, as they were when added
	nodes    map[string]bool        // entries whose change may change the script
	trees    []string               // resolved bundle directories: anything inside counts
	watchErr string                 // directories that could not be watched, as last logged
	seen     filesPrint             // the content last checked, served or refused
	recheck  chan chan struct{}     // Recheck's requests
	stop     chan struct{}
	done     chan struct{}

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
// from the returned Host; it then watches the script's files and, after each
// change (debounced by 100 ms, at most 1 s under a stream of changes),
// compiles the new version, runs its cases and only then swaps it in
// atomically, calling onSwap. A version that does not compile or fails its
// cases is refused: onRefuse gets the error (a *LoadError, or a
// *CasesError), the refusal is counted and logged once, and the old version
// keeps serving. If the script's path disappears, the last good version
// keeps serving and an error is logged until it comes back. Watching stops
// when ctx is done or Close is called. Callbacks run on the watcher's
// goroutine and may be nil. The Host's log lines name the script's path as
// "file"; the caller names the script (for the gateway, "script" is its
// configured name) in opts.Logger's context, so that each key appears once
// in a line.
//
// Symbolic links are followed as they change: a link to the file or
// bundle, a link in its path (a Kubernetes ConfigMap's ..data swapped
// atomically), a bundle whose directory is a link (current -> releases/v2)
// and a directory replaced by rename are all seen, and watched again after
// each change. Beside the notifications, the files are read again every 2 s
// (and on Recheck): whatever the notifications missed is picked up then.
// Only content that differs from the last checked is compiled.
func Watch(ctx context.Context, path string, opts Options, onSwap func(old, new *Script), onRefuse func(err error)) (*Host, error) {
	if _, err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.logs == nil {
		opts.logs = newLogLimiter(opts.LogRate, opts.LogBurst)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("scripts: watching %s: %w", path, err)
	}
	h := &Host{
		path: filepath.Clean(path), abs: abs, opts: opts, onSwap: onSwap, onRefuse: onRefuse,
		debounce: reloadDebounce, maxDelay: reloadMaxDelay, pollEvery: pollEvery, missingEvery: missingLogEvery,
		watched: map[string]os.FileInfo{}, recheck: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	// The content is read before it is compiled: a change in between is
	// seen as one by the next check.
	h.seen = h.fingerprint()
	s, err := h.load()
	if err != nil {
		return nil, err
	}
	h.cur.Store(s)
	if w, err := newWatcher(); err != nil {
		h.opts.Logger.Warn().Err(err).Str("file", h.path).Dur("poll", h.pollEvery).Msg("script changes are not notified; its files are read again at each poll")
	} else {
		h.watcher = w
	}
	h.rewatch()
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

// Recheck reads the script's files now and, when their content differs
// from the last checked, reloads them as a watched change does (compile,
// check, cases, swap or refusal). It returns once that is done, or when the
// Host is closed. A configuration reload calls it, so that a change the
// watcher missed is not missed for good.
func (h *Host) Recheck() {
	done := make(chan struct{})
	select {
	case h.recheck <- done:
	case <-h.done:
		return
	}
	select {
	case <-done:
	case <-h.done:
	}
}

// Close stops watching and waits for the watcher to finish. The current
// version keeps working for callers that hold it.
func (h *Host) Close() error {
	h.closeOnce.Do(func() { close(h.stop) })
	<-h.done
	return nil
}

// rewatch resolves the script's path again and watches every directory
// whose change may change the script: the one holding the file or bundle
// and the one above it (a directory replaced by rename), each directory
// holding a symbolic link on the way (a link swapped), the directory of the
// resolved file, and the resolved bundle directory with its subdirectories.
// A directory replaced since it was added is watched anew; one no longer
// needed is dropped.
func (h *Host) rewatch() {
	want := map[string]bool{}
	h.nodes = map[string]bool{}
	h.trees = nil
	follow := func(c chain) {
		for _, v := range c.visited {
			h.nodes[v] = true
		}
		for _, l := range c.links {
			want[filepath.Dir(l)] = true
		}
		if l := c.last(); l != "" {
			want[filepath.Dir(l)] = true
		}
	}
	main := resolve(h.abs)
	follow(main)
	fi, err := os.Stat(main.target)
	switch {
	case main.target != "" && err == nil && fi.IsDir():
		h.trees = []string{main.target}
		n := 0
		filepath.WalkDir(main.target, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if n++; n > maxWatchDirs {
				return fs.SkipAll
			}
			want[p] = true
			return nil
		})
	default:
		// A file, or nothing yet: where it and its cases file are, and
		// the directory above, where its directory may be replaced.
		if main.target != "" {
			want[filepath.Dir(filepath.Dir(main.target))] = true
		}
		up := resolve(filepath.Dir(h.abs))
		follow(up)
		if up.target != "" {
			want[filepath.Dir(up.target)] = true
		}
		follow(resolve(strings.TrimSuffix(h.abs, filepath.Ext(h.abs)) + ".cases.yaml"))
	}
	if h.watcher == nil {
		return
	}
	var failed []string
	for d := range want {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() {
			continue // gone: the directory above sees it come back
		}
		if old, ok := h.watched[d]; ok && !os.SameFile(old, fi) {
			_ = h.watcher.Remove(d) // the watch of the replaced directory
		}
		// Added again even when unchanged: the notifications may have
		// dropped a watch whose directory was removed and made again.
		if err := h.watcher.Add(d); err != nil {
			delete(h.watched, d)
			failed = append(failed, d+": "+err.Error())
			continue
		}
		h.watched[d] = fi
	}
	for d := range h.watched {
		if !want[d] {
			_ = h.watcher.Remove(d) // may be gone already, with its watch
			delete(h.watched, d)
		}
	}
	sort.Strings(failed)
	msg := strings.Join(failed, "; ")
	if msg != h.watchErr && msg != "" {
		h.opts.Logger.Warn().Str("file", h.path).Str("error", msg).Dur("poll", h.pollEvery).Msg("script directories not all watched; changes there are picked up at each poll")
	}
	h.watchErr = msg
}

// relevant reports whether an event may concern the script.
func (h *Host) relevant(ev fsnotify.Event) bool {
	p := filepath.Clean(ev.Name)
	if h.nodes[p] {
		return true
	}
	for _, t := range h.trees {
		if p == t || strings.HasPrefix(p, t+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func (h *Host) loop(ctx context.Context) {
	defer close(h.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if h.watcher != nil {
		defer h.watcher.Close()
		events, errs = h.watcher.Events, h.watcher.Errors
	}
	var poll <-chan time.Time
	if h.pollEvery > 0 {
		t := time.NewTicker(h.pollEvery)
		defer t.Stop()
		poll = t.C
	}
	debounce := time.NewTimer(h.debounce)
	debounce.Stop()
	defer debounce.Stop()
	var first time.Time // of the changes not yet checked
	changed := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		debounce.Reset(min(h.debounce, max(0, h.maxDelay-now.Sub(first))))
	}
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
		case ev, ok := <-events:
			if !ok {
				events = nil // the poll goes on
				continue
			}
			if h.relevant(ev) {
				changed()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			h.opts.Logger.Error().Err(err).Str("file", h.path).Msg("script watcher error")
			changed() // notifications may have been lost
		case <-debounce.C:
			first = time.Time{}
			h.check("watch", false)
		case <-poll:
			h.polls.Add(1)
			h.check("poll", false)
		case done := <-h.recheck:
			h.check("reload", false)
			close(done)
		case <-missingTick:
			h.check("watch", true)
		}
		// While the script is missing, say so again every missingEvery.
		switch {
		case h.missing.Load() && missing == nil:
			missing = time.NewTicker(h.missingEvery)
			missingTick = missing.C
		case !h.missing.Load() && missing != nil:
			missing.Stop()
			missing, missingTick = nil, nil
		}
	}
}

// check watches the script's directories anew and reloads the script when
// its content differs from the last checked; via says what asked ("watch",
// "poll", "reload"). While the script is missing, that is logged when first
// seen and again when remind is set.
func (h *Host) check(via string, remind bool) {
	h.rewatch()
	fp := h.fingerprint()
	if fp.missing {
		if !h.missing.Swap(true) || remind {
			h.opts.Logger.Error().Str("file", h.path).Str("version", h.Current().ID()).Msg("script removed; the last good version keeps serving until it comes back or the configuration changes")
		}
		h.seen = fp
		return
	}
	back := h.missing.Swap(false)
	if fp == h.seen {
		return
	}
	h.seen = fp
	h.reload(fp, via, back)
}

// load compiles the script and runs the cases it ships. A version that
// compiles but fails its cases is returned with the error.
func (h *Host) load() (*Script, error) {
	s, err := Compile(h.path, h.opts)
	if err != nil {
		return nil, err
	}
	if cp := s.CasesPath(); cp != "" {
		rep, err := RunCases(s, cp)
		if err != nil {
			return s, err
		}
		if !rep.OK() {
			return s, &CasesError{Report: rep}
		}
	}
	return s, nil
}

// CasesError is the refusal of a version whose own cases fail.
type CasesError struct{ Report CaseReport }

// Error returns the failing cases report.
func (e *CasesError) Error() string { return "cases failed:\n" + e.Report.String() }

// reload replaces the current version with the content fp was read from if
// it compiles and passes its cases; back says the script had been missing.
func (h *Host) reload(fp filesPrint, via string, back bool) {
	old := h.Current()
	h.compiles.Add(1)
	s, err := h.load()
	if err != nil {
		refused := fp.id
		if s != nil {
			refused = s.ID()
		}
		h.refusals.Add(1)
		msg := err.Error()
		h.lastErr.Store(&msg)
		ev := h.opts.Logger.Error().Str("file", h.path)
		var le *LoadError
		var ce *CasesError
		switch {
		case errors.As(err, &le) && le.Line > 0:
			ev = ev.Str("at", fmt.Sprintf("%s:%d:%d", le.File, le.Line, le.Column))
		case errors.As(err, &le):
			ev = ev.Str("at", le.File)
		case errors.As(err, &ce):
			ev = ev.Str("at", ce.Report.Path)
		}
		ev.Str("refused", refused).Str("version", old.ID()).Str("via", via).Err(err).Msg("script change refused; the previous version keeps serving")
		if h.onRefuse != nil {
			h.onRefuse(err)
		}
		return
	}
	if s.ID() == old.ID() {
		// Same version (a cases file changed, a file came back as it was).
		if back {
			h.opts.Logger.Info().Str("file", h.path).Str("version", s.ID()).Msg("script back; the same version keeps serving")
		}
		return
	}
	h.cur.Store(s)
	h.reloads.Add(1)
	h.opts.Logger.Info().Str("file", h.path).Str("version", s.ID()).Str("previous", old.ID()).Str("phases", s.Phases().String()).Str("via", via).Msg("script reloaded")
	if h.onSwap != nil {
		h.onSwap(old, s)
	}
}
