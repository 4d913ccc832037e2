//go:build !unix

package pool

import "net"

func alive(net.Conn) bool { return true }
