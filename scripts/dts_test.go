package scripts

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sdk/js/gatehouse.d.ts declares what the host accepts and offers: every
// decision field, request field and helper must appear there, so editors
// complete what actually works.
func TestTypeScriptDeclarationsCoverTheHost(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "sdk", "js", "gatehouse.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	dts := string(raw)
	block := func(name string) string {
		m := regexp.MustCompile(`(?s)export interface ` + name + ` \{(.*?)\n\}`).FindStringSubmatch(dts)
		if m == nil {
			t.Fatalf("interface %s not declared", name)
		}
		return m[1]
	}
	has := func(iface string, fields ...string) {
		b := block(iface)
		for _, f := range fields {
			if !regexp.MustCompile(`\n\s+(readonly )?` + f + `[?(:]`).MatchString(b) {
				t.Errorf("%s lacks %s", iface, f)
			}
		}
	}
	has("ValidateDecision", "reject", "labels")
	has("ShapeDecision", "reject", "priority", "rateKey", "cost", "labels")
	has("RouteDecision", "service", "path", "setHeader", "removeHeader", "timeoutMs", "labels")
	has("RespondDecision", "setHeader", "removeHeader")
	has("Reject", "status", "header", "body")
	has("Request", requestKeys...)
	has("Response", responseKeys...)
	has("Observation", observationKeys...)
	has("TLSInfo", tlsKeys...)
	for _, helper := range []string{"bucket(", "hmacSHA256(", "sha256(", "timingSafeEqual(", "encode(", "decode(", "encodeURL(", "decodeURL(", "parse(", "parseQuery(", "config:"} {
		if !strings.Contains(block("Gatehouse"), helper) {
			t.Errorf("Gatehouse lacks %s", helper)
		}
	}
}
