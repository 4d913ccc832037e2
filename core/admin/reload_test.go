package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/config"
)

// TestRefusedReloadIsLogged pins the bug where POST /admin/reload answered
// 422 with the configuration's errors but logged nothing, while the same
// refusal on SIGHUP or a file change logged each error's file, line and key.
func TestRefusedReloadIsLogged(t *testing.T) {
	var buf bytes.Buffer
	refusal := config.Errors{{File: "/etc/gatehouse.yaml", Line: 12, Col: 5, Path: "routes[0].bogus", Msg: "unknown key"}}
	var n int
	d := deps(&n)
	d.Log, d.Reload = zerolog.New(&buf), func() error { return refusal }
	code, body := do(Handler("s3cret", d), "POST", "/admin/reload", "127.0.0.1:5555", "Bearer s3cret")
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "/etc/gatehouse.yaml:12:5: routes[0].bogus: unknown key") {
		t.Fatalf("refused reload: %d %q", code, body)
	}
	lines := logLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines (the error, the refusal), got %d: %s", len(lines), buf.String())
	}
	e := lines[0]
	if e["level"] != "warn" || e["file"] != "/etc/gatehouse.yaml" || e["line"] != 12.0 || e["column"] != 5.0 ||
		e["key"] != "routes[0].bogus" || e["message"] != "unknown key" {
		t.Errorf("error line: %v", e)
	}
	r := lines[1]
	if r["level"] != "warn" || r["client"] != "127.0.0.1:5555" || !strings.Contains(r["error"].(string), "/etc/gatehouse.yaml:12:5: routes[0].bogus") ||
		!strings.Contains(r["message"].(string), "refused") {
		t.Errorf("refusal line: %v", r)
	}

	// An error that is not about a key (the source cannot be read) is logged too.
	buf.Reset()
	d.Reload = func() error { return errors.New("open /etc/gatehouse.yaml: permission denied") }
	if code, _ := do(Handler("s3cret", d), "POST", "/admin/reload", "127.0.0.1:5555", "Bearer s3cret"); code != http.StatusUnprocessableEntity {
		t.Fatalf("refused reload: %d", code)
	}
	if lines := logLines(t, &buf); len(lines) != 1 || lines[0]["error"] != "open /etc/gatehouse.yaml: permission denied" {
		t.Errorf("refusal without a key: %s", buf.String())
	}
}

func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}
