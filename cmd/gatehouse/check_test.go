package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeFile writes a test file, failing the test when it cannot.
func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address no one listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Regression: check said "ok" (exit 0) for configurations run refuses at
// startup. Each one must now fail check with the error run prints.
func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	dir := t.TempDir()
	shared := freeAddr(t)
	const head = "listeners: [{name: p, address: \"127.0.0.1:0\"}]\nadmin: {address: \"127.0.0.1:0\"}\n"
	for _, tt := range []struct {
		name, text, want string
	}{
		{"unknown balancer", head + "services:\n  - name: s\n    endpoints: [\"127.0.0.1:9\"]\n    balancer: roundrobin\nroutes: [{name: r, service: s}]\n",
			`c.yaml:6:5: services[0].balancer: unknown balancer "roundrobin"`},
		{"unknown Go hook", head + "services: [{name: s, endpoints: [\"127.0.0.1:9\"]}]\nroutes: [{name: r, service: s}]\nhooks:\n  - {go: nosuch}\n",
			`c.yaml:6:6: hooks[0].go: no compiled-in hook "nosuch"`},
		{"Go hook without its required config", head + "services: [{name: s, endpoints: [\"127.0.0.1:9\"]}]\nroutes:\n  - name: r\n    service: s\n    hooks:\n      - {go: require_header}\n",
			`c.yaml:8:10: routes[0].hooks[0].go: require_header: config.header is required`},
		{"admin address equal to a listener's", "listeners: [{name: p, address: \"" + shared + "\"}]\nadmin: {address: \"" + shared + "\"}\n" +
			"services: [{name: s, endpoints: [\"127.0.0.1:9\"]}]\nroutes: [{name: r, service: s}]\n",
			`c.yaml:2:9: admin.address: "` + shared + `" is taken by a listener (also listeners[0].address, line 1)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "c.yaml")
			writeFile(t, path, tt.text, 0o644)
			var out, errb bytes.Buffer
			code := run([]string{"check", path}, &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("check: exit %d, out %q, errors:\n%s\nwant exit 1 and %q", code, out.String(), errb.String(), tt.want)
			}
			// run, given a context already ended, builds the gateway and
			// returns at once: it must refuse with the same error.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var runErr bytes.Buffer
			if code := serveFile(ctx, path, "", &runErr, nil); code != 1 || !strings.Contains(runErr.String(), tt.want) {
				t.Fatalf("run: exit %d, errors:\n%s\nwant exit 1 and %q", code, runErr.String(), tt.want)
			}
			if !strings.Contains(errb.String(), strings.TrimSpace(runErr.String())) {
				t.Errorf("check's errors:\n%s\ndo not include run's:\n%s", errb.String(), runErr.String())
			}
		})
	}
}

// Regression: check stopped at the first failing script, before plugins,
// and its script errors had no file:line. It must report every error, each
// as run words it: file:line:col: key: message.
func TestCheckReportsEveryErrorWithItsPosition(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "auth.js"), `exports.validate = function(req) { return {reject: {status: 401}}; };`+"\n", 0o644)
	writeFile(t, filepath.Join(dir, "auth.cases.yaml"), "cases:\n  - name: wants 403\n    request: {method: GET, path: /}\n    expect: {validate: {reject: {status: 403}}}\n", 0o644)
	writeFile(t, filepath.Join(dir, "notaplugin"), "#!/bin/sh\nexit 3\n", 0o755)
	path := filepath.Join(dir, "g.yaml")
	writeFile(t, path, `listeners: [{name: p, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
services:
  - name: s
    endpoints: ["127.0.0.1:9"]
    balancer: roundrobin
scripts:
  - {name: auth, file: "`+filepath.Join(dir, "auth.js")+`"}
plugins:
  - {name: p, path: "`+filepath.Join(dir, "notaplugin")+`", start_timeout: 5s}
routes:
  - name: r
    service: s
    hooks: [{go: require_header}, {script: auth}, {plugin: p}]
`, 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-c", path}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; out %q err:\n%s", code, out.String(), errb.String())
	}
	var firsts []string
	for _, line := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(line, path) || strings.HasPrefix(line, "g.yaml") {
			firsts = append(firsts, strings.TrimPrefix(line, dir+string(filepath.Separator)))
		}
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^g\.yaml:6:5: services\[0\]\.balancer: unknown balancer "roundrobin"`),
		regexp.MustCompile(`^g\.yaml:8:18: scripts\[0\]\.file: cases failed:$`),
		regexp.MustCompile(`^g\.yaml:10:15: plugins\[0\]\.path: plugin "p" did not start: `),
		regexp.MustCompile(`^g\.yaml:14:14: routes\[0\]\.hooks\[0\]\.go: require_header: config\.header is required`),
	}
	if len(firsts) != len(want) {
		t.Fatalf("got %d positioned errors, want %d:\n%s", len(firsts), len(want), errb.String())
	}
	for i, re := range want {
		if !re.MatchString(firsts[i]) {
			t.Errorf("error %d = %q, want it to match %s", i, firsts[i], re)
		}
	}
	if !strings.Contains(errb.String(), `auth.cases.yaml: "wants 403"`) {
		t.Errorf("the failing case is not shown:\n%s", errb.String())
	}
}

// Regression: a positional configuration path was ignored (check read
// ./gatehouse.yaml), and so were flags after it.
func TestConfigArguments(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "listeners: [{name: p, address: \"127.0.0.1:0\"}]\nadmin: {address: \"127.0.0.1:0\"}\nservices: [{name: s, endpoints: [\"127.0.0.1:9\"]}]\nroutes: [{name: r, service: s}]\n", 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "listeners: [{name: p, address: \"127.0.0.1:0\"}]\nroutes: [{name: r, service: nope}]\n", 0o644)
	for _, tt := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"check", good}, 0, good + ": ok (1 listeners", ""},
		{[]string{"check", bad}, 1, "", bad + `:2:20: routes[0].service: unknown service "nope"`},
		{[]string{"check", good, "-c", good}, 0, good + ": ok", ""},
		{[]string{"check", "--", good}, 0, good + ": ok", ""},
		{[]string{"check", good, "-c", bad}, 2, "", `-c "` + bad + `" and the argument "` + good + `" name different configuration files`},
		{[]string{"check", "-c", good, bad}, 2, "", "name different configuration files"},
		{[]string{"check", good, bad}, 2, "", `unexpected argument "` + bad + `"`},
		{[]string{"check", good, "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"check", good, "--log-format", "bogus"}, 2, "", `check: --log-format: must be json or console, got "bogus"`},
		{[]string{"run", good, "--log-format", "bogus"}, 2, "", `run: --log-format: must be json or console, got "bogus"`},
		{[]string{"run", good, bad}, 2, "", `unexpected argument "` + bad + `"`},
		{[]string{"run", bad}, 1, "", bad + `:2:20: routes[0].service: unknown service "nope"`},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errb.String(), tt.errOut) {
			t.Errorf("%q: exit %d, out %q, err %q; want exit %d, out with %q, err with %q", tt.args, code, out.String(), errb.String(), tt.code, tt.out, tt.errOut)
		}
		if strings.Contains(errb.String(), "good.yaml: logging.format") {
			t.Errorf("%q blames the file for the flag: %q", tt.args, errb.String())
		}
	}
}

// Regression: "run -h" and "check -h" exited 2 while "help" and "-h" exited 0.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"run", "-h"}, {"check", "-h"}, {"check", "--help"}, {"demo", "-h"}, {"script", "-h"}, {"script", "test", "-h"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(strings.ToLower(out.String()), "usage") {
			t.Errorf("%q: exit %d, out %q, err %q; want exit 0 and the usage on stdout", args, code, out.String(), errb.String())
		}
	}
}
