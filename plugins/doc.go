// Package plugins is the go-plugin host of Gatehouse: it runs hook plugins,
// separate binaries built with sdk/plugin.Serve, and exposes each as a hook.Source
// that the core's hook runner calls like any other hook. (sdk/plugin.Serve
// is the design's sdk.Serve, kept out of package sdk so that sdk stays
// standard-library only.)
//
// # A plugin's life
//
// A version is the code it was started from, with its arguments,
// environment and configuration: when a version is made, its binary is
// copied into the plugin's private directory (mode 0700, in SocketDir) and
// its ID is the hash of the bytes copied; its processes run that copy, and
// so does every restart after a crash or a hang, whatever the file at
// Options.Path holds by then. Each version's copy is removed when the
// version is stopped.
//
// Start copies and launches the binary (github.com/hashicorp/go-plugin
// over gRPC, with AutoMTLS on a Unix socket in a directory of the plugin's
// own), negotiates the protocol version, passes the plugin its
// configuration, and waits for a health check, all within StartTimeout. The plugin's
// standard output and error go to the log, line by line, tagged with its
// name and version and bounded in line length and rate.
//
// While it runs, the host pings it every HealthInterval; a process that
// exits, or fails HealthFailures pings in a row (hung), is killed and
// restarted after RestartBackoff (50ms by default: a killed plugin serves
// again about 200ms later), doubling with each failed restart up to
// MaxRestartBackoff, and back to RestartBackoff once a process has run for
// StableAfter. While it is down, calls fail at once (unavailable) and the
// binding's failure policy answers the request, except those a cached
// decision answers.
//
// When its binary or config file changes (with Watch: the directories of
// the paths and of their symlinks' targets are watched, so that a binary
// renamed over the old one, a symlink swapped and a Kubernetes ConfigMap
// update are all seen, with a check every 2s besides; changes debounced),
// or Reconfigure is given other options, the new version is copied, starts
// and must pass a health check; then new calls go to it, calls in flight
// finish on the old one (DrainTimeout), and the old process is stopped. A
// version that fails to start is refused and the old one keeps serving.
// Without Watch a changed binary is not picked up until Reconfigure or the
// next start of the gateway.
//
// Close drains and stops every process (SIGKILL to its process group if it
// does not exit within 2s), then removes the private directory: no
// process, no socket file and no copy of a binary is left. A plugin also
// dies with the gateway (Linux Pdeathsig), and private directories left by
// a gateway that died are removed by the next one to start.
//
// # Calls
//
// Each phase of a request is one call: the request view in, the decision
// out, the request body only when the binding asks for it (at most
// MaxBodyBytes), with the time left for the call (the context's deadline)
// carried to the plugin, where it is the deadline of the plugin's context.
// Messages are bounded (MaxMessageBytes) both ways, on every transport:
// a call or an answer over the bound fails that call (too_large) and no
// other; the connection stays in use. Calls in flight are bounded too
// (MaxConcurrent).
//
// Calls are multiplexed (an id each, answers in any order) on one
// connection. By default (wire.TransportFrames) that is the plugin's
// framed call socket: length-prefixed protobuf messages on a Unix socket
// in the plugin's private socket directory (mode 0700), whose peer both
// ends check with SO_PEERCRED (the plugin accepts only its parent, the
// host only the plugin's PID) in place of the mutual TLS of the gRPC
// connection, which keeps the handshake, Configure and health checks. It
// saves HTTP/2 framing and TLS on every call: measured with
// BenchmarkRoundTrip it takes about a quarter less CPU on each side and a
// third fewer allocations than a gRPC stream, which itself costs about
// two thirds of a unary RPC. A plugin that does not offer frames (an older
// SDK, not Linux), or whose socket breaks, is called on a long-lived gRPC
// stream (wire.TransportStream), and failing that with unary RPCs
// (wire.TransportUnary); Stats.Transport says which one calls use now.
//
// A plugin may mark a decision cacheable with plugin.CacheFor (e.g. an auth
// decision per token); with CacheEntries > 0 the host reuses it for
// requests that agree on the request parts named, for at most CacheMaxTTL.
//
// # OS bounds
//
// Options.Limits set RLIMIT_AS, RLIMIT_NOFILE and RLIMIT_CPU on the plugin
// process with prlimit(2) right after it starts (Linux). The plugin runs in
// a process group of its own, with only the environment it is given.
//
// # Counters
//
// Stats returns calls, failures by kind (plugin_error, timeout,
// unavailable, invalid, too_large, overloaded, transport), a latency
// histogram, cache hits and misses, restarts, reloads and refusals.
package plugins
