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
	// Observe configures what is derived from finished requests' passports:
	// metrics, kept passports and traces.
	Observe Observe `yaml:"observe"`
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
	// Plugins are hook plugins, separate processes (see package plugins),
	// by name; bindings refer to them.
	Plugins []Plugin `yaml:"plugins"`
	// Hooks are hook bindings that run on every route, before the route's own.
	Hooks []HookBinding `yaml:"hooks"`
	// Redis is the server that holds shared rate limits.
	Redis Redis `yaml:"redis"`

	// Source is the file the configuration was read from ("" when built in Go).
	Source string `yaml:"-"`

	// pos maps key paths to their place in Source (see Pos); nil when built in Go.
	pos map[string]position
	// written maps the key paths of the file paths that were relative, and
	// were resolved by ParseIn, to their values as written.
	written map[string]string
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
	// X-Forwarded-Proto/-Host (and Forwarded, X-Real-IP) instead of replacing
	// or dropping them, and takes the client's address (for hooks, rate-limit
	// keys and logs) from the last X-Forwarded-For entry, the one the proxy
	// in front added. Only for listeners behind a trusted proxy. Default false.
	TrustForwarded bool `yaml:"trust_forwarded"`
	// KeepEscapedSlashes passes an encoded slash or backslash (%2F, %5C) in
	// a request path through unchanged, as part of its segment, for APIs
	// that carry them (a repository path in one segment). By default such a
	// path is refused (400): an endpoint that decodes them would act on
	// separators the routes did not see. Default false.
	KeepEscapedSlashes bool `yaml:"keep_escaped_slashes"`
}

// TLS names a certificate and key in PEM files.
type TLS struct {
	// Cert is the path of the PEM certificate chain. Required with tls. A
	// relative path is looked for in the configuration file's directory,
	// then in the working directory.
	Cert string `yaml:"cert"`
	// Key is the path of the PEM private key. Required with tls. A relative
	// path is looked for in the configuration file's directory, then in the
	// working directory.
	Key string `yaml:"key"`
}

// Admin is the admin listener.
type Admin struct {
	// Address is host:port of the admin listener. Default "127.0.0.1:9901".
	// A non-loopback address requires Token.
	Address string `yaml:"address"`
	// Token is the admin bearer token, sent as "Authorization: Bearer
	// <token>". Mutating endpoints (POST /admin/reload, POST
	// /admin/api/overhead/reset) require it and are
	// refused (403) while it is empty, even on loopback; off loopback every
	// endpoint but /healthz and /readyz requires it too. Default empty.
	// Redacted in /admin/config.
	Token string `yaml:"token"`
}

// Observe configures observability. Everything here is derived from
// passports after each request; none of it can delay one. Changes apply on
// restart only.
type Observe struct {
	// Metrics derives Prometheus metrics, the key numbers, the state-machine
	// graph and the kept passports (recent, slowest, failed, hook_failed) from every
	// request. Default true. When false, /metrics keeps only the process,
	// runtime, hook and endpoint collectors and the admin page shows no traffic.
	Metrics bool `yaml:"metrics"`
	// Passports is how many passports each of the recent, slowest, failed
	// and hook_failed rings keeps for /admin/passports. Default 256.
	Passports int `yaml:"passports"`
	// Tracing exports OpenTelemetry spans built from passports.
	Tracing Tracing `yaml:"tracing"`
}

// Tracing configures traces: W3C traceparent (and B3, accepted) is read
// from requests and sent to endpoints; sampled requests become a request
// span with a child per hook call and per upstream attempt, exported by
// OTLP over HTTP. Headers for the collector (an API key) come from the
// OTEL_EXPORTER_OTLP_HEADERS environment variable.
type Tracing struct {
	// Enabled turns tracing on. Default false: no header is read or sent.
	Enabled bool `yaml:"enabled"`
	// Endpoint is the OTLP/HTTP traces URL. Default "http://127.0.0.1:4318/v1/traces".
	Endpoint string `yaml:"endpoint"`
	// SamplePerMillion is how many of a million new traces are sampled
	// (10000 is 1%); a request that comes with a trace context follows its
	// caller's decision. Default 10000, at most 1000000.
	SamplePerMillion int `yaml:"sample_per_million"`
	// Queue is how many sampled requests may wait to become spans. Default
	// 2048. When full, further ones are dropped and counted
	// (gatehouse_trace_dropped_total); requests never wait for it.
	Queue int `yaml:"queue"`
	// BatchSize is the most spans sent in one export. Default 512.
	BatchSize int `yaml:"batch_size"`
	// ExportTimeout bounds one export to the collector. Default 10s.
	ExportTimeout Duration `yaml:"export_timeout"`
	// BatchDelay is the longest a span waits before its batch is sent. Default 5s.
	BatchDelay Duration `yaml:"batch_delay"`
	// ServiceName names the gateway in spans. Default "gatehouse".
	ServiceName string `yaml:"service_name"`
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
	// Admission is the service's adaptive concurrency limit and its queue
	// (off by default).
	Admission Admission `yaml:"admission"`
}

