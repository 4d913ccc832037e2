package plugin

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

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
			fs := &frameServerStream{conn: conn, rw: rw, r: bufio.NewReaderSize(rw, 32<<10)}
			_ = s.serveCalls(ctx, fs)
			cancel()
			conn.Close()
			return
		}
	}()
	return path
}

// frameServerStream is the plugin's end of the framed call socket.
// serveCalls reads from one goroutine and serialises its sends.
type frameServerStream struct {
	conn *net.UnixConn
	rw   io.ReadWriter // conn's (pluginpb.NewRawConn)
	r    *bufio.Reader
	rbuf []byte
	wbuf []byte
}

func (f *frameServerStream) Recv() (*pluginpb.CallRequest, error) {
	req := new(pluginpb.CallRequest)
	var err error
	f.rbuf, err = pluginpb.ReadFrame(f.r, f.rbuf, maxMessageBytes, req)
	return req, err
}

func (f *frameServerStream) Send(resp *pluginpb.CallResponse) error {
	return f.sendSized(resp, proto.Size(resp))
}

// sendSized sends resp, whose size n was just taken (answer): proto keeps
// the sizes of resp and its parts cached, so it is encoded without sizing
// it again.
func (f *frameServerStream) sendSized(resp *pluginpb.CallResponse, n int) error {
	b := binary.BigEndian.AppendUint32(f.wbuf[:0], uint32(n))
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, resp)
	if err == nil && len(b) != 4+n {
		// resp changed since it was sized: encode it afresh.
		b, err = pluginpb.AppendFrame(f.wbuf[:0], resp)
	}
	if err != nil {
		return err
	}
	f.wbuf = b
	_, err = f.rw.Write(b)
	return err
}
