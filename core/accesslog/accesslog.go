// Package accesslog writes one structured line per finished request, derived
// from its passport: route, service, endpoint, status, outcome, bytes each
// way, total time, overhead and the passport itself; and, when hook calls
// failed during the request, "hook_failures": one object per failed call
// with its hook, version, phase, kind, the policy applied and the error
// (an open failure leaves the outcome success: the request went on).
package accesslog

import (
	"sync"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/proxy"
)

// Logger is a proxy.Observer that logs each request.
type Logger struct {
	log zerolog.Logger
}

// New returns an access logger writing to lg.
func New(lg zerolog.Logger) *Logger { return &Logger{log: lg} }

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Observe logs r.
func (l *Logger) Observe(r *proxy.Record) {
	p := r.Passport
	ev := l.log.Info()
	if r.Outcome != 0 {
		ev = l.log.Warn()
	}
	if !ev.Enabled() {
		return
	}
	bp := bufs.Get().(*[]byte)
	b := p.AppendText((*bp)[:0])
	ev.Str("kind", "access").
		Str("id", r.ID).
		Str("listener", r.Listener).
		Str("client", r.ClientIP).
		Str("method", r.Method).
		Str("host", r.Host).
		Str("path", r.Path).
		Str("route", r.Route).
		Str("service", r.Service).
		Str("endpoint", r.Endpoint).
		Int("status", r.Status).
		Str("outcome", r.Outcome.String()).
		Int64("bytes_in", r.BytesIn).
		Int64("bytes_out", r.BytesOut).
		Float64("total_ms", float64(p.Total().Microseconds())/1000).
		Float64("overhead_ms", float64(p.Overhead().Microseconds())/1000).
		Bytes("passport", b)
	if r.Err != "" {
		ev.Str("error", r.Err)
	}
	if len(r.HookFailures) > 0 {
		arr := zerolog.Arr()
		for _, f := range r.HookFailures {
			arr.Object(hookFailure{f})
		}
		ev.Array("hook_failures", arr)
		if n := r.HookFailureCount - len(r.HookFailures); n > 0 {
			ev.Int("hook_failures_unlisted", n)
		}
	}
	ev.Send()
	*bp = b
	bufs.Put(bp)
}

// hookFailure is one failed hook call in the access log line.
type hookFailure struct{ f *hook.Failure }

func (h hookFailure) MarshalZerologObject(e *zerolog.Event) {
	f := h.f
	e.Str("hook", f.Hook).Str("version", f.Version).Str("phase", f.Phase.String()).
		Str("kind", f.Kind.String()).Str("policy", f.Policy)
	if f.Err != nil {
		e.Str("error", f.Err.Error())
	}
}
