package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// fileKey is a key whose value names a file: its path and the value.
type fileKey struct {
	path  string
	value *string
}

// fileKeys returns every key of c that names a file or directory, as it is
// set: listeners[].tls.cert and .key, scripts[].file, plugins[].path and
// plugins[].config_file. Empty values are left out.
func (c *Config) fileKeys() []fileKey {
	var out []fileKey
	add := func(path string, v *string) {
		if *v != "" {
			out = append(out, fileKey{path, v})
		}
	}
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			add(fmt.Sprintf("listeners[%d].tls.cert", i), &t.Cert)
			add(fmt.Sprintf("listeners[%d].tls.key", i), &t.Key)
		}
	}
	for i := range c.Scripts {
		add(fmt.Sprintf("scripts[%d].file", i), &c.Scripts[i].File)
	}
	for i := range c.Plugins {
		add(fmt.Sprintf("plugins[%d].path", i), &c.Plugins[i].Path)
		add(fmt.Sprintf("plugins[%d].config_file", i), &c.Plugins[i].ConfigFile)
	}
	return out
}

// resolvePaths makes every relative file path in c absolute, against dir
// (the absolute directory of the configuration file) first:
//
//   - An absolute path is kept as it is.
//   - A relative path p becomes dir/p, unless dir/p does not exist and p
//     exists relative to the working directory: then it becomes that file's
//     absolute path (configurations written for the working directory keep
//     working).
//   - When p exists in neither place, it becomes dir/p, which validation
//     then reports as missing.
//
// "Exists" is os.Stat succeeding; dir/p that cannot be examined for another
// reason than not existing (permission denied) is kept, and validation
// reports why it cannot be read. The values as written are recorded for
// validation's messages.
func (c *Config) resolvePaths(dir string) {
	for _, k := range c.fileKeys() {
		p := *k.value
		if filepath.IsAbs(p) {
			continue
		}
		if c.written == nil {
			c.written = make(map[string]string)
		}
		c.written[k.path] = p
		*k.value = resolvePath(dir, p)
	}
}

// resolvePath resolves relative path p as resolvePaths describes.
func resolvePath(dir, p string) string {
	near := filepath.Join(dir, p)
	if _, err := os.Stat(near); !errors.Is(err, fs.ErrNotExist) {
		return near
	}
	if _, err := os.Stat(p); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return near
}

// fileError reports that the file named name at key path cannot be used:
// "verb name: err". For a path the file gave as relative and that exists
// nowhere, it also says where it was looked for.
func (k *checker) fileError(path, verb, name string, err error) {
	msg := fmt.Sprintf("%s %s: %v", verb, quotePath(name), err)
	if w, ok := k.c.written[path]; ok && errors.Is(err, fs.ErrNotExist) {
		msg += fmt.Sprintf(" (%s is relative: it was looked for in the configuration file's directory, then in the working directory)", quotePath(w))
	}
	k.add(path, "%s", msg)
}
