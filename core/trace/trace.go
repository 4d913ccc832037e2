// Package trace builds OpenTelemetry spans from finished requests'
// passports and exports them (OTLP over HTTP in production, any
// SpanExporter in tests). Nothing here runs inside a request: the proxy only
// starts the trace context (package traceparent) and tells the endpoint its
// parent; after the response, Observe copies a sampled request into a
// bounded queue, or drops and counts it when the queue is full, and one
// background worker turns it into a request span with a child span per hook
// call and per upstream attempt.
package trace

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/core/traceparent"
)

// Options configure a Tracer. Every bound is required.
type Options struct {
	// Exporter receives the spans. Required.
	Exporter sdktrace.SpanExporter
	// Queue is how many finished requests may wait to become spans; when
	// it is full, further ones are dropped and counted. Also the span
	// processor's queue (in spans) is 8 times this.
	Queue int
	// BatchSize is the most spans sent in one export.
	BatchSize int
	// ExportTimeout bounds one export call.
	ExportTimeout time.Duration
	// BatchDelay is the longest a span waits before its batch is sent.
	BatchDelay time.Duration
	// ServiceName and Version describe the gateway in every span's resource.
	ServiceName, Version string
	// Sync exports each request's spans as they are built instead of in
	// batches (tests use it with an in-memory exporter).
	Sync bool
}

// Tracer is the passport observer that turns sampled requests into spans.
type Tracer struct {
	q        chan *job
	jobs     sync.Pool
	tp       *sdktrace.TracerProvider
	tracer   oteltrace.Tracer
	dropped  atomic.Uint64
	built    atomic.Uint64
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

var _ proxy.Observer = (*Tracer)(nil)

// New starts a tracer and its worker.
func New(o Options) (*Tracer, error) {
	if o.Exporter == nil || o.Queue <= 0 || o.BatchSize <= 0 || o.ExportTimeout <= 0 || o.BatchDelay <= 0 {
		return nil, errors.New("trace: exporter, queue, batch size, export timeout and batch delay are required")
	}
	var sp sdktrace.SpanProcessor
	if o.Sync {
		sp = sdktrace.NewSimpleSpanProcessor(o.Exporter)
	} else {
		sp = sdktrace.NewBatchSpanProcessor(o.Exporter, sdktrace.WithMaxQueueSize(8*o.Queue),
			sdktrace.WithMaxExportBatchSize(o.BatchSize), sdktrace.WithExportTimeout(o.ExportTimeout),
			sdktrace.WithBatchTimeout(o.BatchDelay))
	}
	res := resource.NewSchemaless(attribute.String("service.name", o.ServiceName), attribute.String("service.version", o.Version))
	t := &Tracer{q: make(chan *job, o.Queue), stop: make(chan struct{}), done: make(chan struct{})}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(idGenerator{}), sdktrace.WithSpanProcessor(sp),
		sdktrace.WithSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: 4096, AttributeCountLimit: 32,
			EventCountLimit: 4 * passport.Capacity, LinkCountLimit: 0, AttributePerEventCountLimit: 4, AttributePerLinkCountLimit: 0}))
	t.tracer = t.tp.Tracer("github.com/gatehouse/gatehouse/core/trace")
	go t.run()
	return t, nil
}

// NewOTLP returns an OTLP/HTTP exporter sending to endpoint, a URL such as
// "http://collector:4318/v1/traces". Headers (for example an API key) come
// from the standard OTEL_EXPORTER_OTLP_HEADERS environment variable.
func NewOTLP(endpoint string, timeout time.Duration) (sdktrace.SpanExporter, error) {
	return otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(timeout))
}

// job is a sampled request copied out of its record.
type job struct {
	id, listener, method, host, path, clientIP, route, service, endpoint, err string
	status, proto, attempts                                                   int
	outcome                                                                   failure.Kind
	ctx                                                                       traceparent.Context
	start                                                                     time.Time
	stamps                                                                    []passport.Stamp
	flush                                                                     chan struct{} // a Flush marker, not a request
}

