package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles creates each file under dir (its directories too), with the
// mode given, or 0o644.
func writeFiles(t *testing.T, dir string, files map[string]os.FileMode) {
	t.Helper()
	for name, mode := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, []byte("x\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// pathsSrc names a file for every key that takes one, each relative.
const pathsSrc = `listeners:
  - name: public
    address: 127.0.0.1:8443
    tls: {cert: tls/cert.pem, key: tls/key.pem}
scripts:
  - {name: validate, file: scripts/validate.js}
  - {name: bundle, file: scripts/bundle}
plugins:
  - {name: auth, path: bin/auth, config_file: auth.json}
`

// pathsFiles are the files pathsSrc names.
var pathsFiles = map[string]os.FileMode{
	"tls/cert.pem":             0,
	"tls/key.pem":              0,
	"scripts/validate.js":      0,
	"scripts/bundle/index.js":  0,
	"bin/auth":                 0o755,
	"auth.json":                0,
	"unrelated/placeholder.md": 0,
}

// filePaths returns the file paths of c, by key.
func filePaths(c *Config) map[string]string {
	out := map[string]string{}
	for _, k := range c.fileKeys() {
		out[k.path] = *k.value
	}
	return out
}

func wantPaths(dir string) map[string]string {
	return map[string]string{
		"listeners[0].tls.cert":  filepath.Join(dir, "tls/cert.pem"),
		"listeners[0].tls.key":   filepath.Join(dir, "tls/key.pem"),
		"scripts[0].file":        filepath.Join(dir, "scripts/validate.js"),
		"scripts[1].file":        filepath.Join(dir, "scripts/bundle"),
		"plugins[0].path":        filepath.Join(dir, "bin/auth"),
		"plugins[0].config_file": filepath.Join(dir, "auth.json"),
	}
}

func checkPaths(t *testing.T, c *Config, want map[string]string) {
	t.Helper()
	got := filePaths(c)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("file paths %v, want %v", got, want)
	}
}

// A configuration run from elsewhere (a service manager starts it in /)
// finds its files next to it.
func TestLoadResolvesPathsAgainstTheFilesDirectory(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "etc", "gatehouse")
	writeFiles(t, conf, pathsFiles)
	path := filepath.Join(conf, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(pathsSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load from another directory: %v", err)
	}
	checkPaths(t, c, wantPaths(conf))
	if c.Source != path {
		t.Errorf("Source = %q, want %q", c.Source, path)
	}
	// The copy gatehouse.New and Reload validate again is still valid.
	if err := c.Clone().Validate(); err != nil {
		t.Errorf("Validate of the loaded configuration: %v", err)
	}

	// A configuration named by a relative path resolves against its
	// directory made absolute.
	t.Chdir(filepath.Dir(conf))
	c, err = Load(filepath.Join("gatehouse", "gatehouse.yaml"))
	if err != nil {
		t.Fatalf("Load by a relative path: %v", err)
	}
	checkPaths(t, c, wantPaths(conf))

	// Loading the same file again gives an equal configuration: a reload
	// of an unchanged file changes nothing.
	again, err := Load(filepath.Join("gatehouse", "gatehouse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Equal(c) {
		t.Errorf("two loads of the same file differ:\n%s\n%s", dump(t, again), dump(t, c))
	}
	fromAbs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fromAbs.Equal(c) {
		t.Errorf("the file loaded by its absolute and its relative path differs:\n%s\n%s", dump(t, fromAbs), dump(t, c))
	}
}

// A configuration written for the working directory (run from a
// repository root with -c sub/dir/x.yaml) keeps working: a path that is not
// next to the file but is in the working directory is taken from there.
// When both exist, the one next to the file wins.
func TestLoadFallsBackToTheWorkingDirectory(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, pathsFiles)
	conf := filepath.Join(root, "sub", "dir")
	path := filepath.Join(conf, "x.yaml")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(pathsSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	c, err := Load(filepath.Join("sub", "dir", "x.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkPaths(t, c, wantPaths(root))

	// The script now exists next to the file too: that one is used, the
	// others still come from the working directory.
	writeFiles(t, conf, map[string]os.FileMode{"scripts/validate.js": 0})
	c, err = Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := wantPaths(root)
	want["scripts[0].file"] = filepath.Join(conf, "scripts/validate.js")
	checkPaths(t, c, want)
}

func TestLoadKeepsAbsolutePaths(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, pathsFiles)
	// Written unclean on purpose: an absolute path is used as written.
	abs := func(name string) string { return dir + "/./" + name }
	src := strings.NewReplacer(
		"tls/cert.pem", abs("tls/cert.pem"), "tls/key.pem", abs("tls/key.pem"),
		"scripts/validate.js", abs("scripts/validate.js"), "scripts/bundle", abs("scripts/bundle"),
		"bin/auth", abs("bin/auth"), "auth.json", abs("auth.json"),
	).Replace(pathsSrc)
	conf := filepath.Join(t.TempDir(), "conf")
	path := filepath.Join(conf, "gatehouse.yaml")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := wantPaths(dir)
	for k, v := range want {
		want[k] = abs(strings.TrimPrefix(v, dir+"/"))
	}
	checkPaths(t, c, want)
}

// A relative file that exists neither next to the configuration nor in the
// working directory is refused at its key, and the error names the path
// that was tried and the path as written.
func TestLoadRefusesAMissingRelativeFile(t *testing.T) {
	conf := t.TempDir()
	writeFiles(t, conf, map[string]os.FileMode{"tls/cert.pem": 0, "scripts/bundle/index.js": 0, "bin/auth": 0o755, "auth.json": 0})
	path := filepath.Join(conf, "gatehouse.yaml")
	src := strings.NewReplacer("tls/key.pem", "tls/nokey.pem", "scripts/validate.js", "scripts/missing.js",
		"bin/auth", "bin/noauth", "auth.json", "noauth.json").Replace(pathsSrc)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load accepted missing files")
	}
	const looked = " is relative: it was looked for in the configuration file's directory, then in the working directory)"
	want := []string{
		path + `:4:31: listeners[0].tls.key: cannot read "` + filepath.Join(conf, "tls/nokey.pem") + `": no such file or directory ("tls/nokey.pem"` + looked,
		path + `:6:22: scripts[0].file: cannot read "` + filepath.Join(conf, "scripts/missing.js") + `": no such file or directory ("scripts/missing.js"` + looked,
		path + `:9:18: plugins[0].path: cannot use "` + filepath.Join(conf, "bin/noauth") + `": no such file or directory ("bin/noauth"` + looked,
		path + `:9:36: plugins[0].config_file: cannot read "` + filepath.Join(conf, "noauth.json") + `": no such file or directory ("noauth.json"` + looked,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("Load:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	// A file that is found but cannot be used is reported at the path it
	// was found at, without the note.
	writeFiles(t, conf, map[string]os.FileMode{"bin/noauth": 0o644})
	_, err = Load(path)
	if want := path + `:9:18: plugins[0].path: "` + filepath.Join(conf, "bin/noauth") + `" is not an executable file`; err == nil || !strings.Contains(err.Error(), want+"\n") {
		t.Errorf("Load:\n%v\nwant a line:\n%s", err, want)
	}
}

// Parse keeps paths as written, relative to the working directory; ParseIn
// resolves them against the directory it is given.
func TestParseAndParseIn(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, pathsFiles)
	t.Chdir(dir)
	c, err := Parse("gatehouse.yaml", []byte(pathsSrc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := map[string]string{}
	for k, v := range wantPaths(dir) {
		want[k] = strings.TrimPrefix(v, dir+string(filepath.Separator))
	}
	checkPaths(t, c, want)

	t.Chdir(t.TempDir())
	if _, err := Parse("gatehouse.yaml", []byte(pathsSrc)); err == nil || !strings.Contains(err.Error(), `cannot read "scripts/validate.js": no such file or directory`+"\n") {
		t.Errorf("Parse from another directory: %v", err)
	}
	c, err = ParseIn(dir, "embedded.yaml", []byte(pathsSrc))
	if err != nil {
		t.Fatalf("ParseIn: %v", err)
	}
	checkPaths(t, c, wantPaths(dir))
	if c.Source != "embedded.yaml" {
		t.Errorf("Source = %q", c.Source)
	}
	// A relative directory is made absolute.
	t.Chdir(filepath.Dir(dir))
	c, err = ParseIn(filepath.Base(dir), "embedded.yaml", []byte(pathsSrc))
	if err != nil {
		t.Fatalf("ParseIn with a relative directory: %v", err)
	}
	checkPaths(t, c, wantPaths(dir))
}
