package gatehouse_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/scripts"
)

// syncLog collects the gateway's log lines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the logged lines that contain s, decoded.
func (l *syncLog) lines(t *testing.T, s string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	text := l.b.String()
	l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, s) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// scriptVersion is a respond script that says which version answered.
func scriptVersion(n int) string {
	return fmt.Sprintf("exports.respond = function(req, resp) { return {setHeader: {\"X-Script-Version\": \"%d\"}}; };\n", n)
}

const scriptWiringConfig = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts: [{name: v, file: "{{FILE}}"}]
routes: [{name: app, service: app, hooks: [{script: v, budget: 5s}]}]
`

// startLogged runs a gateway for the script at file, logging to the
// returned log.
func startLogged(t *testing.T, file string) (*gatehouse.Gateway, gatehouse.Config, *syncLog) {
	t.Helper()
	cfg := parse(t, scriptWiringConfig, map[string]string{"APP": backend(t, named("app")), "FILE": file})
	logs := &syncLog{}
	g, err := gatehouse.New(*cfg, gatehouse.WithLogger(zerolog.New(logs)), gatehouse.WithAccessLog(zerolog.Nop()))
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
	return g, *cfg, logs
}

func servingScript(t *testing.T, c *http.Client, g *gatehouse.Gateway) string {
	t.Helper()
	resp, _ := getWith(t, c, "http://"+g.Addr("public").String()+"/")
	return resp.Header.Get("X-Script-Version")
}

// A configuration reload reads the running scripts' files again: a change
// the watcher was not told of (here an edit through another hard link)
// serves when the reload returns; an unchanged script is left alone.
func TestScriptReloadRechecksFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := writeScript(t, filepath.Join(dir, "src"), "v.js", scriptVersion(0))
	file := filepath.Join(dir, "v.js")
	if err := os.Link(src, file); err != nil {
		t.Skipf("hard links: %v", err)
	}
	g, cfg, logs := startLogged(t, file)
	c := client(t)
	if v := servingScript(t, c, g); v != "0" {
		t.Fatalf("first version: %q", v)
	}
	if err := os.WriteFile(src, []byte(scriptVersion(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if v := servingScript(t, c, g); v != "1" {
		t.Fatalf("after the reload: version %q, want 1", v)
	}
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if n := len(logs.lines(t, `"script reloaded"`)); n != 1 {
		t.Errorf("%d script reloads logged, want 1", n)
	}
}

// A refused script version is logged once, with the script's name, where
// the error is, the refused version and the one that keeps serving.
func TestScriptRefusalLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	file := writeScript(t, dir, "v.js", scriptVersion(0))
	g, cfg, logs := startLogged(t, file)
	c := client(t)
	serving := ""
	for _, st := range logs.lines(t, `"script loaded"`) {
		serving, _ = st["version"].(string)
	}
	tmp := filepath.Join(dir, ".v.js.tmp")
	if err := os.WriteFile(tmp, []byte("exports.respond = function( {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refusal", func() bool { return len(logs.lines(t, "refused")) > 0 })
	// A reload checks the script again: the same content is not refused twice.
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	got := logs.lines(t, "refused")
	if len(got) != 1 {
		t.Fatalf("%d refusal lines, want 1: %v", len(got), got)
	}
	line := got[0]
	if line["script"] != "v" || line["file"] != file || line["version"] != serving || serving == "" {
		t.Errorf("refusal line %v (serving %q)", line, serving)
	}
	var le *scripts.LoadError
	if _, err := scripts.Compile(file, scripts.DefaultOptions()); !errors.As(err, &le) || le.Line == 0 {
		t.Fatalf("the refused version compiles to %v", err)
	}
	if want := fmt.Sprintf("%s:%d:%d", file, le.Line, le.Column); line["at"] != want {
		t.Errorf("at = %v, want %s", line["at"], want)
	}
	if r, _ := line["refused"].(string); len(r) != 12 || r == serving {
		t.Errorf("refused = %q", r)
	}
	if v := servingScript(t, c, g); v != "0" {
		t.Errorf("after the refusal: version %q", v)
	}
}
