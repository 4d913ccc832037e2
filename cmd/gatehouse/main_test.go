package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("listeners: [{name: p, address: \"127.0.0.1:8080\"}]\nservices: [{name: s, endpoints: [\"127.0.0.1:9\"]}]\nroutes: [{name: r, service: s}]\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-c", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok (1 listeners, 1 services, 1 routes)") {
		t.Fatalf("good config: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listeners: [{name: p, address: \"127.0.0.1:8080\"}]\nlimits:\n  request:\n    deadline: 0s\n    dedline: 1s\nroutes: [{name: r, service: nope}]\n"), 0o644)
	out.Reset()
	errb.Reset()
	code := run([]string{"check", "-c", bad}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if code != 1 || len(lines) != 3 {
		t.Fatalf("bad config: exit %d, errors:\n%s", code, errb.String())
	}
	for i, want := range []string{
		"bad.yaml:4:5: limits.request.deadline: must be a positive duration",
		`bad.yaml:5:5: limits.request: unknown key "dedline"`,
		`bad.yaml:6:20: routes[0].service: unknown service "nope"`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("error %d = %q, want it to contain %q", i, lines[i], want)
		}
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if run([]string{"version"}, &out, &errb) != 0 || !strings.HasPrefix(out.String(), "gatehouse ") {
		t.Fatalf("version: %q", out.String())
	}
	if run([]string{"bogus"}, &out, &errb) != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: %q", errb.String())
	}
}

// syncBuffer is a log sink the test can read while the gateway writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestRunReloadsOnFileChangeAndSIGHUP(t *testing.T) {
	v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v1") }))
	defer v1.Close()
	v2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v2") }))
	defer v2.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	text := func(backend string) string {
		return "listeners: [{name: public, address: \"" + addr + "\"}]\nadmin: {address: \"127.0.0.1:0\"}\n" +
			"logging: {access_log: false}\nservices: [{name: s, endpoints: [\"" + backend + "\"]}]\nroutes: [{name: r, service: s}]\n"
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(path, []byte(text(v1.Listener.Addr().String())), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	started := make(chan *gatehouse.Gateway, 1)
	exited := make(chan int, 1)
	go func() { exited <- serveFile(ctx, path, "", logs, func(g *gatehouse.Gateway) { started <- g }) }()
	<-started
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	body := func() string {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("v1 served", func() bool { return body() == "v1" })

	// An editor-style replace: write a new file and rename it over the old.
	tmp := filepath.Join(dir, ".gatehouse.yaml.tmp")
	os.WriteFile(tmp, []byte(text(v2.Listener.Addr().String())), 0o644)
	os.Rename(tmp, path)
	waitFor("v2 served after the file changed", func() bool { return body() == "v2" })

	// A bad file is refused, logged with its position, and v2 keeps serving.
	os.WriteFile(path, []byte(text(v1.Listener.Addr().String())+"routes: []\nbogus: 1\n"), 0o644)
	waitFor("the refusal logged", func() bool { return strings.Contains(logs.String(), "configuration refused") })
	if !strings.Contains(logs.String(), `"key":"bogus"`) && !strings.Contains(logs.String(), "bogus") {
		t.Fatalf("refusal does not name the key:\n%s", logs.String())
	}
	if got := body(); got != "v2" {
		t.Fatalf("after a refused reload: %q", got)
	}

	// Fixing the file is picked up; then SIGHUP reloads without any change.
	os.WriteFile(path, []byte(text(v1.Listener.Addr().String())), 0o644)
	waitFor("v1 served again", func() bool { return body() == "v1" })
	reloads := func() int { return strings.Count(logs.String(), "configuration reloaded") }
	waitFor("the reload logged", func() bool { return reloads() >= 2 })
	before := reloads()
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor("a reload on SIGHUP", func() bool {
		return reloads() > before && strings.Contains(logs.String(), "SIGHUP")
	})

	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("exit code %d; logs:\n%s", code, logs.String())
	}
}

func TestScriptTestCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"script", "test", "../../examples/scripts/validate.js"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "passed, 0 failed") {
		t.Fatalf("examples: exit %d out %q err %q", code, out.String(), errb.String())
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.js")
	os.WriteFile(bad, []byte("exports.validate = function(req) {\n  var x = ;\n};\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"script", "test", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "bad.js:2:11: SyntaxError") {
		t.Fatalf("syntax error: exit %d err %q", code, errb.String())
	}
	// A case that fails makes the command fail, with the difference shown.
	good := filepath.Join(dir, "auth.js")
	os.WriteFile(good, []byte(`exports.validate = function(req) { return {reject: {status: 401}}; };`), 0o644)
	cases := filepath.Join(dir, "cases.yaml")
	os.WriteFile(cases, []byte("cases:\n  - name: wants 403\n    request: {method: GET, path: /}\n    expect: {validate: {reject: {status: 403}}}\n"), 0o644)
	out.Reset()
	errb.Reset()
	code := run([]string{"script", "test", good, "--cases", cases}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "401") {
		t.Fatalf("failing case: exit %d out %q err %q", code, out.String(), errb.String())
	}
}

func TestCheckCompilesScripts(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.js")
	os.WriteFile(script, []byte("exports.validate = function(req) {\n  return require('fs');\n};\n"), 0o644)
	cfg := filepath.Join(dir, "g.yaml")
	os.WriteFile(cfg, []byte("listeners: [{name: p, address: \"127.0.0.1:8080\"}]\nservices: [{name: s, endpoints: [\"127.0.0.1:9\"]}]\n"+
		"scripts: [{name: s, file: \""+script+"\"}]\nroutes: [{name: r, service: s, hooks: [{script: s}]}]\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-c", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "s.js:2:") {
		t.Fatalf("check with a script that requires fs: exit %d, err %q", code, errb.String())
	}
}
