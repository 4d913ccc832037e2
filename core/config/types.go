package config

import "time"

// Config is the whole gateway configuration. Every bound has a finite
// default (see Default); a bound that is present in a file but zero, negative
// or empty is an error, reported with its file, line and key path.
type Config struct {
	// Listeners are the public listeners. At least one is required.
	Listeners []Listener `yaml:"listeners"`
	// Admin is the admin listener (health, readiness, metrics, passports).
	Admin Admin `yaml:"admin"`
	// Logging configures the process log and the access log.
	Logging Logging `yaml:"logging"`
	// Limits are the global bounds. Services and routes start from these and
	// may override the groups that apply to them.
	Limits Limits `yaml:"limits"`
	// Services are the upstream services requests are routed to.
	Services []Service `yaml:"services"`
	// Routes map requests to services, first match wins in file order.
	Routes []Route `yaml:"routes"`
	// Scripts are JavaScript hooks, by name; bindings refer to them.
	Scripts []Script `yaml:"scripts"`
	// Hooks are hook bindings that run on every route, before the route's own.
	Hooks []HookBinding `yaml:"hooks"`

	// Source is the file the configuration was read from ("" when built in Go).
	Source string `yaml:"-"`

	// pos maps key paths to their place in Source (see Pos); nil when built in Go.
	pos map[string]position
}

// Listener is one public socket.
type Listener struct {
	// Name identifies the listener in logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Address is host:port to bind, for example "127.0.0.1:8080". Required, unique.
	Address string `yaml:"address"`
	// TLS, when set, serves HTTPS with HTTP/2 negotiated by ALPN.
	TLS *TLS `yaml:"tls"`
	// H2C serves cleartext HTTP/2 (prior knowledge) beside HTTP/1.1. Default false.
	H2C bool `yaml:"h2c"`
	// TrustForwarded appends to an incoming X-Forwarded-For and keeps incoming
	// X-Forwarded-Proto/-Host instead of replacing them. Only for listeners
	// behind a trusted proxy. Default false.
	TrustForwarded bool `yaml:"trust_forwarded"`
}

// TLS names a certificate and key in PEM files.
type TLS struct {
	// Cert is the path of the PEM certificate chain. Required with tls.
	Cert string `yaml:"cert"`
	// Key is the path of the PEM private key. Required with tls.
	Key string `yaml:"key"`
}

// Admin is the admin listener.
type Admin struct {
	// Address is host:port of the admin listener. Default "127.0.0.1:9901".
	// A non-loopback address requires Token.
	Address string `yaml:"address"`
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// mutating endpoints (and on all endpoints off loopback). Redacted in /admin/config.
	Token string `yaml:"token"`
}

// Logging configures logs.
type Logging struct {
	// Level is one of debug, info, warn, error. Default "info".
	Level string `yaml:"level"`
	// Format is "json" (default) or "console".
	Format string `yaml:"format"`
	// AccessLog writes one line per request. Default true.
	AccessLog bool `yaml:"access_log"`
}

// Limits groups every bound. Zero is never "unlimited".
type Limits struct {
	// Server bounds the inbound side of every listener.
	Server ServerLimits `yaml:"server"`
	// Request bounds each request; routes may override.
	Request RequestLimits `yaml:"request"`
	// Upstream bounds connections and exchanges with endpoints; services may override.
	Upstream UpstreamLimits `yaml:"upstream"`
}

// ServerLimits bound the inbound HTTP server.
type ServerLimits struct {
	// HeaderTimeout is the time a client has to send a request's headers,
	// from its first byte. Default 10s. At the bound the connection is closed
	// (outcome header_timeout).
	HeaderTimeout Duration `yaml:"header_timeout"`
	// MaxHeaderBytes is the largest request head accepted. Default 64KiB. Over
	// it the client gets 431 (outcome header_too_large).
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// IdleTimeout closes a keep-alive connection with no request for this long. Default 90s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxConnections is the most open client connections per listener. Default 10000.
	// At the bound new connections wait in the kernel's accept backlog.
	MaxConnections int `yaml:"max_connections"`
	// MaxRequests is the most requests in flight in the whole gateway. Default 4096.
	// Over it a request gets 503 (outcome overloaded).
	MaxRequests int `yaml:"max_requests"`
	// DrainTimeout is how long shutdown (and a listener being replaced) waits
	// for requests in flight before closing connections. Default 30s.
	DrainTimeout Duration `yaml:"drain_timeout"`
}

