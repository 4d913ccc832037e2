// Package proxy is the per-request driver: it runs a request through the
// state machine (package machine), under the bounds of its route and
// service, to an endpoint and back, and hands the finished passport to the
// observers. It works on its own request view and the ClientSide interface;
// the net/http adapter lives in package inbound, so a different HTTP engine
// can drive it.
//
// Bodies stream in both directions concurrently: the upload runs in its own
// goroutine while the response is read, so an endpoint that answers while
// the client is still sending (full duplex) works. Every read and write has
// a deadline: the request deadline, the upstream header timeout, and the
// minimum-rate rule for bodies (see rate.go).
package proxy
