package scripts

import (
	"net/textproto"
	"strings"

	"github.com/dop251/goja"
	"github.com/gatehouse/gatehouse/sdk"
)

// The JavaScript views of a request, a response and an observation are
// dynamic objects created once per runtime and pointed at the current call's
// Go values: a call builds no JavaScript object for its input, and a field
// costs something only when the script reads it. The views are read-only
// (assignments are ignored, or throw in strict mode) and empty once the call
// has returned.

var requestKeys = []string{"id", "method", "scheme", "host", "path", "rawQuery", "headers", "header", "headerValues", "clientIP", "tls", "route", "service", "labels", "body", "bodyTruncated"}

// requestView is the JavaScript request object.
type requestView struct {
	st  *vmState
	req *sdk.Request
	// strs caches the string fields converted, with the Go strings they
	// were converted from: a script reading req.path three times converts
	// it once, and the next call on this runtime reuses the conversion
	// while the field is the same (the method, the host and often the
	// path are), so reading it allocates nothing.
	strs [numStrFields]goja.Value
	gos  [numStrFields]string
}

// The string fields of the request view, as indexes into requestView.strs.
const (
	strID = iota
	strMethod
	strScheme
	strHost
	strPath
	strRawQuery
	strClientIP
	strRoute
	strService
	numStrFields
)

// set points the view at req (nil: between calls).
func (v *requestView) set(req *sdk.Request) { v.req = req }

// str returns field i, whose Go value is s, as a JavaScript string.
func (v *requestView) str(i int, s string) goja.Value {
	if x := v.strs[i]; x != nil && v.gos[i] == s {
		return x
	}
	x := v.st.rt.ToValue(s)
	v.strs[i], v.gos[i] = x, s
	return x
}

func (v *requestView) Get(key string) goja.Value {
	r := v.req
	if r == nil {
		return nil
	}
	rt := v.st.rt
	switch key {
	case "id":
		return v.str(strID, r.ID)
	case "method":
		return v.str(strMethod, r.Method)
	case "scheme":
		return v.str(strScheme, r.Scheme)
	case "host":
		return v.str(strHost, r.Host)
	case "path":
		return v.str(strPath, r.Path)
	case "rawQuery":
		return v.str(strRawQuery, r.RawQuery)
	case "headers":
		return v.st.headersObj
	case "header":
		return v.st.headerFn
	case "headerValues":
		return v.st.headerValuesFn
	case "clientIP":
		return v.str(strClientIP, r.ClientIP)
	case "tls":
		if r.TLS == nil {
			return goja.Null()
		}
		return v.st.tlsObj
	case "route":
		return v.str(strRoute, r.Route)
	case "service":
		return v.str(strService, r.Service)
	case "labels":
		return v.st.labelsObj
	case "body":
		if r.Body == nil {
			return goja.Undefined()
		}
		return rt.ToValue(string(r.Body))
	case "bodyTruncated":
		return rt.ToValue(r.BodyTruncated)
	}
	return nil
}

func (v *requestView) Set(string, goja.Value) bool { return false }
func (v *requestView) Has(key string) bool {
	for _, k := range requestKeys {
		if k == key {
			return v.req != nil
		}
	}
	return false
}
func (v *requestView) Delete(string) bool { return false }
func (v *requestView) Keys() []string {
	if v.req == nil {
		return nil
	}
	return requestKeys
}

// jsString returns s as a JavaScript string. The label and header values a
// script reads are mostly the same from one call to the next (a client
// label, a User-Agent): a small cache of the last conversions, keyed by
// their content, lets a runtime reuse a conversion instead of allocating
// one per read. Like requestView.strs, an entry keeps its string until
// another takes its slot; strings longer than maxCachedString are
// converted each time.
func (st *vmState) jsString(s string) goja.Value {
	n := len(s)
	if n == 0 || n > maxCachedString {
		return st.rt.ToValue(s)
	}
	i := (n + int(s[0])*7 + int(s[n-1])*31 + int(s[n/2])*131) % strCacheSlots
	c := &st.strCache[i]
	if c.js != nil && c.s == s {
		return c.js
	}
	c.s, c.js = s, st.rt.ToValue(s)
	return c.js
}

