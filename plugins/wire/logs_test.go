package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestHCLogFieldsDoNotCollide pins the bug where go-plugin's "plugin
// process exited" line held "plugin" twice: the host's configured name and
// go-plugin's path of the binary.
func TestHCLogFieldsDoNotCollide(t *testing.T) {
	var buf bytes.Buffer
	sink := hclogSink{log: zerolog.New(&buf).With().Str("plugin", "authz").Logger()}
	sink.Write([]byte(`{"@level":"error","@message":"plugin process exited","@module":"host","plugin":"/opt/plugins/authz","id":"16373","error":"signal: killed"}` + "\n"))
	line := strings.TrimSpace(buf.String())
	dec := json.NewDecoder(strings.NewReader(line))
	dec.Token() // {
	seen := map[string]bool{}
	for dec.More() {
		k, _ := dec.Token()
		if seen[k.(string)] {
			t.Fatalf("key %q twice in %s", k, line)
		}
		seen[k.(string)] = true
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	var m map[string]any
	json.Unmarshal([]byte(line), &m)
	if m["plugin"] != "authz" || m["plugin_path"] != "/opt/plugins/authz" || m["message"] != "plugin process exited" {
		t.Fatalf("line %v", m)
	}
}
