package plugins

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher reloads a Host when its binary or config file changes. It watches
// their directories, not the files: a binary is replaced by renaming a new
// file over it, which a watch on the file itself would lose. Changes are
// debounced: the reload starts ReloadDebounce after the last one.
type watcher struct {
	w     *fsnotify.Watcher
	files map[string]bool
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (h *Host) startWatch(o Options) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("plugins: plugin %q: watch: %w", o.Name, err)
	}
	w := &watcher{w: fw, files: watchedFiles(o), stop: make(chan struct{}), done: make(chan struct{})}
	dirs := map[string]bool{}
	for f := range w.files {
		dirs[filepath.Dir(f)] = true
	}
	for d := range dirs {
		if err := fw.Add(d); err != nil {
			fw.Close()
			return nil, fmt.Errorf("plugins: plugin %q: watch %s: %w", o.Name, d, err)
		}
	}
	go w.loop(h, o.ReloadDebounce)
	return w, nil
}

func watchedFiles(o Options) map[string]bool {
	files := map[string]bool{filepath.Clean(o.Path): true}
	if o.ConfigFile != "" {
		files[filepath.Clean(o.ConfigFile)] = true
	}
	return files
}

// same reports whether w watches the files of o.
func (w *watcher) same(o Options) bool {
	f := watchedFiles(o)
	if len(f) != len(w.files) {
		return false
	}
	for k := range f {
		if !w.files[k] {
			return false
		}
	}
	return true
}

func (w *watcher) loop(h *Host, debounce time.Duration) {
	defer close(w.done)
	t := time.NewTimer(debounce)
	t.Stop()
	for {
		select {
		case <-w.stop:
			t.Stop()
			return
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if w.files[filepath.Clean(ev.Name)] {
				t.Reset(debounce)
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			h.log.Warn().Err(err).Msg("plugin watcher error")
		case <-t.C:
			h.reload()
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