// Admission configures a service's adaptive concurrency limit (see package
// core/admission and docs/shaping.md): requests to the service beyond the
// limit wait in a bounded priority queue; the limit follows the latency the
// service shows (Vegas: it grows while latency stays near the lowest seen
// and shrinks when latency shows a queue at the service). A request that
// cannot be admitted in time is shed: 503 with Retry-After (outcome shed),
// lowest priority first. The global hard cap on all requests is
// limits.server.max_requests.
type Admission struct {
	// Enabled turns admission control on for the service. Default false.
	Enabled bool `yaml:"enabled"`
	// InitialLimit is the concurrency limit at start. Default 20.
	InitialLimit int `yaml:"initial_limit"`
	// MinLimit is the lowest the limit goes. Default 2.
	MinLimit int `yaml:"min_limit"`
	// MaxLimit is the hard cap on the service's requests in flight,
	// whatever the latency says. Default 1000.
	MaxLimit int `yaml:"max_limit"`
	// MaxQueue is the most requests waiting for the service. Default 256.
	// When full, a request evicts the oldest waiter of a lower tier, or is
	// shed (reason queue_full).
	MaxQueue int `yaml:"max_queue"`
	// QueueTimeout is the longest a request waits for a slot (within its
	// deadline) while the service is not overloaded. Default 1s. At the
	// bound it is shed (reason queue_timeout).
	QueueTimeout Duration `yaml:"queue_timeout"`
	// QueueTarget is the longest a request waits once the service is
	// overloaded (queue non-empty for QueueInterval); waiters past it are
	// shed (reason overload) and each tier is served newest first. Default
	// 20ms; set it near the service's own latency.
	QueueTarget Duration `yaml:"queue_target"`
	// QueueInterval is how long the queue must stay non-empty before the
	// service counts as overloaded. Default 100ms.
	QueueInterval Duration `yaml:"queue_interval"`
	// Window is the shortest window of latency samples the limit is
	// adjusted on. Default 100ms.
	Window Duration `yaml:"window"`
	// WindowSamples is the fewest samples a window needs (it also ends after
	// 10 × window with one sample). Default 10.
	WindowSamples int `yaml:"window_samples"`
	// BaseWindow is how long the lowest latency seen (the service's latency
	// without a queue) is remembered: one to two base windows. Default 30s.
	BaseWindow Duration `yaml:"base_window"`
	// RetryAfter is the Retry-After sent with a shed request's 503, rounded
	// up to whole seconds. Default 1s.
	RetryAfter Duration `yaml:"retry_after"`
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
	// MinPerSecond is the floor of retries allowed per second whatever the
	// request rate, used once budget_percent is spent: a token bucket that
	// refills at this many retries per second and holds at most this many,
	// so a quiet spell cannot be saved up into a burst. Default 3.
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
	// LatencyTau is the time constant of each endpoint's peak-EWMA latency. Default 2s:
	// how long a slow answer or a failure is remembered (see balance.Options).
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
	// MaxEjectedPercent is the most endpoints ejected at once (1..100), as
	// a share of the service's endpoints rounded down: with 3 endpoints, 50
	// allows one, 33 none. Whatever the share, the last endpoint in rotation
	// is never ejected. Default 50.
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
	// Priority is the tier of the route's requests when no shape hook sets
	// one: critical, default, degraded or bulk. Default "default". Admission
	// sheds the lowest tier first.
	Priority string `yaml:"priority"`
	// RateLimit limits the route's requests per key. Absent: no limit.
	RateLimit *RateLimit `yaml:"rate_limit"`
}

