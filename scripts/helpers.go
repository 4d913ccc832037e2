package scripts

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dop251/goja"
	"github.com/rs/zerolog"
)

// maxLogLine bounds one console line, in bytes.
const maxLogLine = 2048

// installGatehouse defines the global gatehouse object and console.
func (st *vmState) installGatehouse(configJSON []byte) error {
	rt := st.rt
	g := rt.NewObject()
	fn := func(o *goja.Object, name string, f func(goja.FunctionCall) goja.Value) {
		_ = o.Set(name, f)
	}

	// config: parsed from JSON in this runtime and deep-frozen below.
	cfg, err := st.jsonParse(string(configJSON))
	if err != nil {
		return err
	}
	_ = g.Set("config", cfg)
	_ = g.Set("version", st.s.bundle.id)
	_ = g.Set("name", st.s.name)

	fn(g, "bucket", func(c goja.FunctionCall) goja.Value {
		key := st.argString(c, 0, "gatehouse.bucket: key")
		n := c.Argument(1).ToInteger()
		if n <= 0 || n > 1<<32 {
			panic(rt.NewTypeError("gatehouse.bucket: buckets must be an integer in 1..2^32, got %s", c.Argument(1).String()))
		}
		return rt.ToValue(int64(xxhash.Sum64String(key) % uint64(n)))
	})

	crypto := rt.NewObject()
	fn(crypto, "sha256", func(c goja.FunctionCall) goja.Value {
		sum := sha256.Sum256([]byte(st.argString(c, 0, "gatehouse.crypto.sha256: message")))
		return rt.ToValue(hex.EncodeToString(sum[:]))
	})
	fn(crypto, "hmacSHA256", func(c goja.FunctionCall) goja.Value {
		key := st.argString(c, 0, "gatehouse.crypto.hmacSHA256: key")
		msg := st.argString(c, 1, "gatehouse.crypto.hmacSHA256: message")
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(msg))
		return rt.ToValue(hex.EncodeToString(m.Sum(nil)))
	})
	fn(crypto, "timingSafeEqual", func(c goja.FunctionCall) goja.Value {
		a := st.argString(c, 0, "gatehouse.crypto.timingSafeEqual: a")
		b := st.argString(c, 1, "gatehouse.crypto.timingSafeEqual: b")
		return rt.ToValue(subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1)
	})
	_ = g.Set("crypto", crypto)

	b64 := rt.NewObject()
	enc := func(name string, e *base64.Encoding) {
		fn(b64, name, func(c goja.FunctionCall) goja.Value {
			s := st.argString(c, 0, "gatehouse.base64."+name)
			if e.EncodedLen(len(s)) > st.s.opts.MaxStringLength {
				panic(st.rangeError("gatehouse.base64.%s: result longer than the string limit (MaxStringLength = %d)", name, st.s.opts.MaxStringLength))
			}
			return rt.ToValue(e.EncodeToString([]byte(s)))
		})
	}
	dec := func(name string, lenient func(string) ([]byte, error)) {
		fn(b64, name, func(c goja.FunctionCall) goja.Value {
			s := st.argString(c, 0, "gatehouse.base64."+name)
			out, err := lenient(s)
			if err != nil {
				panic(rt.NewTypeError("gatehouse.base64.%s: %v", name, err))
			}
			return rt.ToValue(string(out))
		})
	}
	enc("encode", base64.StdEncoding)
	enc("encodeURL", base64.RawURLEncoding)
	dec("decode", func(s string) ([]byte, error) {
		if strings.HasSuffix(s, "=") || len(s)%4 == 0 {
			return base64.StdEncoding.DecodeString(s)
		}
		return base64.RawStdEncoding.DecodeString(s)
	})
	dec("decodeURL", func(s string) ([]byte, error) {
		return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	})
	_ = g.Set("base64", b64)

	u := rt.NewObject()
	fn(u, "parse", func(c goja.FunctionCall) goja.Value {
		s := st.argString(c, 0, "gatehouse.url.parse")
		p, err := url.Parse(s)
		if err != nil {
			panic(rt.NewTypeError("gatehouse.url.parse: %v", err))
		}
		o := rt.NewObject()
		_ = o.Set("scheme", p.Scheme)
		_ = o.Set("username", p.User.Username())
		_ = o.Set("host", p.Host)
		_ = o.Set("hostname", p.Hostname())
		_ = o.Set("port", p.Port())
		_ = o.Set("path", p.EscapedPath())
		_ = o.Set("rawQuery", p.RawQuery)
		_ = o.Set("fragment", p.Fragment)
		_ = o.Set("query", st.parseQuery(p.RawQuery))
		return o
	})
	fn(u, "parseQuery", func(c goja.FunctionCall) goja.Value {
		q := st.argString(c, 0, "gatehouse.url.parseQuery")
		return st.parseQuery(strings.TrimPrefix(q, "?"))
	})
	_ = g.Set("url", u)

	if err := rt.Set("gatehouse", g); err != nil {
		return err
	}

	console := rt.NewObject()
	for _, lv := range []struct {
		name  string
		level zerolog.Level
	}{{"log", zerolog.InfoLevel}, {"info", zerolog.InfoLevel}, {"debug", zerolog.DebugLevel}, {"warn", zerolog.WarnLevel}, {"error", zerolog.ErrorLevel}} {
		level := lv.level
		fn(console, lv.name, func(c goja.FunctionCall) goja.Value {
			st.log(level, c.Arguments)
			return goja.Undefined()
		})
	}
	if err := rt.Set("console", console); err != nil {
		return err
	}
	// Freeze what the script must not change: its config and the helpers.
	_, err = rt.RunString(`(function () {
	function deepFreeze(o) {
		if (o === null || typeof o !== "object" || Object.isFrozen(o)) return o;
		Object.freeze(o);
		Object.getOwnPropertyNames(o).forEach(function (k) { deepFreeze(o[k]); });
		return o;
	}
	deepFreeze(gatehouse);
	Object.freeze(console);
})()`)
	return err
}

