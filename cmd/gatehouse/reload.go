package main

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
)

// debounce is how long the file must be quiet before a reload: editors
// write a file in several steps.
const debounce = 200 * time.Millisecond

// reload loads the configuration and applies it; a bad one is logged with
// every error and the running version keeps serving.
func reload(g *gatehouse.Gateway, load func() (*config.Config, error), lg zerolog.Logger) {
	cfg, err := load()
	if err == nil {
		err = g.Reload(*cfg)
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

// watchConfig calls onChange (debounced) when the file changes. It watches
// the directory, because editors and config management replace files by
// renaming a new one over them.
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
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return nil, err
	}
	go func() {
		var timer *time.Timer
		fire := make(chan struct{}, 1)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) != abs || ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) == 0 {
					continue
				}
				if timer == nil {
					timer = time.AfterFunc(debounce, func() {
						select {
						case fire <- struct{}{}:
						default:
						}
					})
				} else {
					timer.Reset(debounce)
				}
			case <-fire:
				onChange()
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return w, nil
}