// Observe queues a sampled request for span building. It never blocks:
// when the queue is full the request is dropped and counted.
func (t *Tracer) Observe(r *proxy.Record) {
	if !r.Trace.Sampled || !r.Trace.On() {
		return
	}
	j, _ := t.jobs.Get().(*job)
	if j == nil {
		j = &job{stamps: make([]passport.Stamp, 0, passport.Capacity)}
	}
	p := r.Passport
	j.id, j.listener, j.method, j.host, j.path, j.clientIP = r.ID, r.Listener, r.Method, r.Host, r.Path, r.ClientIP
	j.route, j.service, j.endpoint, j.err = r.Route, r.Service, r.Endpoint, r.Err
	j.status, j.proto, j.attempts, j.outcome, j.ctx = r.Status, r.Proto, r.Attempts, r.Outcome, r.Trace
	j.start = p.Start()
	j.stamps = j.stamps[:0]
	for i := 0; i < p.Len(); i++ {
		j.stamps = append(j.stamps, p.At(i))
	}
	select {
	case t.q <- j:
	default:
		t.dropped.Add(1)
		t.jobs.Put(j)
	}
}

// Stats are the tracer's counters.
type Stats struct {
	// Built counts requests turned into spans; Dropped those lost to a full queue.
	Built, Dropped uint64
	// Queued is how many wait now; Capacity is the queue's bound.
	Queued, Capacity int
}

// Stats returns the counters.
func (t *Tracer) Stats() Stats {
	return Stats{Built: t.built.Load(), Dropped: t.dropped.Load(), Queued: len(t.q), Capacity: cap(t.q)}
}

func (t *Tracer) run() {
	defer close(t.done)
	for {
		select {
		case j := <-t.q:
			t.handle(j)
		case <-t.stop:
			for {
				select {
				case j := <-t.q:
					t.handle(j)
				default:
					return
				}
			}
		}
	}
}

func (t *Tracer) handle(j *job) {
	if j.flush != nil {
		close(j.flush)
		return
	}
	t.build(j)
	t.built.Add(1)
	j.stamps = j.stamps[:0]
	if cap(j.stamps) > 4*passport.Capacity {
		j.stamps = make([]passport.Stamp, 0, passport.Capacity)
	}
	t.jobs.Put(j)
}

// Flush waits until every request queued before it became spans, and the
// spans were handed to the exporter.
func (t *Tracer) Flush(ctx context.Context) error {
	mark := &job{flush: make(chan struct{})}
	select {
	case t.q <- mark:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-mark.flush:
	case <-ctx.Done():
		return ctx.Err()
	}
	return t.tp.ForceFlush(ctx)
}

// Shutdown builds what is queued, exports it and stops, within ctx.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.stopOnce.Do(func() { close(t.stop) })
	select {
	case <-t.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return t.tp.Shutdown(ctx)
}

// ids carries the span ids the proxy chose to the id generator.
type ids struct {
	trace oteltrace.TraceID
	span  oteltrace.SpanID
}

type idKey struct{}

// idGenerator hands out the ids the proxy chose for the request span (so
// the endpoint's spans, parented by traceparent, join it) and random ones
// for child spans.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (oteltrace.TraceID, oteltrace.SpanID) {
	if v, ok := ctx.Value(idKey{}).(*ids); ok {
		return v.trace, v.span
	}
	var tid oteltrace.TraceID
	put64(tid[:8], rand.Uint64())
	put64(tid[8:], rand.Uint64()|1)
	return tid, randomSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ oteltrace.TraceID) oteltrace.SpanID {
	if v, ok := ctx.Value(idKey{}).(*ids); ok {
		return v.span
	}
	return randomSpanID()
}

func randomSpanID() oteltrace.SpanID {
	var s oteltrace.SpanID
	put64(s[:], rand.Uint64()|1)
	return s
}

func put64(b []byte, x uint64) {
	for i := range b {
		b[i] = byte(x >> (56 - 8*i))
	}
}