// parseQuery decodes a query string into {key: [values...]}, keeping a
// component that does not unescape as it was: a validation script wants to
// see pathological input, not an exception.
func (st *vmState) parseQuery(q string) goja.Value {
	rt := st.rt
	o := rt.NewObject()
	if q == "" {
		return o
	}
	if strings.Count(q, "&")+1 > st.s.opts.MaxArrayLength {
		panic(st.rangeError("gatehouse.url.parseQuery: more than %d parameters (MaxArrayLength)", st.s.opts.MaxArrayLength))
	}
	vals := map[string][]any{}
	var order []string
	for _, part := range strings.Split(q, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		if _, seen := vals[k]; !seen {
			order = append(order, k)
		}
		vals[k] = append(vals[k], v)
	}
	for _, k := range order {
		_ = o.Set(k, rt.NewArray(vals[k]...))
	}
	return o
}

// argString returns argument i as a string, refusing one longer than the
// string limit.
func (st *vmState) argString(c goja.FunctionCall, i int, what string) string {
	v := c.Argument(i)
	if goja.IsUndefined(v) || goja.IsNull(v) {
		panic(st.rt.NewTypeError("%s: want a string, got %s", what, v.String()))
	}
	gs := st.str(v)
	if gs.Length() > st.s.opts.MaxStringLength {
		panic(st.rangeError("%s: string longer than the limit (MaxStringLength = %d)", what, st.s.opts.MaxStringLength))
	}
	return gs.String()
}

// log writes one console line to zerolog, rate-limited per script.
func (st *vmState) log(level zerolog.Level, args []goja.Value) {
	s := st.s
	ok, dropped := s.logs.allow(time.Now())
	if !ok {
		return
	}
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if b.Len() >= maxLogLine {
			break
		}
		b.WriteString(st.logString(a))
	}
	msg := b.String()
	if len(msg) > maxLogLine {
		msg = msg[:maxLogLine] + "…"
	}
	ev := s.opts.Logger.WithLevel(level).Str("file", s.name).Str("version", s.bundle.id).Str("request_id", st.reqID)
	if dropped > 0 {
		ev = ev.Uint64("dropped_before", dropped)
	}
	ev.Msg(msg)
}

// logString renders a console argument: strings as they are, objects as
// bounded JSON.
func (st *vmState) logString(v goja.Value) (out string) {
	if o, ok := v.(*goja.Object); ok {
		if _, isFn := goja.AssertFunction(o); !isFn {
			defer func() {
				if r := recover(); r != nil {
					if _, abort := r.(*abortError); abort {
						panic(r)
					}
					out = o.String()
				}
			}()
			return st.stringify(v, goja.Undefined(), goja.Undefined(), maxLogLine).String()
		}
	}
	if v == nil {
		return "undefined"
	}
	return v.String()
}

// rangeError builds a RangeError to throw from a native function.
func (st *vmState) rangeError(format string, args ...any) *goja.Object {
	o, err := st.rt.New(st.rangeErrorCtor, st.rt.ToValue(sprintf(format, args...)))
	if err != nil {
		panic(err)
	}
	return o
}