// RequestLimits bound one request end to end.
type RequestLimits struct {
	// Deadline is the total time a request may take, shared by every step.
	// Default 30s. At the bound: 504 (outcome deadline_exceeded) if nothing was sent yet.
	Deadline Duration `yaml:"deadline"`
	// MaxBodyBytes is the largest request body. Default 8MiB. Over it: 413
	// (outcome body_too_large), before the endpoint has read it all.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// BodyMinRate is the slowest a client may upload, measured after
	// BodyRateGrace. Default 1KiB/s. Slower: 408 (outcome body_too_slow).
	BodyMinRate Rate `yaml:"body_min_rate"`
	// BodyRateGrace is how long a body transfer may stall (no byte at all)
	// before the minimum rate applies. Default 5s.
	BodyRateGrace Duration `yaml:"body_rate_grace"`
	// ClientMinRate is the slowest a client may read the response, after
	// BodyRateGrace. Default 1KiB/s. Slower: the response is cut (outcome client_too_slow).
	ClientMinRate Rate `yaml:"client_min_rate"`
	// UpgradeIdleTimeout closes an upgraded connection (WebSocket) idle this long. Default 5m.
	UpgradeIdleTimeout Duration `yaml:"upgrade_idle_timeout"`
}

// UpstreamLimits bound the exchange with endpoints.
type UpstreamLimits struct {
	// ConnectTimeout bounds dialing an endpoint (and the TLS handshake). Default 2s.
	// At the bound: 504 (outcome connect_timeout).
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// HeaderTimeout bounds the wait for response headers after the request
	// headers were sent; capped by the time left in the request. Default 15s.
	// At the bound: 504 (outcome upstream_header_timeout).
	HeaderTimeout Duration `yaml:"header_timeout"`
	// MaxConnsPerEndpoint is the most connections to one endpoint. Default 512.
	// At the bound Acquire waits for a free one, within ConnectTimeout.
	MaxConnsPerEndpoint int `yaml:"max_conns_per_endpoint"`
	// MaxIdlePerEndpoint is the most idle keep-alive connections kept per endpoint,
	// at most MaxConnsPerEndpoint. Default 128.
	MaxIdlePerEndpoint int `yaml:"max_idle_per_endpoint"`
	// IdleTimeout closes a pooled connection unused this long. Default 60s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes is the largest response head accepted from an endpoint.
	// Default 1MiB. Over it the response is refused (outcome upstream_malformed, 502).
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// MaxResponseBytes is the largest response body passed on. Default 1GiB.
	// Over it the response is cut (outcome upstream_body_too_large).
	MaxResponseBytes Size `yaml:"max_response_bytes"`
	// BodyMinRate is the slowest an endpoint may send its response body, after
	// the grace. Default 1KiB/s. Slower: cut (outcome upstream_too_slow).
	BodyMinRate Rate `yaml:"body_min_rate"`
	// BodyRateGrace is how long a response body may stall before the minimum rate applies. Default 10s.
	BodyRateGrace Duration `yaml:"body_rate_grace"`
}

// Service is a named group of endpoints.
type Service struct {
	// Name identifies the service in routes, logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Endpoints are host:port addresses. At least one.
	Endpoints []string `yaml:"endpoints"`
	// Balancer picks an endpoint per request, by name: p2c_ewma (default:
	// two random choices on peak-EWMA latency × in-flight), least_in_flight
	// (with a failure-rate EWMA) or round_robin (smooth weighted).
	Balancer string `yaml:"balancer"`
	// SlowStart ramps an endpoint added by a reload from 10% to its full
	// share over this time. Absent: off.
	SlowStart *Duration `yaml:"slow_start"`
	// Balancing tunes the balancers' moving averages.
	Balancing Balancing `yaml:"balancing"`
	// Outlier configures passive outlier ejection (on by default).
	Outlier Outlier `yaml:"outlier"`
	// HealthCheck configures active health checks (off by default).
	HealthCheck HealthCheck `yaml:"health_check"`
	// Protocol towards the endpoints: "http1" (default, the gateway's own pool),
	// "h2c" (cleartext HTTP/2) or "h2" (HTTP/2 over TLS).
	Protocol string `yaml:"protocol"`
	// TLS dials endpoints over TLS (with http1). Default false.
	TLS bool `yaml:"tls"`
	// Limits override the global upstream limits for this service.
	Limits ServiceLimits `yaml:"limits"`
	// Retry bounds retries to this service's endpoints.
	Retry Retry `yaml:"retry"`
}

