package gatehouse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/proxy"
)

// logBuf is a log destination safe for the gateway's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range strings.Split(l.b.String(), "\n") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// find returns the first line holding every part, or "".
func (l *logBuf) find(parts ...string) string {
	for _, s := range l.lines() {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(s, p)
		}
		if all {
			return s
		}
	}
	return ""
}

// waitLine polls l until a line holds every part.
func waitLine(t *testing.T, l *logBuf, parts ...string) string {
	t.Helper()
	var line string
	waitFor(t, 10*time.Second, fmt.Sprintf("a log line with %q", parts), func() bool {
		line = l.find(parts...)
		return line != ""
	})
	return line
}

// decodeUnique decodes a JSON log line, failing on a key that appears twice
// in an object (encoding/json would keep the last silently).
func decodeUnique(t *testing.T, line string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				if seen[k.(string)] {
					return fmt.Errorf("key %q twice", k)
				}
				seen[k.(string)] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(); err != nil {
		t.Fatalf("log line %s: %v", line, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("log line %s: %v", line, err)
	}
	return m
}

// serveLogged runs a gateway for cfg with the given options and a record
// channel fed by an observer that runs after the access log.
func serveLogged(t *testing.T, cfg *config.Config, opts ...gatehouse.Option) (*gatehouse.Gateway, <-chan string) {
	t.Helper()
	paths := make(chan string, 100)
	opts = append(opts, gatehouse.WithObserver(proxy.ObserverFunc(func(r *proxy.Record) {
		select {
		case paths <- r.Path:
		default:
		}
	})))
	g, err := gatehouse.New(*cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Shutdown(ctx)
		<-done
	})
	return g, paths
}

// getDone sends GET path and waits until the request's record has passed
// every observer (so the access log has written it, or has not).
func getDone(t *testing.T, g *gatehouse.Gateway, paths <-chan string, path string) {
	t.Helper()
	resp, err := client(t).Get("http://" + g.Addr("public").String() + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-paths:
			if p == path {
				return
			}
		case <-deadline:
			t.Fatalf("GET %s: no record", path)
		}
	}
}

const loggingConfig = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: {{LEVEL}}, format: {{FORMAT}}, access_log: {{ACCESS}}}
services: [{name: app, endpoints: ["{{APP}}"]}]
routes: [{name: app, service: app}]
`

func loggingVars(app, level, format, access string) map[string]string {
	return map[string]string{"APP": app, "LEVEL": level, "FORMAT": format, "ACCESS": access}
}

// TestAccessLogIgnoresLogLevel pins the bug where the access log went
// through the process log's level: with logging.level warn a successful
// request (logged at info) wrote no access line; and the one where
// WithAccessLog was ignored (the access logger was built before the options
// were applied).
func TestAccessLogIgnoresLogLevel(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cfg := parse(t, loggingConfig, loggingVars(app, "warn", "json", "true"))

	t.Run("gateway's own access log", func(t *testing.T) {
		var proc, acc logBuf
		g, paths := serveLogged(t, cfg, gatehouse.WithLogOutput(&proc, &acc))
		getDone(t, g, paths, "/ok-1")
		m := decodeUnique(t, waitLine(t, &acc, `"path":"/ok-1"`))
		if m["kind"] != "access" || m["status"] != 200.0 || m["level"] != "info" {
			t.Fatalf("access line: %v", m)
		}
	})
	t.Run("WithAccessLog", func(t *testing.T) {
		var acc logBuf
		g, paths := serveLogged(t, cfg, gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.New(&acc)))
		getDone(t, g, paths, "/ok-2")
		if m := decodeUnique(t, waitLine(t, &acc, `"path":"/ok-2"`)); m["status"] != 200.0 {
			t.Fatalf("access line: %v", m)
		}
	})
}

// TestReloadAppliesLogging pins the bug where a reload applied
// logging.access_log and the level but not logging.format, and checks each
// of the three on the running gateway.
func TestReloadAppliesLogging(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	var proc, acc logBuf
	g, paths := serveLogged(t, parse(t, loggingConfig, loggingVars(app, "warn", "json", "true")), gatehouse.WithLogOutput(&proc, &acc))
	reload := func(level, format, access string) {
		t.Helper()
		if err := g.Reload(*parse(t, loggingConfig, loggingVars(app, level, format, access))); err != nil {
			t.Fatal(err)
		}
	}

	// At warn, a reload's info line is not written; at info it is.
	reload("warn", "json", "true")
	if l := proc.find("configuration applied"); l != "" {
		t.Fatalf("info line written at level warn: %s", l)
	}
	reload("info", "json", "true")
	m := decodeUnique(t, waitLine(t, &proc, "configuration applied"))
	if m["level"] != "info" {
		t.Fatalf("reload line: %v", m)
	}
	if l := proc.find("logging settings applied"); !strings.Contains(l, `"log_level":"info"`) {
		t.Fatalf("no line saying what changed: %q", l)
	}

	// Console format, for both logs.
	reload("info", "console", "true")
	getDone(t, g, paths, "/console")
	if l := waitLine(t, &acc, "/console"); strings.HasPrefix(l, "{") {
		t.Fatalf("access line after the switch to console: %s", l)
	}
	// The reload's own line is the first in the new format.
	console := false
	for _, l := range proc.lines() {
		console = console || strings.Contains(l, "configuration applied") && !strings.HasPrefix(l, "{")
	}
	if !console {
		t.Fatalf("no process line in console format after the switch:\n%s", strings.Join(proc.lines(), "\n"))
	}

	// Access log off, then on again.
	reload("info", "json", "false")
	getDone(t, g, paths, "/off")
	reload("info", "json", "true")
	getDone(t, g, paths, "/on")
	decodeUnique(t, waitLine(t, &acc, `"path":"/on"`))
	if l := acc.find("/off"); l != "" {
		t.Fatalf("access line written with access_log false: %s", l)
	}
}

// TestAdminReloadRefusalIsLogged pins the bug where POST /admin/reload
// refused an invalid configuration with 422 and the errors, but logged
// nothing, while SIGHUP and the file watcher logged each error's file,
// line and key.
func TestAdminReloadRefusalIsLogged(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	text := fmt.Sprintf(`listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0", token: s3cret}
services: [{name: app, endpoints: ["%s"]}]
routes:
  - name: app
    service: app