// RateLimit is a token bucket per key: each bucket holds at most Burst
// tokens and gains Rate tokens every Per; a request takes its cost (1, or
// what a shape hook says) or is refused with 429, Retry-After set to the
// time until it would fit (outcome rate_limited). The key is the shape
// hook's rate key, or Key's default.
type RateLimit struct {
	// Rate is the number of tokens added every Per. Required.
	Rate int `yaml:"rate"`
	// Per is the refill period. Default 1s.
	Per Duration `yaml:"per"`
	// Burst is a bucket's size: the most tokens taken at once. Default: Rate.
	Burst int `yaml:"burst"`
	// Key is the bucket of requests no shape hook keys: "client_ip" (one
	// bucket per client address, the default) or "route" (one for the route).
	Key string `yaml:"key"`
	// Shared keeps the buckets in Redis (see redis), common to every gateway
	// instance using it. While Redis is down or slower than redis.timeout,
	// each instance counts locally with the same rule. Default false.
	Shared bool `yaml:"shared"`
	// MaxKeys bounds the buckets kept in memory for the route; past it the
	// least recently used is dropped (its key starts again full). Default 100000.
	MaxKeys int `yaml:"max_keys"`
}

// Redis is the server that holds shared rate limits (routes[].rate_limit
// with shared: true). No request waits on it longer than Timeout: a call
// that fails or overruns switches every shared limit to local buckets
// (logged, and counted in gatehouse_ratelimit_redis_fallbacks_total) until a
// probe finds Redis answering again.
type Redis struct {
	// Address is host:port of the Redis server. Required when a route's
	// rate limit is shared.
	Address string `yaml:"address"`
	// Timeout bounds every Redis call, connecting included. Default 20ms.
	Timeout Duration `yaml:"timeout"`
	// ProbeInterval is the time between checks of a Redis found down. Default 1s.
	ProbeInterval Duration `yaml:"probe_interval"`
	// PoolSize is the most connections to Redis. Default 64.
	PoolSize int `yaml:"pool_size"`
	// KeyPrefix starts the key of every shared bucket; gateways that should
	// share limits use the same. Default "gatehouse:rl:".
	KeyPrefix string `yaml:"key_prefix"`
}

// Plugin is a hook plugin: a binary built with sdk/plugin.Serve, run as a
// process of its own and called over gRPC (see package plugins). The gateway
// does not start serving until every plugin is up; a plugin that fails to
// start fails the start, or refuses a reload while the old version keeps
// serving.
type Plugin struct {
	// Name identifies the plugin in bindings, logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Path is the plugin binary, an executable file. Required. A relative
	// path is looked for in the configuration file's directory, then in the
	// working directory. When watch is on, replacing it (rename a new file
	// over it) hot-reloads the plugin. The plugin runs from a private copy
	// made when its version starts, restarts included.
	Path string `yaml:"path"`
	// Args are the binary's arguments (without the program name).
	Args []string `yaml:"args"`
	// Env is the plugin's whole environment, as KEY=value entries: the
	// gateway's own environment is not passed on.
	Env []string `yaml:"env"`
	// Config is passed to the plugin at start, as JSON. At most one of config
	// and config_file.
	Config map[string]any `yaml:"config"`
	// ConfigFile is a file whose contents are passed to the plugin at start,
	// instead of config; with watch it is watched like the binary. A
	// relative path is looked for like path's.
	ConfigFile string `yaml:"config_file"`
	// StartTimeout bounds a start: process start, handshake, configuration
	// and the first health check. Default 10s. At the bound the process is
	// killed and the start fails.
	StartTimeout Duration `yaml:"start_timeout"`
	// Health configures the health pings of a running plugin.
	Health PluginHealth `yaml:"health"`
	// Restart configures restarts after a crash or a hang.
	Restart PluginRestart `yaml:"restart"`
	// DrainTimeout bounds how long a replaced version (reload, shutdown)
	// waits for its calls in flight before its process is stopped. Default
	// 10s. Calls still running then fail and their bindings' on_failure
	// applies.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// MaxConcurrent bounds the calls in flight to the plugin, across all its
	// bindings. Default 1024. Over it a call fails at once (overloaded).
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxMessageBytes bounds every gRPC message to and from the plugin; at
	// least 4KiB. Default 1MiB. A larger answer fails its call (too_large).
	MaxMessageBytes Size `yaml:"max_message_bytes"`
	// MaxBodyBytes bounds the request body sent to the plugin when a binding
	// asks for it (body_bytes); at most half of max_message_bytes. Default
	// 64KiB. A longer body is cut and marked truncated.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// Cache bounds the decisions the plugin marks cacheable.
	Cache PluginCache `yaml:"cache"`
	// Watch hot-reloads the plugin when its binary or config_file changes:
	// the new version must start and pass a health check before it serves;
	// one that fails is refused and the old one keeps serving. Without it a
	// change is picked up by the next configuration reload. Default true.
	Watch bool `yaml:"watch"`
	// Limits are optional OS bounds on the plugin process (Linux rlimits).
	Limits PluginLimits `yaml:"limits"`
}

