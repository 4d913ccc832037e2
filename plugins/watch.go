package plugins

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher reloads a Host when its binary or config file changes: when a
// path resolves to another file, or the file it resolves to changed. It
// watches directories, not the files: a binary is replaced by renaming a
// new file over it, and a Kubernetes ConfigMap swaps a directory symlink
// (conf.json -> ..data/conf.json, ..data -> ..v1, renamed to ..v2) without
// touching the path itself, either of which a watch on the file would
// lose. So it watches the directory of each path and that of the file the
// path resolves to (for a symlink's target edited in place), and on any
// event in them resolves the paths again, follows their targets'
// directories and compares what they resolve to with what it saw last.
// Changes are debounced: the check runs ReloadDebounce after the last
// event (at most 5 ReloadDebounce after the first, in a directory that is
// never quiet). Every pollInterval the same check runs without an event
// too (a few stats and the hash of a small file): it catches what events
// miss, such as a symlink swapped in a directory not watched (a link in
// the middle of a chain, a symlinked parent directory) or a watch lost.
type watcher struct {
	w     *fsnotify.Watcher
	files []string        // the watched paths, cleaned
	dirs  map[string]bool // the directories watched now
	last  []fileState     // of files, when last checked
	poll  time.Duration
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// pollInterval is how often the watcher checks its files without an event.
const pollInterval = 2 * time.Second

// startWatch watches the files of o. initial is their state as the serving
// version was made from them (taken before it was made), so that a change
// while it started is a change.
func (h *Host) startWatch(o Options, initial []fileState) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("plugins: plugin %q: watch: %w", o.Name, err)
	}
	w := &watcher{w: fw, files: watchedFiles(o), dirs: map[string]bool{}, last: initial,
		poll: o.pollInterval, stop: make(chan struct{}), done: make(chan struct{})}
	if w.poll <= 0 {
		w.poll = pollInterval
	}
	if len(w.last) != len(w.files) {
		w.last = fileStates(w.files)
	}
	// The paths' own directories must be watched; their targets' are
	// followed as well as they can be (and polled).
	for _, f := range w.files {
		d := realDir(filepath.Dir(f))
		if err := fw.Add(d); err != nil {
			fw.Close()
			return nil, fmt.Errorf("plugins: plugin %q: watch %s: %w", o.Name, d, err)
		}
		w.dirs[d] = true
	}
	w.follow(w.last)
	go w.loop(h, o.ReloadDebounce)
	return w, nil
}

// watchedFiles are the paths of o the watcher watches: the binary and the
// config file.
func watchedFiles(o Options) []string {
	files := []string{filepath.Clean(o.Path)}
	if o.ConfigFile != "" {
		files = append(files, filepath.Clean(o.ConfigFile))
	}
	return files
}

// same reports whether w watches the files of o.
func (w *watcher) same(o Options) bool {
	return slices.Equal(w.files, watchedFiles(o))
}

// follow makes the watched directories those of the files and of their
// targets now; the directory of a swapped-out target is dropped.
func (w *watcher) follow(states []fileState) {
	want := map[string]bool{}
	for i, f := range w.files {
		want[realDir(filepath.Dir(f))] = true
		if t := states[i].target; t != "" {
			want[filepath.Dir(t)] = true
		}
	}
	for d := range w.dirs {
		if !want[d] {
			_ = w.w.Remove(d) // may be gone already, with its watch
			delete(w.dirs, d)
		}
	}
	for d := range want {
		if !w.dirs[d] && w.w.Add(d) == nil {
			w.dirs[d] = true
		}
	}
}

// realDir is dir with its symlinks resolved, when it can be: one directory
// watched under two names would share one watch, which removing either
// name ends.
func realDir(dir string) string {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return dir
}

func (w *watcher) loop(h *Host, debounce time.Duration) {
	defer close(w.done)
	maxDelay := 5 * debounce
	t := time.NewTimer(debounce)
	t.Stop()
	poll := time.NewTicker(w.poll)
	defer poll.Stop()
	var first time.Time // of the events not yet checked
	pending := func() {
		if first.IsZero() {
			first = time.Now()
		}
		t.Reset(min(debounce, max(0, maxDelay-time.Since(first))))
	}
	for {
		select {
		case <-w.stop:
			t.Stop()
			return
		case _, ok := <-w.w.Events:
			if !ok {
				return
			}
			// Any event in a watched directory may change what a path
			// resolves to; the check sorts them out.
			pending()
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			h.log.Warn().Err(err).Msg("plugin watcher error")
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				pending() // events were lost: check now
			}
		case <-poll.C:
			// A change seen without an event is debounced like one: it may
			// be a write in progress.
			if first.IsZero() && !slices.Equal(fileStates(w.files), w.last) {
				pending()
			}
		case <-t.C:
			first = time.Time{}
			st := fileStates(w.files)
			w.follow(st)
			if !slices.Equal(st, w.last) {
				w.last = st
				h.reload()
			}
		}
	}
}

func (w *watcher) close() {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		w.w.Close()
	})
}

// fileState is what a reload depends on, of one watched path: the file it
// resolves to and that file's identity, size and times (and a digest of
// its contents when it is small, as a config file is: a rewrite within one
// tick of the file system's clock leaves the times as they were), or why
// it cannot be read (a missing file is a change too: the reload reports
// it). Whether the version changed is then decided on the contents
// (reload compares version IDs).
type fileState struct {
	target       string
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // Unix ns
	sum          [sha256.Size]byte
	err          string
}

// hashMax bounds the file a state hashes: a config file, not a binary
// (whose times and identity change with its contents).
const hashMax = 1 << 20

func fileStates(files []string) []fileState {
	out := make([]fileState, len(files))
	for i, f := range files {
		out[i] = readFileState(f)
	}
	return out
}

func readFileState(path string) fileState {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fileState{err: err.Error()}
	}
	// Not blocking: opening a FIFO would wait for a writer.
	f, err := os.OpenFile(target, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fileState{target: target, err: err.Error()}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileState{target: target, err: err.Error()}
	}
	s := fileState{target: target, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	s.dev, s.ino, s.ctime = fileID(fi)
	if fi.Mode().IsRegular() && fi.Size() <= hashMax {
		sum := sha256.New()
		if _, err := io.Copy(sum, io.LimitReader(f, hashMax+1)); err != nil {
			s.err = err.Error()
		}
		copy(s.sum[:], sum.Sum(nil))
	}
	return s
}
