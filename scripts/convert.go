package scripts

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/dop251/goja"
	"github.com/gatehouse/gatehouse/sdk"
)

// Converting a decision checks types only: a field of the wrong type, an
// unknown field (a typo like "stauts"), a non-integer status or an unknown
// priority name is an error of the call. Value rules (status in 400..599,
// reserved header names, known services, a timeout that only tightens) are
// the core's: such a decision is returned as it is and the core rejects it.

// Bounds of the maps of a decision (labels, setHeader, reject.header).
const (
	maxDecisionEntries = 64
	maxDecisionKey     = 256
	maxDecisionValue   = 8192
)

// convError is the panic value of a failed conversion.
type convError struct{ msg string }

func convFail(format string, args ...any) { panic(&convError{msg: fmt.Sprintf(format, args...)}) }

var promiseType = reflect.TypeOf((*goja.Promise)(nil))

// absent reports whether v means "no value" (undefined or null).
func absent(v goja.Value) bool { return v == nil || goja.IsUndefined(v) || goja.IsNull(v) }

func isBool(v goja.Value) bool {
	_, ok := v.Export().(bool)
	return ok
}

func kind(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	}
	if o, ok := v.(*goja.Object); ok {
		if _, fn := goja.AssertFunction(o); fn {
			return "a function"
		}
		switch o.ClassName() {
		case "Array":
			return "an array"
		case "Promise":
			return "a Promise"
		}
		return "an object"
	}
	switch v.ExportType().Kind().String() {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int64", "float64":
		return "a number"
	}
	return v.String()
}

// The fields each decision allows, in the order they are converted (an
// error names the first bad one in this order).
var (
	validateFields = []string{"reject", "labels"}
	shapeFields    = []string{"reject", "priority", "rateKey", "cost", "labels"}
	routeFields    = []string{"service", "path", "setHeader", "removeHeader", "timeoutMs", "labels"}
	respondFields  = []string{"setHeader", "removeHeader"}
	rejectFields   = []string{"status", "header", "body"}
)

// decisionObject returns the returned value as an object with only the
// allowed keys, or nil for undefined/null.
func decisionObject(v goja.Value, what string, allowed []string) *goja.Object {
	if absent(v) {
		return nil
	}
	o, ok := v.(*goja.Object)
	if ok && o.ExportType() == promiseType {
		convFail("%s is a Promise: phase functions must be synchronous (no async)", what)
	}
	var class string
	if ok {
		class = o.ClassName()
	}
	if !ok || class == "Array" {
		if k := kind(v); k == "a Promise" {
			convFail("%s is a Promise: phase functions must be synchronous (no async)", what)
		} else {
			convFail("%s is %s, want an object or undefined", what, k)
		}
	}
	if class == "Function" {
		convFail("%s is a function, want an object or undefined", what)
	}
	for _, k := range o.GetOwnPropertyNames() {
		if !slices.Contains(allowed, k) {
			convFail("%s has unknown field %q (allowed: %v)", what, k, allowed)
		}
	}
	return o
}

func getString(o *goja.Object, key, what string) string {
	v := o.Get(key)
	if absent(v) {
		return ""
	}
	if !goja.IsString(v) {
		convFail("%s.%s is %s, want a string", what, key, kind(v))
	}
	return v.String()
}

func getInt(o *goja.Object, key, what string) int {
	v := o.Get(key)
	if absent(v) {
		return 0
	}
	if !goja.IsNumber(v) {
		convFail("%s.%s is %s, want an integer", what, key, kind(v))
	}
	f := v.ToFloat()
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		convFail("%s.%s is %v, want an integer", what, key, f)
	}
	return clampInt(int64(f))
}

func clampInt(n int64) int {
	const lim = 1 << 31
	if n > lim {
		return lim
	}
	if n < -lim {
		return -lim
	}
	return int(n)
}

