package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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

// Send writes req as one frame. The mux refuses a call over max before it
// gets here; this check keeps a frame the plugin would refuse (and drop
// the socket for) off the wire whatever the caller.
func (f *frameStream) Send(req *pluginpb.CallRequest) error {
	if n := proto.Size(req); n > f.max {
		return fmt.Errorf("call of %d bytes over the bound of %d bytes (max_message_bytes)", n, f.max)
	}
	b, err := pluginpb.AppendFrame(f.wbuf[:0], req)
	if err != nil {
		return err
	}
	f.wbuf = b
	_, err = f.conn.Write(b)
	return err
}

// Recv reads the next answer. An answer over max is not read into memory:
// it is skipped, and, when its call id can be read from its first bytes,
// it becomes that call's too_large failure, so that one oversized answer
// fails one call and not every call on the socket.
func (f *frameStream) Recv() (*pluginpb.CallResponse, error) {
	for {
		var h [4]byte
		if _, err := io.ReadFull(f.r, h[:]); err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint32(h[:]))
		if n > f.max {
			id, ok := f.skip(n)
			if !ok {
				// Not attributable to a call (or a read error, which the
				// next read sees): its caller times out at its deadline.
				continue
			}
			return &pluginpb.CallResponse{Id: id, ErrorKind: pluginpb.ErrorKind_ERROR_KIND_TOO_LARGE,
				Error: fmt.Sprintf("answer of %d bytes over the gateway's bound of %d bytes (max_message_bytes)", n, f.max)}, nil
		}
		f.rbuf = slices.Grow(f.rbuf[:0], n)[:n]
		if _, err := io.ReadFull(f.r, f.rbuf); err != nil {
			return nil, err
		}
		resp := new(pluginpb.CallResponse)
		if err := proto.Unmarshal(f.rbuf, resp); err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// skip reads past a frame of n bytes and returns the call id its message
// begins with (field 1, which encoders write first), if it does.
func (f *frameStream) skip(n int) (id uint64, ok bool) {
	head, _ := f.r.Peek(min(n, 1+binary.MaxVarintLen64))
	if num, typ, k := protowire.ConsumeTag(head); k > 0 && num == 1 && typ == protowire.VarintType {
		if v, m := protowire.ConsumeVarint(head[k:]); m > 0 {
			id, ok = v, true
		}
	}
	if _, err := f.r.Discard(n); err != nil {
		return 0, false
	}
	return id, ok
}
