// Package machine is the per-request state machine: the states (defined in
// package passport, whose stamps name them), the legal transitions as a
// table, and Machine, the only writer of a request's passport. It does no
// I/O; the proxy engine drives it and keeps sockets at its edges.
//
// The happy path, with its failure exits (every state may also go to FAILED
// with a named outcome from package failure):
//
//	ACCEPTED ─▶ HEADERS_READ ─▶ VALIDATED ─▶ SHAPED ─┬──────────▶ ADMITTED ─▶ ROUTED ─▶ ENDPOINT_PICKED
//	                 (validate hooks)   (shape hooks)  └▶ QUEUED ─┘   (route hooks)          │
//	                                                                                         ▼
//	  ┌─────────────── ATTEMPT_FAILED ◀── (connect / send / header failure or a 502/503/504
//	  │                                    answer, when a retry is allowed) ─────────────────┤
//	  ▼                                                                                      ▼
//	ENDPOINT_PICKED ─▶ CONN_ACQUIRED ─▶ REQ_HEADERS_SENT ─▶ RESP_HEADERS_RECEIVED ─▶ RESPONDED ─▶ RESP_BODY_SENT ─▶ DONE
//	                                      ╎ REQ_BODY_SENT (event; the upload     │ (respond hooks)
//	                                      ╎ runs concurrently with the download) └▶ UPGRADED ─▶ DONE
//
// Events that do not change the state: HOOK_ENTER/HOOK_EXIT (in the states
// where hooks run) and REQ_BODY_SENT (from REQ_HEADERS_SENT until the end).
//
// An illegal transition is a bug: in a test binary it panics; in production
// it is reported as an internal error and the request fails with outcome
// internal.
package machine
