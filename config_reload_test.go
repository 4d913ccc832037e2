package gatehouse_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unlabelled reads an unlabelled sample from /metrics.
func unlabelled(t *testing.T, page, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestConfigReloadsRecorded: an operator can alert on a refused
// configuration from /metrics, and see why in /admin/api/status, without
// reading the logs; the running configuration's hash tells instances apart.
func TestConfigReloadsRecorded(t *testing.T) {
	app := backend(t, http.NotFoundHandler())
	vars := map[string]string{"APP": app}
	h := start(t, baseConfig, vars)
	read := func() (page string, hash string, status map[string]any) {
		_, page = adminGet(t, h.g, "/metrics")
		info := scrape(t, h.g, "gatehouse_config_info")
		if len(info) != 1 || info[0].labels["hash"] == "" {
			t.Fatalf("gatehouse_config_info: %+v", info)
		}
		code, body := adminGet(t, h.g, "/admin/api/status")
		if code != 200 {
			t.Fatalf("/admin/api/status: %d", code)
		}
		var st struct{ Config map[string]any }
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return page, info[0].labels["hash"], st.Config
	}
	reloads := func(result string) float64 {
		v, ok := value(scrape(t, h.g, "gatehouse_config_reloads_total"), map[string]string{"result": result})
		if !ok {
			t.Fatalf("no gatehouse_config_reloads_total{result=%q}", result)
		}
		return v
	}
	page, hash0, _ := read()
	if unlabelled(t, page, "gatehouse_config_last_reload_successful") != 1 || reloads("applied") != 0 || reloads("refused") != 0 {
		t.Fatal("a fresh gateway reports reloads")
	}

	// Refused: a configuration Reload refuses, and a file that did not parse.
	bad := parse(t, baseConfig, vars)
	bad.Routes[0].Service = "nowhere"
	if err := h.g.Reload(*bad); err == nil {
		t.Fatal("a route to an unknown service was applied")
	}
	h.g.ReloadRefused(errors.New("gatehouse.yaml:3:7: listeners: want a list"))
	page, hash, st := read()
	if unlabelled(t, page, "gatehouse_config_last_reload_successful") != 0 || reloads("refused") != 2 || reloads("applied") != 0 {
		t.Fatalf("after two refusals: last ok %v, refused %v", unlabelled(t, page, "gatehouse_config_last_reload_successful"), reloads("refused"))
	}
	if hash != hash0 || unlabelled(t, page, "gatehouse_config_last_reload_timestamp_seconds") == 0 {
		t.Fatal("a refused reload changed the running configuration's record")
	}
	if e, _ := st["last_error"].(string); !strings.Contains(e, "gatehouse.yaml:3:7") || st["last_reload_ok"] != false {
		t.Fatalf("status config: %v", st)
	}

	// Applied: another configuration, then the same one again.
	good := parse(t, strings.Replace(baseConfig, "deadline: 5s", "deadline: 4s", 1), vars)
	if err := h.g.Reload(*good); err != nil {
		t.Fatal(err)
	}
	page, hash1, st := read()
	if unlabelled(t, page, "gatehouse_config_last_reload_successful") != 1 || reloads("applied") != 1 || hash1 == hash0 {
		t.Fatalf("after a reload applied: ok %v, applied %v, hash %s (was %s)", unlabelled(t, page, "gatehouse_config_last_reload_successful"), reloads("applied"), hash1, hash0)
	}
	if _, ok := st["last_error"]; ok {
		t.Fatalf("status keeps the old error: %v", st)
	}
	if err := h.g.Reload(*parse(t, strings.Replace(baseConfig, "deadline: 5s", "deadline: 4s", 1), vars)); err != nil {
		t.Fatal(err)
	}
	if _, hash2, _ := read(); hash2 != hash1 {
		t.Fatalf("the same configuration has another hash: %s, %s", hash2, hash1)
	}
}