// The bounds of vmState.strCache.
const (
	strCacheSlots   = 16
	maxCachedString = 256
)

// cachedString is an entry of vmState.strCache.
type cachedString struct {
	s  string
	js goja.Value
}

// lookupHeader finds a field without allocating when the name is already
// canonical, as most names scripts write are, or was seen before on this
// runtime (st.canon).
func (st *vmState) lookupHeader(h sdk.Header, name string) []string {
	if vs, ok := h[name]; ok {
		return vs
	}
	c, ok := st.canon[name]
	if !ok {
		c = textproto.CanonicalMIMEHeaderKey(name)
		if c == name {
			return nil
		}
		// The names a script asks for are a few literals: the cache is
		// bounded all the same, against a script that makes up names.
		if len(st.canon) < maxCanonCache {
			if st.canon == nil {
				st.canon = map[string]string{}
			}
			st.canon[name] = c
		}
	}
	return h[c]
}

// maxCanonCache bounds the header names a runtime remembers the canonical
// form of.
const maxCanonCache = 64

// headerView is a case-insensitive, read-only object over a Header: each
// field's values joined by ", " (Cookie by "; ").
type headerView struct {
	st *vmState
	h  func() sdk.Header
}

func joinValues(name string, vs []string) string {
	if len(vs) == 1 {
		return vs[0]
	}
	if strings.EqualFold(name, "cookie") {
		return strings.Join(vs, "; ")
	}
	return strings.Join(vs, ", ")
}

