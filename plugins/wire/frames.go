package wire

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// frameStream is the host's end of a plugin's framed call socket (see
// pluginpb.ConfigureResponse.FramesAddress): the Calls protocol as
// length-prefixed messages on a Unix socket, without HTTP/2 and TLS.
type frameStream struct {
	conn *net.UnixConn
	r    *bufio.Reader
	max  int
	rbuf []byte // Recv's, one goroutine
	wbuf []byte // Send's, serialised by the session
}

// dialFrames connects to the framed call socket at path and checks that
// the process at the other end is the plugin (pid), within timeout.
func dialFrames(path string, pid, maxMessageBytes int, timeout time.Duration) (*frameStream, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UnixConn)
	if got, err := peerPID(conn); err != nil || got != pid {
		conn.Close()
		if err == nil {
			err = fmt.Errorf("the socket is served by process %d, not the plugin (%d)", got, pid)
		}
		return nil, err
	}
	return &frameStream{conn: conn, r: bufio.NewReaderSize(conn, 32<<10), max: maxMessageBytes}, nil
}

func (f *frameStream) Send(req *pluginpb.CallRequest) error {
	b, err := pluginpb.AppendFrame(f.wbuf[:0], req)
	if err != nil {
		return err
	}
	f.wbuf = b
	_, err = f.conn.Write(b)
	return err
}

func (f *frameStream) Recv() (*pluginpb.CallResponse, error) {
	resp := new(pluginpb.CallResponse)
	var err error
	f.rbuf, err = pluginpb.ReadFrame(f.r, f.rbuf, f.max, resp)
	return resp, err
}