// Retry bounds retries. A failed attempt is retried only when it is safe
// (the request provably did not reach the endpoint, or the method is
// idempotent and no response byte reached the client), within the time left
// and within the budget.
type Retry struct {
	// MaxAttempts is the most attempts per request, the first included; 1
	// turns retries off. Default 3.
	MaxAttempts int `yaml:"max_attempts"`
	// BudgetPercent is how many retries the service may see per 100
	// requests over the window. Default 20. Beyond it, failures are not retried.
	BudgetPercent int `yaml:"budget_percent"`
	// MinPerSecond is the floor of retries allowed per second of the window,
	// whatever the request rate. Default 3.
	MinPerSecond int `yaml:"min_per_second"`
	// Window is the sliding window of the budget. Default 10s.
	Window Duration `yaml:"window"`
	// BackoffBase is the ceiling of the first retry's jittered wait; it
	// doubles per retry up to BackoffMax. Default 10ms.
	BackoffBase Duration `yaml:"backoff_base"`
	// BackoffMax caps the jittered wait between attempts. Default 250ms.
	BackoffMax Duration `yaml:"backoff_max"`
	// ReplayBodyBytes is the largest request body kept to replay on a retry;
	// a request with a larger body is not retried once its body was read.
	// Default 64KiB.
	ReplayBodyBytes Size `yaml:"replay_body_bytes"`
	// MinAttemptTime is the least time left in the request for an attempt to
	// start; with less, the request fails at once (outcome
	// deadline_too_short, 504). Default 5ms.
	MinAttemptTime Duration `yaml:"min_attempt_time"`
}

// Balancing tunes the balancers' moving averages.
type Balancing struct {
	// LatencyTau is the time constant of each endpoint's peak-EWMA latency. Default 10s.
	LatencyTau Duration `yaml:"latency_tau"`
	// FailureTau is the time constant of each endpoint's failure rate. Default 60s.
	FailureTau Duration `yaml:"failure_tau"`
	// FailurePenalty is the least latency a failed attempt counts as, so a
	// fast-failing endpoint does not look fast. Default 1s.
	FailurePenalty Duration `yaml:"failure_penalty"`
	// ProbeInterval (least_in_flight): an idle endpoint not picked for this
	// long gets the next request, so that its recovery is noticed. Default 1s.
	ProbeInterval Duration `yaml:"probe_interval"`
	// Choices (p2c_ewma) is how many random endpoints each pick compares,
	// 2..8. Default 2. With k of n endpoints slow, two choices draw only
	// slow ones k(k-1)/n(n-1) of the time (1 in 10 with 2 of 5); three
	// shun a slow minority of a small service better, at the cost of more
	// herding onto the cheapest endpoints.
	Choices int `yaml:"choices"`
}

// Outlier configures passive outlier ejection: an endpoint whose attempts
// fail is taken out for a jittered, doubling time, then sent one probe;
// never more than MaxEjectedPercent of the endpoints, never the last one.
type Outlier struct {
	// Enabled turns ejection on. Default true.
	Enabled bool `yaml:"enabled"`
	// ConsecutiveFailures ejects after this many failed attempts in a row. Default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// MinSuccessPercent ejects an endpoint whose success rate over the
	// window falls below it (1..100). Default 50.
	MinSuccessPercent int `yaml:"min_success_percent"`
	// MinRequests is the least number of attempts the success rate is judged on. Default 20.
	MinRequests int `yaml:"min_requests"`
	// Window is the success-rate window. Default 10s.
	Window Duration `yaml:"window"`
	// BaseEjection is the first ejection's length; each further one doubles it. Default 10s.
	BaseEjection Duration `yaml:"base_ejection"`
	// MaxEjection caps an ejection's length. Default 5m.
	MaxEjection Duration `yaml:"max_ejection"`
	// JitterPercent is the share of an ejection removed at random (1..99). Default 25.
	JitterPercent int `yaml:"jitter_percent"`
	// MaxEjectedPercent is the most endpoints ejected at once (1..100). Default 50.
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
	// ProbeTimeout is how long a returning endpoint's probe may go
	// unanswered before another request may probe it. Default 30s.
	ProbeTimeout Duration `yaml:"probe_timeout"`
}

// HealthCheck configures active health checks: GET Path on every endpoint
// every Interval; an endpoint that fails Unhealthy checks in a row is
// skipped until it passes Healthy in a row (when all are down, all are used).
type HealthCheck struct {
	// Enabled turns active checks on. Default false.
	Enabled bool `yaml:"enabled"`
	// Path is checked with GET; a 2xx passes. Default "/healthz".
	Path string `yaml:"path"`
	// Interval is the time between checks of an endpoint. Default 5s.
	Interval Duration `yaml:"interval"`
	// Timeout bounds one check. Default 1s.
	Timeout Duration `yaml:"timeout"`
	// Healthy is the number of passing checks in a row that mark an endpoint up. Default 2.
	Healthy int `yaml:"healthy"`
	// Unhealthy is the number of failing checks in a row that mark it down. Default 3.
	Unhealthy int `yaml:"unhealthy"`
}

