// Package sdk is the contract between Gatehouse and its extensions: the request
// view a hook sees, the decisions it may return and one small interface per
// phase. Go hooks compiled into the gateway, JavaScript hooks (package scripts)
// and go-plugin binaries all implement these same interfaces, so the core runs
// every kind of hook the same way, under the same bounds.
//
// The package imports nothing from the gateway's core; extension authors
// import only sdk.
//
// # Phases
//
// A request passes through five hook phases, in order:
//
//   - validate: allow the request, or reject it with a status, headers and a
//     short body; attach labels for later phases.
//   - shape: choose a priority tier, a rate-limit key and a cost, or reject.
//   - route: choose a configured service, rewrite the path, edit request
//     headers, tighten the upstream timeout.
//   - respond: edit the response headers.
//   - observe: see the finished request and its outcome; cannot change it.
//
// Every phase is optional: a hook implements only the interfaces of the
// phases it cares about ([Validator], [Shaper], [Router], [Responder],
// [Observer]) and the core finds them by type assertion once, when the hook is
// bound ([PhasesOf]). A hook that does not implement a phase costs nothing
// there. A hook whose phases are only known at run time (a script) implements
// [PhaseReporter] as well.
//
// # Rules the core enforces
//
// Hooks see facades, never the core's objects: a [Request] is a read-only
// copy, and a hook returns a decision value. The core validates every
// decision before acting on it; a decision that breaks a rule follows the
// binding's failure policy (fail-open or fail-closed) exactly as an error
// would, and is counted:
//
//   - a [Reject] status is within 400..599;
//   - a [Priority] is unset or one of the four tiers;
//   - header edits never touch hop-by-hop headers (Connection, Keep-Alive,
//     Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade), Host unless the route
//     allows it, Content-Length, or the gateway's own internal headers;
//   - a route's Service names a configured service; a Timeout may only
//     tighten the route's upstream timeout, never loosen it;
//   - labels are short strings (the core bounds their number and size).
//
// Every call receives a context whose deadline is min(the binding's time
// budget, the time left in the request). Implementations must honour it: a
// hook that overruns is abandoned, its result ignored, and the failure policy
// applies.
//
// # A Go hook
//
//	type apiKeys struct{ keys map[string]string } // key -> tenant
//
//	func (h apiKeys) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
//		tenant, ok := h.keys[req.Header.Get("X-Api-Key")]
//		if !ok {
//			return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 401, Body: "missing or unknown API key"}}, nil
//		}
//		return sdk.ValidateDecision{Labels: map[string]string{"tenant": tenant}}, nil
//	}
//
//	func (h apiKeys) Shape(ctx context.Context, req *sdk.Request) (sdk.ShapeDecision, error) {
//		return sdk.ShapeDecision{RateKey: "tenant:" + req.Labels["tenant"], Cost: 1}, nil
//	}
//
//	// sdk.PhasesOf(apiKeys{}) == sdk.PhaseSetOf(sdk.PhaseValidate, sdk.PhaseShape)
package sdk
