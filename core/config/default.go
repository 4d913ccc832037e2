package config

import "time"

// Default returns a configuration with every bound at its documented default
// and no listeners, services or routes. Parse starts from it.
func Default() *Config {
	return &Config{
		Admin: Admin{Address: "127.0.0.1:9901"},
		Observe: Observe{Metrics: true, Passports: 256, Tracing: Tracing{Endpoint: "http://127.0.0.1:4318/v1/traces",
			SamplePerMillion: 10000, Queue: 2048, BatchSize: 512, ExportTimeout: Duration(10 * time.Second),
			BatchDelay: Duration(5 * time.Second), ServiceName: "gatehouse"}},
		Redis: Redis{Timeout: Duration(20 * time.Millisecond), ProbeInterval: Duration(time.Second),
			PoolSize: 64, KeyPrefix: "gatehouse:rl:"},
		Logging: Logging{
			Level:     "info",
			Format:    "json",
			AccessLog: true,
		},
		Limits: Limits{
			Server: ServerLimits{
				HeaderTimeout:  Duration(10 * time.Second),
				MaxHeaderBytes: 64 * KiB,
				IdleTimeout:    Duration(90 * time.Second),
				MaxConnections: 10000,
				MaxRequests:    4096,
				DrainTimeout:   Duration(30 * time.Second),
			},
			Request: RequestLimits{
				Deadline:           Duration(30 * time.Second),
				MaxBodyBytes:       8 * MiB,
				BodyMinRate:        Rate(KiB),
				BodyRateGrace:      Duration(5 * time.Second),
				ClientMinRate:      Rate(KiB),
				UpgradeIdleTimeout: Duration(5 * time.Minute),
			},
			Upstream: UpstreamLimits{
				ConnectTimeout:      Duration(2 * time.Second),
				HeaderTimeout:       Duration(15 * time.Second),
				MaxConnsPerEndpoint: 512,
				MaxIdlePerEndpoint:  128,
				IdleTimeout:         Duration(60 * time.Second),
				MaxHeaderBytes:      MiB,
				MaxResponseBytes:    GiB,
				BodyMinRate:         Rate(KiB),
				BodyRateGrace:       Duration(10 * time.Second),
			},
		},
	}
}

// NewService returns a service with the default balancer and protocol and
// with its upstream limits copied from c.Limits.Upstream, as a service read
// from a file starts. It does not add the service to c.
func (c *Config) NewService(name string, endpoints ...string) Service {
	return Service{
		Name:      name,
		Endpoints: endpoints,
		Balancer:  "p2c_ewma",
		Balancing: Balancing{LatencyTau: Duration(2 * time.Second), FailureTau: Duration(time.Minute),
			FailurePenalty: Duration(time.Second), ProbeInterval: Duration(time.Second), Choices: 2},
		Outlier: Outlier{Enabled: true, ConsecutiveFailures: 5, MinSuccessPercent: 50, MinRequests: 20,
			Window: Duration(10 * time.Second), BaseEjection: Duration(10 * time.Second), MaxEjection: Duration(5 * time.Minute),
			JitterPercent: 25, MaxEjectedPercent: 50, ProbeTimeout: Duration(30 * time.Second)},
		HealthCheck: HealthCheck{Path: "/healthz", Interval: Duration(5 * time.Second), Timeout: Duration(time.Second),
			Healthy: 2, Unhealthy: 3},
		Protocol:  "http1",
		Limits:    ServiceLimits{Upstream: c.Limits.Upstream},
		Retry:     DefaultRetry(),
		Admission: DefaultAdmission(),
	}
}

// DefaultAdmission returns the documented admission defaults (off).
func DefaultAdmission() Admission {
	return Admission{InitialLimit: 20, MinLimit: 2, MaxLimit: 1000, MaxQueue: 256,
		QueueTimeout: Duration(time.Second), QueueTarget: Duration(20 * time.Millisecond),
		QueueInterval: Duration(100 * time.Millisecond), Window: Duration(100 * time.Millisecond),
		WindowSamples: 10, BaseWindow: Duration(30 * time.Second), RetryAfter: Duration(time.Second)}
}

// NewRateLimit returns a rate limit of rate tokens per second with the
// documented defaults (burst: rate; key: client_ip; local).
func NewRateLimit(rate int) RateLimit {
	return RateLimit{Rate: rate, Per: Duration(time.Second), Key: "client_ip", MaxKeys: 100000}
}

// DefaultRetry returns the documented retry defaults.
func DefaultRetry() Retry {
	return Retry{MaxAttempts: 3, BudgetPercent: 20, MinPerSecond: 3, Window: Duration(10 * time.Second),
		BackoffBase: Duration(10 * time.Millisecond), BackoffMax: Duration(250 * time.Millisecond),
		ReplayBodyBytes: 64 * KiB, MinAttemptTime: Duration(5 * time.Millisecond)}
}

// NewRoute returns a route to service that matches every request (path
// prefix "/"), with its request limits copied from c.Limits.Request, as a
// route read from a file starts. It does not add the route to c.
func (c *Config) NewRoute(name, service string) Route {
	return Route{
		Name:     name,
		Match:    Match{PathPrefix: "/"},
		Service:  service,
		Limits:   RouteLimits{Request: c.Limits.Request},
		Priority: "default",
	}
}

// NewHookBinding returns a binding with the documented defaults.
func NewHookBinding() HookBinding {
	return HookBinding{Budget: Duration(10 * time.Millisecond), MaxConcurrent: 256, OnFailure: "closed", FailureStatus: 503}
}

// NewScript returns a script with the documented defaults.
func NewScript(name, file string) Script {
	return Script{Name: name, File: file, Runtimes: 8, MaxCallMemory: 64 << 20, MaxRuntimeCalls: 10000}
}

// NewPlugin returns a plugin with the documented defaults.
func NewPlugin(name, path string) Plugin {
	return Plugin{
		Name: name, Path: path,
		StartTimeout:    Duration(10 * time.Second),
		Health:          PluginHealth{Interval: Duration(time.Second), Timeout: Duration(500 * time.Millisecond), Failures: 3},
		Restart:         PluginRestart{BackoffMin: Duration(50 * time.Millisecond), BackoffMax: Duration(30 * time.Second), StableAfter: Duration(10 * time.Second)},
		DrainTimeout:    Duration(10 * time.Second),
		MaxConcurrent:   1024,
		MaxMessageBytes: MiB,
		MaxBodyBytes:    64 * KiB,
		Cache:           PluginCache{MaxTTL: Duration(time.Minute)},
		Watch:           true,
	}
}