// build turns one request into spans: the request span (kind server) with
// one event per state, a child per hook call (internal) and per upstream
// attempt (client), all timed by the passport.
func (t *Tracer) build(j *job) {
	ctx := context.Background()
	if j.ctx.Parent.IsValid() {
		ctx = oteltrace.ContextWithRemoteSpanContext(ctx, oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
			TraceID: oteltrace.TraceID(j.ctx.Trace), SpanID: oteltrace.SpanID(j.ctx.Parent),
			TraceFlags: oteltrace.FlagsSampled, Remote: true}))
	}
	at := func(d time.Duration) time.Time { return j.start.Add(d) }
	var total time.Duration
	if n := len(j.stamps); n > 0 {
		total = j.stamps[n-1].Offset
	}
	name := j.method
	if j.route != "" {
		name += " " + j.route
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", j.method),
		attribute.String("url.path", j.path),
		attribute.String("server.address", j.host),
		attribute.String("client.address", j.clientIP),
		attribute.Int("http.response.status_code", j.status),
		attribute.String("network.protocol.version", strconv.Itoa(j.proto)),
		attribute.String("gatehouse.listener", j.listener),
		attribute.String("gatehouse.route", j.route),
		attribute.String("gatehouse.service", j.service),
		attribute.String("gatehouse.outcome", j.outcome.String()),
		attribute.String("gatehouse.request_id", j.id),
		attribute.Int("gatehouse.attempts", j.attempts),
	}
	if j.endpoint != "" {
		attrs = append(attrs, attribute.String("gatehouse.endpoint", j.endpoint))
	}
	rctx := context.WithValue(ctx, idKey{}, &ids{trace: oteltrace.TraceID(j.ctx.Trace), span: oteltrace.SpanID(j.ctx.Span)})
	rctx, root := t.tracer.Start(rctx, name, oteltrace.WithSpanKind(oteltrace.SpanKindServer),
		oteltrace.WithTimestamp(j.start), oteltrace.WithAttributes(attrs...))
	for _, st := range j.stamps {
		if st.State == passport.HookEnter || st.State == passport.HookExit {
			continue
		}
		addEvent(root, st, at(st.Offset))
	}
	cctx := context.WithValue(rctx, idKey{}, nil) // children get random ids
	n := 0
	for _, s := range segments(j.stamps, false) {
		switch s.Kind {
		case HookCall:
			failed, wait := strings.CutSuffix(s.Note, "+wait")
			_, sp := t.tracer.Start(cctx, "hook "+s.Name, oteltrace.WithSpanKind(oteltrace.SpanKindInternal),
				oteltrace.WithTimestamp(at(s.Start)), oteltrace.WithAttributes(
					attribute.String("gatehouse.hook", s.Name), attribute.Bool("gatehouse.hook.out_of_process", wait)))
			if s.Failed {
				// "failed=KIND,policy=open|closed": the request may have
				// gone on (open), but this call failed.
				sp.SetStatus(codes.Error, failed)
				kind, policy, _ := strings.Cut(strings.TrimPrefix(failed, "failed="), ",policy=")
				sp.SetAttributes(attribute.String("gatehouse.hook.failure", kind), attribute.String("gatehouse.hook.policy", policy))
			}
			sp.End(oteltrace.WithTimestamp(at(s.End)))
		case Attempt:
			n++
			_, sp := t.tracer.Start(cctx, "attempt "+strconv.Itoa(n)+" "+s.Name, oteltrace.WithSpanKind(oteltrace.SpanKindClient),
				oteltrace.WithTimestamp(at(s.Start)), oteltrace.WithAttributes(
					attribute.String("server.address", s.Name), attribute.Int("gatehouse.attempt", n)))
			for _, e := range s.Events {
				addEvent(sp, e, at(e.Offset))
			}
			if s.Failed {
				sp.SetStatus(codes.Error, s.Note)
			}
			sp.End(oteltrace.WithTimestamp(at(s.End)))
		}
	}
	if j.outcome != failure.Success {
		msg := j.outcome.String()
		if j.err != "" {
			msg += ": " + j.err
		}
		root.SetStatus(codes.Error, msg)
	}
	root.End(oteltrace.WithTimestamp(at(total)))
}

// addEvent adds a stamp as an event of sp, with its note as an attribute
// when it has one (an empty attribute option still costs an allocation).
func addEvent(sp oteltrace.Span, st passport.Stamp, at time.Time) {
	if st.Note == "" {
		sp.AddEvent(st.State.String(), oteltrace.WithTimestamp(at))
		return
	}
	sp.AddEvent(st.State.String(), oteltrace.WithTimestamp(at), oteltrace.WithAttributes(attribute.String("note", st.Note)))
}
