package plugin

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// framesAcceptTimeout bounds the wait for the host's connection to the
// framed call socket; without it the plugin serves on the Calls stream.
const framesAcceptTimeout = 10 * time.Second

// offerFrames opens the framed call socket (see
// pluginpb.ConfigureResponse.FramesAddress) in the plugin's socket
// directory and returns its path, or "" when frames cannot be offered
// here (no socket directory: not started by the gateway; or no way to
// check the peer on this OS). It serves the first connection that comes
// from the parent process, then closes the socket.
func (s *pluginServer) offerFrames() string {
	dir := os.Getenv("PLUGIN_UNIX_SOCKET_DIR")
	if dir == "" || !peerCheckSupported {
		return ""
	}
	path := filepath.Join(dir, fmt.Sprintf("frames-%d.sock", os.Getpid()))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return ""
	}
	go func() {
		defer ln.Close() // removes the socket file
		ln.SetDeadline(time.Now().Add(framesAcceptTimeout))
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			if pid, err := peerPID(conn); err != nil || pid != os.Getppid() {
				conn.Close() // not the gateway that started this plugin
				continue
			}
			ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			rw := pluginpb.NewRawConn(conn)
			fs := &frameServerStream{r: bufio.NewReaderSize(rw, 32<<10), fw: pluginpb.NewFrameWriter(rw)}
			_ = s.serveCalls(ctx, fs)
			cancel()
			conn.Close()
			return
		}
	}()
	return path
}

// frameServerStream is the plugin's end of the framed call socket.
// serveCalls reads from one goroutine at a time; any goroutine sends.
type frameServerStream struct {
	r    *bufio.Reader // of conn's pluginpb.NewRawConn
	rbuf []byte
	fw   *pluginpb.FrameWriter
	// more is set when the last Recv left the start of another call in
	// the read buffer: the host sent several at once, and their answers
	// can go back the same way.
	more atomic.Bool
}

func (f *frameServerStream) Recv() (*pluginpb.CallRequest, error) {
	req := new(pluginpb.CallRequest)
	var err error
	f.rbuf, err = pluginpb.ReadFrame(f.r, f.rbuf, maxMessageBytes, req)
	f.more.Store(err == nil && f.r.Buffered() >= 4)
	return req, err
}

func (f *frameServerStream) Send(resp *pluginpb.CallResponse) error {
	return f.sendAnswer(resp, false)
}

// sendAnswer sends resp. When other calls are being answered (others) or
// are waiting in the read buffer, the answer may wait for theirs and go out
// with them in one write (pluginpb.FrameWriter).
func (f *frameServerStream) sendAnswer(resp *pluginpb.CallResponse, others bool) error {
	return f.fw.Send(resp, others || f.more.Load())
}
