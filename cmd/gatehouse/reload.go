package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
)

// debounce is how long the file must be quiet before a reload: editors
// write a file in several steps. maxDelay bounds the wait in a directory
// that is never quiet (other files written next to the configuration).
const (
	debounce = 200 * time.Millisecond
	maxDelay = 5 * debounce
)

// reload loads the configuration and applies it; a bad one is logged with
// every error and the running version keeps serving.
func reload(g *gatehouse.Gateway, load func() (*config.Config, error), lg zerolog.Logger) {
	cfg, err := load()
	if err == nil {
		err = g.Reload(*cfg)
	} else {
		g.ReloadRefused(err) // counted with the refusals Reload makes
	}
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				lg.Error().Str("file", e.File).Int("line", e.Line).Int("column", e.Col).Str("key", e.Path).Msg(e.Msg)
			}
		}
		lg.Error().Err(err).Msg("configuration refused; the previous version keeps serving")
		return
	}
	lg.Info().Msg("configuration reloaded")
}

// watchConfig calls onChange (debounced) when the configuration changes:
// when path resolves to another file, or the file it resolves to has other
// contents. It watches path's directory, because editors and config
// management replace files by renaming a new one over them, and a
// Kubernetes ConfigMap swaps a directory symlink (path -> ..data/FILE,
// ..data -> ..v1, renamed to ..v2) without touching path itself; it also
// watches the directory of the file path resolves to, for edits in place.
func watchConfig(ctx context.Context, path string, onChange func()) (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		w.Close()
		return nil, err
	}
	dir := filepath.Dir(abs)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, err
	}
	last := readState(abs)
	targetDir := ""
	// follow watches the directory of the current target too, when it is
	// elsewhere (..v1/ behind ..data); a swapped-out one is dropped.
	follow := func(st configState) {
		d := ""
		if st.target != "" {
			d = filepath.Dir(st.target)
		}
		if d == targetDir {
			return
		}
		if targetDir != "" && targetDir != dir {
			w.Remove(targetDir) // may be gone already, with its watch
		}
		targetDir = ""
		if d != "" && d != dir && w.Add(d) == nil {
			targetDir = d
		}
	}
	follow(last)
	go func() {
		timer := time.NewTimer(debounce)
		timer.Stop()
		var first time.Time // of the events not yet acted on
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				// Any event in a watched directory may change what path
				// resolves to; comparing the state below sorts them out.
				if first.IsZero() {
					first = time.Now()
				}
				timer.Reset(min(debounce, max(0, maxDelay-time.Since(first))))
			case <-timer.C:
				first = time.Time{}
				st := readState(abs)
				follow(st)
				if st != last {
					last = st
					onChange()
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}
	}()
	return w, nil
}

// configState is what a reload depends on: the file path resolves to and a
// digest of its contents, or why it cannot be read (a missing file is a
// change too: the reload reports it).
type configState struct {
	target string
	sum    [sha256.Size]byte
	err    string
}

func readState(path string) configState {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return configState{err: err.Error()}
	}
	data, err := os.ReadFile(target)
	if err != nil {
		return configState{target: target, err: err.Error()}
	}
	return configState{target: target, sum: sha256.Sum256(data)}
}