// PluginHealth configures a plugin's health pings.
type PluginHealth struct {
	// Interval is the time between pings. Default 1s.
	Interval Duration `yaml:"interval"`
	// Timeout bounds one ping. Default 500ms. A ping over it fails.
	Timeout Duration `yaml:"timeout"`
	// Failures is how many pings in a row may fail before the plugin is
	// deemed hung, killed and restarted. Default 3.
	Failures int `yaml:"failures"`
}

// PluginRestart configures the restarts of a plugin that crashed or hung.
// While it is down, calls fail at once and the bindings' on_failure applies.
type PluginRestart struct {
	// BackoffMin is the wait before the first restart. Default 50ms.
	BackoffMin Duration `yaml:"backoff_min"`
	// BackoffMax caps the wait, which doubles with every failed restart; at
	// least backoff_min. Default 30s.
	BackoffMax Duration `yaml:"backoff_max"`
	// StableAfter is how long a process must run for the wait to start again
	// from backoff_min. Default 10s.
	StableAfter Duration `yaml:"stable_after"`
}

// PluginCache bounds a plugin's decision cache (decisions the plugin marks
// cacheable, for example an auth result per token).
type PluginCache struct {
	// MaxEntries bounds the cached decisions; absent: no caching. The least
	// recently used entry goes first.
	MaxEntries int `yaml:"max_entries"`
	// MaxTTL caps the time a decision is reused, whatever the plugin asks.
	// Default 1m.
	MaxTTL Duration `yaml:"max_ttl"`
}

// PluginLimits are optional OS bounds set on the plugin process with
// prlimit(2) right after it starts (Linux only). Absent: inherited.
type PluginLimits struct {
	// Memory bounds the process's virtual address space (RLIMIT_AS), not its
	// resident memory: a Go plugin reserves about 1.5GiB of address space
	// idle, so give it 3GiB or more. At the bound allocations fail; a Go
	// plugin dies and is restarted as after a crash.
	Memory Size `yaml:"memory"`
	// CPU bounds the CPU time the process may use over its whole life
	// (RLIMIT_CPU, whole seconds, rounded up). At the bound it is killed and
	// restarted: this stops a plugin that spins.
	CPU Duration `yaml:"cpu"`
	// OpenFiles bounds its open file descriptors (RLIMIT_NOFILE).
	OpenFiles int `yaml:"open_files"`
}

// Script is a JavaScript hook: a file defining any of the phase functions,
// or a directory bundle with an index.js (see package scripts).
type Script struct {
	// Name identifies the script in bindings, logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// File is the script file or bundle directory. Required. A relative
	// path is looked for in the configuration file's directory, then in the
	// working directory. It is watched: a changed version is compiled and
	// checked before it serves.
	File string `yaml:"file"`
	// Config is passed to the script, read-only, as gatehouse.config.
	Config map[string]any `yaml:"config"`
	// Runtimes bounds the JavaScript runtimes kept per script version. Default 8.
	Runtimes int `yaml:"runtimes"`
	// MaxCallMemory bounds how much the heap may grow while one call with
	// more than 10ms to its deadline, or a runtime's top-level code, runs.
	// Beyond it the call fails (a hook failure of kind error) and its
	// runtime is discarded, which frees what it kept. The heap is the
	// process's, sampled every 5ms: other requests' allocations
	// during the call count too. Shorter calls are bounded by their budget.
	// Default 64MiB.
	MaxCallMemory Size `yaml:"max_call_memory"`
	// MaxRuntimeCalls is how many calls a runtime serves before it is
	// replaced by a new one (made first, in the background), which drops
	// what the script kept in it between calls: a module variable that grows
	// on every call, a cache without a bound. Default 10000.
	MaxRuntimeCalls int `yaml:"max_runtime_calls"`
}

// HookBinding binds a hook to a route (or to every route) with its bounds.
// Exactly one of Script, Plugin and Go names the hook.
type HookBinding struct {
	// Script names a configured script.
	Script string `yaml:"script"`
	// Plugin names a configured plugin.
	Plugin string `yaml:"plugin"`
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
