package scripts

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// jsonDepth runs on untrusted text before JSON.parse: it must never panic,
// and on valid JSON it must find the nesting encoding/json sees.
func FuzzJSONDepth(f *testing.F) {
	for _, s := range []string{`[]`, `{"a":[1,{"b":"]]]"}]}`, `"\"["`, `[[[[`, `]]]`, `{"a\\":"[["}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := jsonDepth(s)
		if !json.Valid([]byte(s)) {
			return
		}
		d := json.NewDecoder(strings.NewReader(s))
		depth, want := 0, 0
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			if delim, ok := tok.(json.Delim); ok {
				if delim == '[' || delim == '{' {
					depth++
					want = max(want, depth)
				} else {
					depth--
				}
			}
		}
		if got != want {
			t.Fatalf("jsonDepth(%q) = %d, want %d", s, got, want)
		}
	})
}

// The query and URL helpers parse whatever a client sends: they either
// return or throw a JavaScript error, never fail the call otherwise.
func FuzzURLHelpers(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "%zz=%", "&&&=&", "a=%E2%82", "http://[::1]:80/p?q#f", "?x"} {
		f.Add(s)
	}
	s := compileSrc(f, `exports.validate = function (req) {
	var q = gatehouse.url.parseQuery(req.rawQuery);
	var n = Object.keys(q).length;
	try { gatehouse.url.parse(req.rawQuery) } catch (e) { if (e.name !== "TypeError") throw e }
	try { gatehouse.base64.decode(req.rawQuery); gatehouse.base64.decodeURL(req.rawQuery) } catch (e) { if (e.name !== "TypeError") throw e }
	return {labels: {n: n}};
};`, DefaultOptions())
	f.Fuzz(func(t *testing.T, q string) {
		if _, err := s.Validate(ctxT(t, 5*time.Second), &sdk.Request{RawQuery: q}); err != nil {
			t.Fatalf("%q: %v", q, err)
		}
	})
}
