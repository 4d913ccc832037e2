// Package wire is the host side of Gatehouse's plugin protocol: it starts a
// plugin binary with github.com/hashicorp/go-plugin (handshake, protocol
// version, AutoMTLS, a socket directory of its own, OS limits), and speaks
// the protocol of sdk/pluginpb to it through a Conn that implements the sdk
// phase interfaces, every call bounded by its context's deadline.
//
// It is the part of the plugin host that knows nothing of the gateway's
// core (it imports only sdk), so that sdk/sdktest can run plugin binaries
// with it; package plugins adds what the gateway needs on top: restarts,
// health pings, hot reload, decision caching and counters.
package wire
