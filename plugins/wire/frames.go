package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// frameStream is the host's end of a plugin's framed call socket (see
// pluginpb.ConfigureResponse.FramesAddress): the Calls protocol as
// length-prefixed messages on a Unix socket, without HTTP/2 and TLS.
//
// Recv is resumable: a read that fails with the connection's read
// deadline (a caller reading its own answer gives up at its deadline, see
// session.lead) keeps what it read of the frame, and the next Recv goes
// on from there.
type frameStream struct {
	conn *net.UnixConn
	r    *bufio.Reader // of conn's pluginpb.NewRawConn
	max  int
	rbuf []byte // Recv's, one goroutine at a time
	fw   *pluginpb.FrameWriter

	// The frame being read: header bytes read (hn of hdr), then body
	// bytes read or skipped (got of the frame's n), and for a frame over
	// max, its first bytes (head, hl of them) for the call id.
	hdr  [4]byte
	hn   int
	got  int
	head [1 + binary.MaxVarintLen64]byte
	hl   int
	// rdl is the connection's read deadline as last set (zero: none);
	// only the session's reader of the moment touches it.
	rdl time.Time
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
	rw := pluginpb.NewRawConn(conn)
	return &frameStream{conn: conn, r: bufio.NewReaderSize(rw, 32<<10), fw: pluginpb.NewFrameWriter(rw), max: maxMessageBytes}, nil
}

// Send writes req as one frame. The mux refuses a call over max before it
// gets here; this check keeps a frame the plugin would refuse (and drop
// the socket for) off the wire whatever the caller.
func (f *frameStream) Send(req *pluginpb.CallRequest) error {
	return f.sendSized(req, pluginpb.SizeCallRequest(req), false)
}

// sendSized is Send of a req whose size n was just taken
// (pluginpb.SizeCallRequest), for the bound. With later, the frame waits for the others sent in
// this scheduling round and goes out with them (pluginpb.FrameWriter; see
// session.sendDirect).
func (f *frameStream) sendSized(req *pluginpb.CallRequest, n int, later bool) error {
	if n > f.max {
		return fmt.Errorf("call of %d bytes over the bound of %d bytes (max_message_bytes)", n, f.max)
	}
	return f.fw.Send(req, later)
}

// Recv reads the next answer. An answer over max is not read into memory:
// it is skipped, and, when its call id can be read from its first bytes,
// it becomes that call's too_large failure, so that one oversized answer
// fails one call and not every call on the socket.
func (f *frameStream) Recv() (*pluginpb.CallResponse, error) {
	for {
		if err := f.fill(f.hdr[:], &f.hn); err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint32(f.hdr[:]))
		if n > f.max {
			if err := f.fill(f.head[:min(n, len(f.head))], &f.hl); err != nil {
				return nil, err
			}
			f.got = max(f.got, f.hl)
			for f.got < n {
				d, err := f.r.Discard(n - f.got)
				f.got += d
				if err != nil {
					return nil, err
				}
			}
			id, ok := frameID(f.head[:f.hl])
			f.hn, f.got, f.hl = 0, 0, 0
			if !ok {
				// Not attributable to a call: its caller times out at
				// its deadline.
				continue
			}
			return &pluginpb.CallResponse{Id: id, ErrorKind: pluginpb.ErrorKind_ERROR_KIND_TOO_LARGE,
				Error: fmt.Sprintf("answer of %d bytes over the gateway's bound of %d bytes (max_message_bytes)", n, f.max)}, nil
		}
		if f.got == 0 {
			f.rbuf = slices.Grow(f.rbuf[:0], n)
		}
		if err := f.fill(f.rbuf[:n], &f.got); err != nil {
			return nil, err
		}
		f.hn, f.got = 0, 0
		resp := new(pluginpb.CallResponse)
		if err := pluginpb.UnmarshalCallResponse(f.rbuf[:n], resp); err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// fill reads into b[*have:] until b is full, counting progress in *have
// (kept when a read fails, for the next Recv).
func (f *frameStream) fill(b []byte, have *int) error {
	for *have < len(b) {
		k, err := f.r.Read(b[*have:])
		*have += k
		if err != nil && *have < len(b) {
			return err
		}
	}
	return nil
}

// frameID returns the call id a message begins with (field 1, which
// encoders write first), if it does.
func frameID(head []byte) (id uint64, ok bool) {
	if num, typ, k := protowire.ConsumeTag(head); k > 0 && num == 1 && typ == protowire.VarintType {
		if v, m := protowire.ConsumeVarint(head[k:]); m > 0 {
			return v, true
		}
	}
	return 0, false
}

// setReadDeadline sets the connection's read deadline, unless it is set
// to t already.
func (f *frameStream) setReadDeadline(t time.Time) {
	if !f.rdl.Equal(t) {
		f.rdl = t
		f.conn.SetReadDeadline(t)
	}
}

// isTimeout reports whether err is a read that hit the read deadline.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