func (v *headerView) Get(key string) goja.Value {
	vs := v.st.lookupHeader(v.h(), key)
	if vs == nil {
		return nil
	}
	return v.st.jsString(joinValues(key, vs))
}
func (v *headerView) Set(string, goja.Value) bool { return false }
func (v *headerView) Has(key string) bool         { return v.st.lookupHeader(v.h(), key) != nil }
func (v *headerView) Delete(string) bool          { return false }
func (v *headerView) Keys() []string {
	h := v.h()
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// mapView is a read-only object over a map of strings (labels).
type mapView struct {
	st *vmState
	m  func() map[string]string
}

func (v *mapView) Get(key string) goja.Value {
	s, ok := v.m()[key]
	if !ok {
		return nil
	}
	return v.st.jsString(s)
}
func (v *mapView) Set(string, goja.Value) bool { return false }
func (v *mapView) Has(key string) bool         { _, ok := v.m()[key]; return ok }
func (v *mapView) Delete(string) bool          { return false }
func (v *mapView) Keys() []string {
	m := v.m()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

var tlsKeys = []string{"version", "serverName", "cipherSuite", "alpn", "peerSubject"}

// tlsView is the request's TLS facts.
type tlsView struct{ v *requestView }

func (t *tlsView) Get(key string) goja.Value {
	r := t.v.req
	if r == nil || r.TLS == nil {
		return nil
	}
	rt := t.v.st.rt
	switch key {
	case "version":
		return rt.ToValue(r.TLS.Version)
	case "serverName":
		return rt.ToValue(r.TLS.ServerName)
	case "cipherSuite":
		return rt.ToValue(r.TLS.CipherSuite)
	case "alpn":
		return rt.ToValue(r.TLS.ALPN)
	case "peerSubject":
		return rt.ToValue(r.TLS.PeerSubject)
	}
	return nil
}
func (t *tlsView) Set(string, goja.Value) bool { return false }
func (t *tlsView) Has(key string) bool         { return t.Get(key) != nil }
func (t *tlsView) Delete(string) bool          { return false }
func (t *tlsView) Keys() []string              { return tlsKeys }

var responseKeys = []string{"status", "headers", "header", "headerValues"}

// responseView is the JavaScript response object of the respond phase.
type responseView struct {
	st   *vmState
	resp *sdk.Response
}

func (v *responseView) Get(key string) goja.Value {
	if v.resp == nil {
		return nil
	}
	switch key {
	case "status":
		return v.st.rt.ToValue(v.resp.Status)
	case "headers":
		return v.st.respHeadersObj
	case "header":
		return v.st.respHeaderFn
	case "headerValues":
		return v.st.respHeaderValuesFn
	}
	return nil
}
func (v *responseView) Set(string, goja.Value) bool { return false }
func (v *responseView) Has(key string) bool         { return v.Get(key) != nil }
func (v *responseView) Delete(string) bool          { return false }
func (v *responseView) Keys() []string              { return responseKeys }

var observationKeys = []string{"request", "status", "outcome", "totalMs", "overheadMs", "passport"}

// observationView is the JavaScript object of the observe phase.
type observationView struct {
	st  *vmState
	obs *sdk.Observation
}

func (v *observationView) Get(key string) goja.Value {
	o := v.obs
	if o == nil {
		return nil
	}
	rt := v.st.rt
	switch key {
	case "request":
		if o.Request == nil {
			return goja.Null()
		}
		return v.st.reqObj
	case "status":
		return rt.ToValue(o.Status)
	case "outcome":
		return rt.ToValue(o.Outcome)
	case "totalMs":
		return rt.ToValue(float64(o.Total) / 1e6)
	case "overheadMs":
		return rt.ToValue(float64(o.Overhead) / 1e6)
	case "passport":
		return rt.ToValue(o.Passport)
	}
	return nil
}
func (v *observationView) Set(string, goja.Value) bool { return false }
func (v *observationView) Has(key string) bool         { return v.Get(key) != nil }
func (v *observationView) Delete(string) bool          { return false }
func (v *observationView) Keys() []string              { return observationKeys }

// installViews creates the per-runtime view objects.
func (st *vmState) installViews() {
	rt := st.rt
	st.req = &requestView{st: st}
	st.reqObj = rt.NewDynamicObject(st.req)
	reqHeader := func() sdk.Header {
		if st.req.req == nil {
			return nil
		}
		return st.req.req.Header
	}
	st.headersObj = rt.NewDynamicObject(&headerView{st: st, h: reqHeader})
	st.headerFn = rt.ToValue(st.headerGetter(reqHeader))
	st.headerValuesFn = rt.ToValue(st.headerValuesGetter(reqHeader))
	st.labelsObj = rt.NewDynamicObject(&mapView{st: st, m: func() map[string]string {
		if st.req.req == nil {
			return nil
		}
		return st.req.req.Labels
	}})
	st.tlsObj = rt.NewDynamicObject(&tlsView{v: st.req})

	st.resp = &responseView{st: st}
	st.respObj = rt.NewDynamicObject(st.resp)
	respHeader := func() sdk.Header {
		if st.resp.resp == nil {
			return nil
		}
		return st.resp.resp.Header
	}
	st.respHeadersObj = rt.NewDynamicObject(&headerView{st: st, h: respHeader})
	st.respHeaderFn = rt.ToValue(st.headerGetter(respHeader))
	st.respHeaderValuesFn = rt.ToValue(st.headerValuesGetter(respHeader))

	st.obs = &observationView{st: st}
	st.obsObj = rt.NewDynamicObject(st.obs)

	st.reqArgs = []goja.Value{st.reqObj}
	st.respArgs = []goja.Value{st.reqObj, st.respObj}
	st.obsArgs = []goja.Value{st.obsObj}
}

// headerGetter returns header(name): the field's first value, or undefined.
func (st *vmState) headerGetter(h func() sdk.Header) func(goja.FunctionCall) goja.Value {
	return func(c goja.FunctionCall) goja.Value {
		vs := st.lookupHeader(h(), c.Argument(0).String())
		if len(vs) == 0 {
			return goja.Undefined()
		}
		return st.jsString(vs[0])
	}
}

// headerValuesGetter returns headerValues(name): every value, maybe [].
func (st *vmState) headerValuesGetter(h func() sdk.Header) func(goja.FunctionCall) goja.Value {
	return func(c goja.FunctionCall) goja.Value {
		vs := st.lookupHeader(h(), c.Argument(0).String())
		out := make([]any, len(vs))
		for i, s := range vs {
			out[i] = s
		}
		return st.rt.NewArray(out...)
	}
}
