// Package scripts is the JavaScript host of Gatehouse: it compiles hook
// scripts with goja, runs them in a sandbox on a bounded pool of runtimes
// under the request's deadline, and hot-reloads them when their files change.
//
// # The form of a script
//
// A script is a file, or a directory bundle with an index.js and local
// modules it requires with relative paths (require('./lib/sign.js'), also
// .json files), sandboxed to that directory. It defines any of the phase
// functions, CommonJS style:
//
//	exports.validate = function (req) {
//		if (!req.header("authorization")) {
//			return { reject: { status: 401, body: "no token" } };
//		}
//		return { labels: { user: "u1" } };
//	};
//
//	module.exports = {
//		shape(req)         { return { priority: "critical", rateKey: "user:" + req.labels.user, cost: 1 }; },
//		route(req)         { return { service: "users-v2", setHeader: { "X-Canary": "1" }, timeoutMs: 200 }; },
//		respond(req, resp) { return { setHeader: { "X-Content-Type-Options": "nosniff" }, removeHeader: ["Server"] }; },
//		observe(obs)       { console.log(obs.request.path, obs.status, obs.totalMs); },
//	};
//
// A phase function returns a plain object (the decision) or undefined for
// "no opinion". The fields, by phase:
//
//	validate  reject {status, header, body}, labels {name: value}
//	shape     reject, priority ("bulk" | "degraded" | "default" | "critical"), rateKey, cost, labels
//	route     service, path, setHeader {name: value}, removeHeader [names], timeoutMs, labels
//	respond   setHeader, removeHeader
//	observe   (its return value is ignored)
//
// A decision of the wrong type (a string, status: "abc", a typo such as
// "stauts", a Promise) is an error of that call, never a panic. Values are
// the core's to check: a reject status of 999 is returned as it is, and the
// core refuses it under the binding's failure policy. Phase functions are
// synchronous: async functions return a Promise, which is an error.
//
// sdk/js/gatehouse.d.ts declares all of this for editors.
//
// # What a script sees
//
// The request view (req): id, method, scheme, host, path, rawQuery,
// header(name) (first value, case-insensitive), headerValues(name),
// headers (case-insensitive; values joined by ", "), clientIP, tls (null on
// plain connections), route, service, labels, body (only when the binding
// asks for it), bodyTruncated. It is read-only, and it is one object per
// runtime pointed at the current call: do not keep it past the call.
//
// The global gatehouse object: config (Options.Config, deep-frozen),
// bucket(key, n) (a stable xxhash bucket in 0..n-1), crypto.hmacSHA256(key,
// msg), crypto.sha256(msg) (hex), crypto.timingSafeEqual(a, b),
// base64.encode/decode/encodeURL/decodeURL, url.parse(s),
// url.parseQuery(q), name and version. And console.log/info/debug/warn/error,
// written to zerolog with the script's name, version ID and request ID,
// rate-limited per script (drops are counted).
//
// There is no network, filesystem, timer or dynamic code: require accepts
// only relative files of the bundle (require('fs') is refused at load), and
// fetch, XMLHttpRequest, setTimeout and setInterval are refused at load
// wherever they appear. eval and the Function constructors throw; BigInt,
// ArrayBuffer, DataView and the typed arrays do not exist.
//
// # Bounds
//
// Every call runs under the context's deadline (the gateway passes
// min(binding budget, time left in the request)); the runtime is
// interrupted when the context is done, and a runtime that was interrupted
// or panicked is discarded, never reused. Calls into one version share a
// pool of Options.PoolSize runtimes; a call waits for one at most until its
// deadline. Recursion is bounded by Options.MaxCallStackSize.
//
// goja's Interrupt only acts between bytecode instructions, so one call
// into a built-in could run for seconds or allocate gigabytes
// ('x'.repeat(1e9), Array.from({length: 1e9}), JSON.stringify of a DAG of
// 30 nested pairs). The sandbox replaces or wraps every such built-in with
// a Go version that checks Options.MaxStringLength and
// Options.MaxArrayLength (throwing a RangeError the script may catch) and
// the call's deadline (ending the call). Work is bounded as well as size:
// the native iterators (behind new Set/Map, Array.from, spread,
// Object.fromEntries), Array.prototype.includes/indexOf/lastIndexOf,
// concat, flat, Object.values/entries/assign, normalize and JSON check the
// deadline as they go; a string counts as an array of its length for
// Object.keys and friends, and an entry of Object.entries (an array of
// its own) as four elements; the results of String.prototype methods,
// normalize and the URI encoders are held to MaxStringLength. An
// array-like whose length is an accessor or an object, or a Proxy, is
// refused where a guard reads a length (the built-in would read it again).
// Every regexp match goes through the guarded RegExp.prototype.exec (or
// test): the input is held to MaxStringLength and the match runs with
// min(RegexpMatchTimeout, time left); a match that runs that long fails
// the call (it never reads as "no match"). Object spread ({...x}) is
// rewritten to check that x has at most MaxArrayLength/4 properties
// (spread.go). A decision's maps (labels, setHeader, reject.header) hold at
// most 64 entries, names of up to 256 bytes and values of up to 8 KiB. The + operator,
// += and template literals are single instructions that goja offers no
// hook for, so each module is rewritten before it is compiled (concat.go):
// `a + b` calls a helper that keeps the operator's semantics and throws a
// RangeError before it would build a string longer than MaxStringLength
// (names beginning with __gatehouse_ are reserved for it). See
// adversarial_test.go for the cases and their measurements.
//
// What a loop keeps is bounded by Options.MaxCallMemory (memwatch.go):
// while a call with more than 10 ms to its deadline, or a runtime's
// top-level code, runs, the process's heap is sampled every 5 ms, and a
// call that has made it grow by more than the bound is stopped (uncatchably;
// errors.Is(err, ErrMemory)) and its runtime discarded. A shorter call is
// bounded by its deadline: with 10 ms, the worst loops measured kept 12 MB.
// See memwatch_test.go. What a script keeps between calls (a module
// variable that grows on every call) is dropped with its runtime: each
// runtime is replaced after Options.MaxRuntimeCalls calls, its successor
// made in the background first (pool.go).
//
// # Versions and hot reload
//
// Compile returns an immutable *Script: one version, identified by ID() (a
// hash of its files, in every log line). Watch serves a script from a Host:
// when its files change, the new version is compiled, checked and its own
// cases run (RunCases: <name>.cases.yaml beside a file, cases.yaml in a
// bundle) before it is swapped in atomically; a version that fails is
// refused and the old one keeps serving. Callers take Host.Current() once
// per request, so a request finishes on the version it began with.
package scripts