`, app)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var proc logBuf
	g, _ := serveLogged(t, cfg, gatehouse.WithLogOutput(&proc, io.Discard),
		gatehouse.WithSource(func() (*config.Config, error) { return config.Load(path) }))
	if err := os.WriteFile(path, []byte(text+"    bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+g.AdminAddr().String()+"/admin/reload", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "bogus") {
		t.Fatalf("reload of an unknown key: %d %s", resp.StatusCode, body)
	}
	m := decodeUnique(t, waitLine(t, &proc, `"key":"routes[0]"`, "bogus"))
	if m["level"] != "warn" || m["file"] != path || m["line"] != 7.0 || !strings.Contains(m["message"].(string), `unknown key "bogus"`) {
		t.Fatalf("refusal line: %v", m)
	}
	if m := decodeUnique(t, waitLine(t, &proc, "configuration refused through the admin API")); !strings.Contains(m["error"].(string), path+":7:") {
		t.Fatalf("refusal summary: %v", m)
	}
}

// TestScriptLogLinesNameEachKeyOnce pins the bug where a script's load,
// reload and refusal lines held "script" twice: the configured name (from
// the gateway) and the file's name (from the script host).
func TestScriptLogLinesNameEachKeyOnce(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	dir := t.TempDir()
	file := filepath.Join(dir, "validate.js")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`exports.validate = function (req) { return {}; };`)
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
scripts: [{name: auth, file: "{{FILE}}"}]
hooks: [{script: auth}]
services: [{name: app, endpoints: ["{{APP}}"]}]
routes: [{name: app, service: app}]
`, map[string]string{"APP": app, "FILE": file})
	var proc logBuf
	serveLogged(t, cfg, gatehouse.WithLogOutput(&proc, io.Discard))
	check := func(msg string) {
		t.Helper()
		m := decodeUnique(t, waitLine(t, &proc, msg))
		if m["script"] != "auth" || m["file"] != file {
			t.Fatalf("%s: script %v, file %v, want auth, %s: %v", msg, m["script"], m["file"], file, m)
		}
	}
	check("script loaded")
	write(`exports.validate = function (req) { return {labels: {v: "2"}}; };`)
	check("script reloaded")
	write(`exports.validate = function (req) { return {; };`)
	check("script change refused")
	for _, l := range proc.lines() {
		decodeUnique(t, l)
	}
}

// TestGoHookBindingsChecked pins the bugs where a compiled-in Go hook's
// binding was checked loosely: an unknown config key was ignored, and
// phases the hook does not implement were accepted (the hook then never
// ran). Both refuse the configuration with the key's file and line.
func TestGoHookBindingsChecked(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	const base = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
services: [{name: app, endpoints: ["{{APP}}"]}]
routes:
  - name: app
    service: app
    hooks: [{{ROUTE}}]
hooks: [{{GLOBAL}}]
`
	vars := func(route, global string) map[string]string {
		return map[string]string{"APP": app, "ROUTE": route, "GLOBAL": global}
	}
	for _, tc := range []struct {
		name, route, global string
		want                []string
	}{
		{"phase not implemented, global", "", `{go: response_headers, phases: [validate], config: {set: {X-A: b}}}`,
			[]string{"test.yaml:9:", "hooks[0].phases", `"response_headers" does not implement validate (it implements respond)`}},
		{"phase not implemented, route", `{go: require_header, phases: [validate, respond], config: {header: X-Key}}`, "",
			[]string{"test.yaml:8:", "routes[0].hooks[0].phases", `"require_header" does not implement respond`}},
		{"unknown key", "", `{go: require_header, config: {name: X-Key}}`,
			[]string{"test.yaml:9:", "hooks[0].go", "config.name: unknown key"}},
		{"wrong type", "", `{go: response_headers, config: {set: 5}}`,
			[]string{"test.yaml:9:", "hooks[0].go", "config.set must be a map"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gatehouse.New(*parse(t, base, vars(tc.route, tc.global)), gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop()))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	// A reload is refused the same way; the running version keeps serving.
	g, paths := serveLogged(t, parse(t, base, vars("", `{go: response_headers, config: {set: {X-A: b}}}`)),
		gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop()))
	err := g.Reload(*parse(t, base, vars("", `{go: response_headers, phases: [route], config: {set: {X-A: b}}}`)))
	if err == nil || !strings.Contains(err.Error(), "hooks[0].phases") {
		t.Fatalf("reload with a phase response_headers lacks: %v", err)
	}
	getDone(t, g, paths, "/still")
}