// getStringMap converts {name: value}: values may be strings, numbers or
// booleans (converted to their string form).
func getStringMap(o *goja.Object, key, what string) map[string]string {
	v := o.Get(key)
	if absent(v) {
		return nil
	}
	m, ok := v.(*goja.Object)
	if ok {
		if c := m.ClassName(); c == "Array" || c == "String" {
			ok = false
		}
	}
	if !ok {
		convFail("%s.%s is %s, want an object of strings", what, key, kind(v))
	}
	keys := m.GetOwnPropertyNames()
	if len(keys) > maxDecisionEntries {
		convFail("%s.%s has %d entries, more than %d", what, key, len(keys), maxDecisionEntries)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		e := m.Get(k)
		if goja.IsString(e) || goja.IsNumber(e) || isBool(e) {
			s := e.String()
			out[k] = s
			if len(k) > maxDecisionKey || len(s) > maxDecisionValue {
				convFail("%s.%s[%.40q...]: names are limited to %d bytes and values to %d bytes", what, key, k, maxDecisionKey, maxDecisionValue)
			}
		} else {
			convFail("%s.%s[%q] is %s, want a string", what, key, k, kind(e))
		}
	}
	return out
}

func getStringList(o *goja.Object, key, what string) []string {
	v := o.Get(key)
	if absent(v) {
		return nil
	}
	a, ok := v.(*goja.Object)
	if !ok || a.ClassName() != "Array" {
		convFail("%s.%s is %s, want an array of strings", what, key, kind(v))
	}
	n := a.Get("length").ToInteger()
	if n > 1024 {
		convFail("%s.%s has %d entries, more than 1024", what, key, n)
	}
	out := make([]string, 0, n)
	for i := int64(0); i < n; i++ {
		e := a.Get(strconv.FormatInt(i, 10))
		if !goja.IsString(e) {
			convFail("%s.%s[%d] is %s, want a string", what, key, i, kind(e))
		}
		out = append(out, e.String())
	}
	return out
}

func getReject(o *goja.Object, what string) *sdk.Reject {
	v := o.Get("reject")
	if absent(v) {
		return nil
	}
	w := what + ".reject"
	r := decisionObject(v, w, rejectFields)
	if r.Get("status") == nil || absent(r.Get("status")) {
		convFail("%s.status is missing", w)
	}
	return &sdk.Reject{Status: getInt(r, "status", w), Header: getStringMap(r, "header", w), Body: getString(r, "body", w)}
}

func (st *vmState) toValidate(v goja.Value) sdk.ValidateDecision {
	const what = "validate result"
	o := decisionObject(v, what, validateFields)
	if o == nil {
		return sdk.ValidateDecision{}
	}
	return sdk.ValidateDecision{Reject: getReject(o, what), Labels: getStringMap(o, "labels", what)}
}

func (st *vmState) toShape(v goja.Value) sdk.ShapeDecision {
	const what = "shape result"
	o := decisionObject(v, what, shapeFields)
	if o == nil {
		return sdk.ShapeDecision{}
	}
	d := sdk.ShapeDecision{
		Reject:  getReject(o, what),
		RateKey: getString(o, "rateKey", what),
		Cost:    getInt(o, "cost", what),
		Labels:  getStringMap(o, "labels", what),
	}
	if p := getString(o, "priority", what); p != "" {
		prio, err := sdk.ParsePriority(p)
		if err != nil {
			convFail("%s.priority %q is not a tier (bulk, degraded, default, critical)", what, p)
		}
		d.Priority = prio
	}
	return d
}

func (st *vmState) toRoute(v goja.Value) sdk.RouteDecision {
	const what = "route result"
	o := decisionObject(v, what, routeFields)
	if o == nil {
		return sdk.RouteDecision{}
	}
	d := sdk.RouteDecision{
		Service:      getString(o, "service", what),
		Path:         getString(o, "path", what),
		SetHeader:    getStringMap(o, "setHeader", what),
		RemoveHeader: getStringList(o, "removeHeader", what),
		Labels:       getStringMap(o, "labels", what),
	}
	if t := o.Get("timeoutMs"); !absent(t) {
		if !goja.IsNumber(t) {
			convFail("%s.timeoutMs is %s, want a number of milliseconds", what, kind(t))
		}
		ms := t.ToFloat()
		if math.IsNaN(ms) || ms < 0 || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
			convFail("%s.timeoutMs is %v, want a non-negative number of milliseconds", what, ms)
		}
		d.Timeout = time.Duration(ms * float64(time.Millisecond))
	}
	return d
}

func (st *vmState) toRespond(v goja.Value) sdk.RespondDecision {
	const what = "respond result"
	o := decisionObject(v, what, respondFields)
	if o == nil {
		return sdk.RespondDecision{}
	}
	return sdk.RespondDecision{SetHeader: getStringMap(o, "setHeader", what), RemoveHeader: getStringList(o, "removeHeader", what)}
}
