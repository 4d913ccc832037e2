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
	"regexp"
	"strconv"
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
	g := <-started
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	// refusedReloads reads gatehouse_config_reloads_total{result="refused"}.
	refusedReloads := func() string {
		resp, err := c.Get("http://" + g.AdminAddr().String() + "/metrics")
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, `gatehouse_config_reloads_total{result="refused"} `); ok {
				return v
			}
		}
		return "absent"
	}
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
	// A file that does not parse counts as a refused reload in /metrics.
	if got := refusedReloads(); got != "1" {
		t.Fatalf("gatehouse_config_reloads_total{result=\"refused\"} = %s after a refused file, want 1", got)
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

// Regression: a configuration reached through a directory symlink, as a
// Kubernetes ConfigMap mounts it (gatehouse.yaml -> ..data/gatehouse.yaml,
// ..data -> ..v1, swapped for ..v2 by renaming a new symlink over it), was
// never reloaded by the file watcher: only SIGHUP worked.
func TestRunReloadsOnConfigMapSymlinkSwap(t *testing.T) {
	v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v1") }))
	defer v1.Close()
	v2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v2") }))
	defer v2.Close()
	addr := freeAddr(t)
	text := func(backend string) string {
		return "listeners: [{name: public, address: \"" + addr + "\"}]\nadmin: {address: \"127.0.0.1:0\"}\n" +
			"logging: {access_log: false}\nservices: [{name: s, endpoints: [\"" + backend + "\"]}]\nroutes: [{name: r, service: s}]\n"
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "..v1"), 0o755))
	writeFile(t, filepath.Join(dir, "..v1", "gatehouse.yaml"), text(v1.Listener.Addr().String()), 0o644)
	must(os.Symlink("..v1", filepath.Join(dir, "..data")))
	must(os.Symlink(filepath.Join("..data", "gatehouse.yaml"), filepath.Join(dir, "gatehouse.yaml")))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	started := make(chan *gatehouse.Gateway, 1)
	exited := make(chan int, 1)
	go func() {
		exited <- serveFile(ctx, filepath.Join(dir, "gatehouse.yaml"), "", logs, func(g *gatehouse.Gateway) { started <- g })
	}()
	select {
	case <-started:
	case code := <-exited:
		t.Fatalf("exited %d; logs:\n%s", code, logs.String())
	}
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

	// The kubelet's update: a new version directory, a new symlink renamed
	// over ..data (mv -T), the old version removed.
	must(os.Mkdir(filepath.Join(dir, "..v2"), 0o755))
	writeFile(t, filepath.Join(dir, "..v2", "gatehouse.yaml"), text(v2.Listener.Addr().String()), 0o644)
	must(os.Symlink("..v2", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(os.RemoveAll(filepath.Join(dir, "..v1")))
	waitFor("v2 served after the symlink swap", func() bool { return body() == "v2" })

	// An edit in place of the file the symlinks lead to is seen too.
	writeFile(t, filepath.Join(dir, "..v2", "gatehouse.yaml"), text(v1.Listener.Addr().String()), 0o644)
	waitFor("v1 served after the target was edited", func() bool { return body() == "v1" })

	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("exit code %d; logs:\n%s", code, logs.String())
	}
}

// Regression: the demo banner promised "504: upstream response header
// timeout (1s)" for /orders/slow; the attempt is retried and the route's
// deadline answers, later. The banner must say what the request gets.
func TestDemoBannerTellsWhatSlowOrdersGets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errb := &syncBuffer{}, &syncBuffer{}
	exited := make(chan int, 1)
	go func() { exited <- serveDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", out, errb) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Stop with Ctrl-C.") {
		if time.Now().After(deadline) {
			t.Fatalf("no banner; out %q err %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := regexp.MustCompile(`curl -i (\S+)/orders/slow +(\d+) after (\S+) \(outcome (\w+)\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the banner does not say what /orders/slow gets:\n%s", out.String())
	}
	base, wantStatus, wantOutcome := m[1], m[2], m[4]
	after, err := time.ParseDuration(m[3])
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := c.Get(base + "/orders/slow")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if strconv.Itoa(resp.StatusCode) != wantStatus || !strings.Contains(string(b), "outcome: "+wantOutcome) {
		t.Errorf("/orders/slow got %d %q; the banner says %s, outcome %s", resp.StatusCode, b, wantStatus, wantOutcome)
	}
	if took < after || took > after+time.Second {
		t.Errorf("/orders/slow answered after %v; the banner says after %v", took, after)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("demo exit %d; err %q", code, errb.String())
	}
}