// ServiceLimits are the bounds a service may override.
type ServiceLimits struct {
	// Upstream starts as the global limits.upstream.
	Upstream UpstreamLimits `yaml:"upstream"`
}

// Route maps matching requests to a service.
type Route struct {
	// Name identifies the route in logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Match selects requests. An empty match matches everything.
	Match Match `yaml:"match"`
	// Service is the name of a configured service. Required.
	Service string `yaml:"service"`
	// StripPrefix removes Match.PathPrefix from the path sent upstream. Default false.
	StripPrefix bool `yaml:"strip_prefix"`
	// Limits override the global request limits for this route.
	Limits RouteLimits `yaml:"limits"`
	// Hooks are this route's hook bindings, run after the global ones.
	Hooks []HookBinding `yaml:"hooks"`
}

// Script is a JavaScript hook: a file defining any of the phase functions,
// or a directory bundle with an index.js (see package scripts).
type Script struct {
	// Name identifies the script in bindings, logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// File is the script file or bundle directory. Required. It is watched:
	// a changed version is compiled and checked before it serves.
	File string `yaml:"file"`
	// Config is passed to the script, read-only, as gatehouse.config.
	Config map[string]any `yaml:"config"`
	// Runtimes bounds the JavaScript runtimes kept per script version. Default 8.
	Runtimes int `yaml:"runtimes"`
}

// HookBinding binds a hook to a route (or to every route) with its bounds.
// Exactly one of Script and Go names the hook.
type HookBinding struct {
	// Script names a configured script.
	Script string `yaml:"script"`
	// Go names a compiled-in Go hook (require_header, response_headers).
	Go string `yaml:"go"`
	// Config configures a compiled-in Go hook.
	Config map[string]any `yaml:"config"`
	// Phases restricts the phases the hook runs in (validate, shape, route,
	// respond, observe). Empty: every phase the hook implements.
	Phases []string `yaml:"phases"`
	// Budget bounds each call; the request's time left bounds it further.
	// Default 10ms. At the bound the call fails (timeout) and OnFailure applies.
	Budget Duration `yaml:"budget"`
	// MaxConcurrent bounds calls in flight. Default 256. Over it a call fails
	// (overloaded) and OnFailure applies.
	MaxConcurrent int `yaml:"max_concurrent"`
	// OnFailure is "closed" (default: answer FailureStatus) or "open" (go on
	// as if the hook had no opinion) when the hook errors, panics, overruns,
	// is overloaded or returns an invalid decision.
	OnFailure string `yaml:"on_failure"`
	// FailureStatus is the status of a closed failure, 400..599. Default 503.
	FailureStatus int `yaml:"failure_status"`
	// BodyBytes is how much of the request body the hook sees; absent or 0:
	// none. The body is read up to this bound before the hook runs.
	BodyBytes Size `yaml:"body_bytes"`
	// AllowHost lets the hook's route decisions rewrite the Host header. Default false.
	AllowHost bool `yaml:"allow_host"`
}

// Match selects requests for a route; all given conditions must hold.
type Match struct {
	// Host matches the request host without port, exactly, or "*.example.com"
	// for any subdomain. Empty: any host.
	Host string `yaml:"host"`
	// PathPrefix matches paths that start with it at a segment boundary
	// ("/api" matches "/api" and "/api/x", not "/apix"). Default "/".
	PathPrefix string `yaml:"path_prefix"`
	// Methods lists allowed methods. Empty: any method.
	Methods []string `yaml:"methods"`
}

// RouteLimits are the bounds a route may override.
type RouteLimits struct {
	// Request starts as the global limits.request.
	Request RequestLimits `yaml:"request"`
}

// Duration is a time bound written as a Go duration string ("250ms", "2s",
// "1m30s"). As a bound it must be positive.
type Duration time.Duration

// Size is a byte count written as an integer ("512") or a number with a unit:
// B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), as in
// "64KiB", "1.5MiB" or "10KB". As a bound it must be positive.
type Size int64

// Rate is a byte rate written as a size per second ("1KiB/s", "100000/s"). As
// a bound it must be positive.
type Rate int64
