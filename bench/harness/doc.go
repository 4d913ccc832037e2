// Package harness runs Gatehouse and its peers side by side on one machine,
// over loopback only, and measures them the same way.
//
// An Env holds what a run needs: the binaries built from the tree (backend,
// stdproxy, loadgen, gatehouse), the process placement (proxy on one CPU,
// backend and load generators on another), a work directory and the results
// directory. A Peer knows how to configure and start one proxy; Compare runs a
// CompareSpec (peers × plan) and returns a Report, which WriteReport renders as
// markdown, JSON and SVG plots.
//
// Measurement rules, shared by every scenario:
//   - Throughput at saturation comes from closed-loop runs (wrk when
//     installed, else loadgen's closed mode).
//   - Latency comes from open-loop runs at a constant rate, measured from each
//     request's intended send time; a run where the generator fell behind its
//     schedule, or any request failed, is invalid and marked so.
//   - CPU per request is the proxy's process tree's utime+stime from /proc
//     (its children included), before and after each run, divided by the
//     requests completed; it does not depend on what else shares the core.
//   - Every point is repeated; reports show the median of the valid runs and
//     their spread, and list every run.
package harness
