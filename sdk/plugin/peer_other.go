//go:build !linux

package plugin

import (
	"errors"
	"net"
)

// Without SO_PEERCRED the framed call socket is not offered: calls stay on
// the gRPC stream, with its mutual TLS.
const peerCheckSupported = false

func peerPID(*net.UnixConn) (int, error) { return 0, errors.New("peer credentials not supported") }
