package proxy

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
)

// tunnel passes an upgraded connection (101 Switching Protocols, for
// example a WebSocket) through in both directions until either side closes
// or it is idle for limits.request.upgrade_idle_timeout. The request
// deadline does not apply to the tunnel; the idle bound does.
func (x *exchange) tunnel() {
	st, resp := x.st, x.resp
	st.m.To(passport.Upgraded)
	stripHopByHop(resp.Header)
	client, brw, err := st.cs.Hijack()
	if err != nil {
		st.fail(failure.Wrap(failure.Internal, err, "cannot take over the client connection for an upgrade"))
		return
	}
	st.responded = true
	st.rec.Status = resp.StatusCode
	defer client.Close()
	client.SetDeadline(time.Time{})
	// Write the 101 head ourselves: the server is out of the picture now.
	bw := brw.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ")
	bw.WriteString(x.upgrade)
	bw.WriteString("\r\n")
	resp.Header["X-Request-Id"] = []string{st.req.ID}
	resp.Header.Write(bw)
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		st.fail(failure.Wrap(failure.ClientGone, err, "client went away during the upgrade"))
		return
	}
	idle := st.route.Limits.UpgradeIdleTimeout
	up := x.c
	var in, out atomic.Int64
	done := make(chan error, 2)
	go func() { done <- pipe(up.Conn, brw.Reader, client, idle, &in) }()
	go func() { done <- pipe(client, up.BR, up.Conn, idle, &out) }()
	err = <-done
	// One side ended: close both so the other direction ends too.
	client.Close()
	up.Conn.Close()
	<-done
	st.rec.BytesIn, st.rec.BytesOut = in.Load(), out.Load()
	if err != nil && isTimeout(err) {
		st.fail(failure.New(failure.ClientTooSlow, "upgraded connection idle for limits.request.upgrade_idle_timeout = %s", idle))
		return
	}
	st.m.To(passport.Done)
}

// pipe copies src (read through r, which may hold buffered bytes) to dst,
// extending the read deadline of srcConn by idle before each read.
func pipe(dst net.Conn, r *bufio.Reader, srcConn net.Conn, idle time.Duration, n *atomic.Int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		srcConn.SetReadDeadline(time.Now().Add(idle))
		nr, er := r.Read(buf)
		if nr > 0 {
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, ew := dst.Write(buf[:nr]); ew != nil {
				return ew
			}
			n.Add(int64(nr))
		}
		if er == io.EOF {
			return nil
		}
		if er != nil {
			return er
		}
	}
}
