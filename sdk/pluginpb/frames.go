package pluginpb

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/proto"
)

// AppendFrame appends m to b as one frame of the framed call socket (see
// ConfigureResponse.frames_address): a 4-byte big-endian length, then the
// message.
func AppendFrame(b []byte, m proto.Message) ([]byte, error) {
	n := proto.Size(m)
	if int64(n) > 1<<31 {
		return b, fmt.Errorf("message of %d bytes too large for a frame", n)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return proto.MarshalOptions{}.MarshalAppend(b, m)
}

// ReadFrame reads one frame from r into m, using buf (returned, maybe
// grown, for the next frame; m does not keep it). A frame over max bytes is
// an error, and the connection cannot be read further.
func ReadFrame(r *bufio.Reader, buf []byte, max int, m proto.Message) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if int64(n) > int64(max) {
		return buf, fmt.Errorf("frame of %d bytes over the bound of %d bytes", n, max)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, err
	}
	switch m := m.(type) {
	case *CallRequest:
		return buf, UnmarshalCallRequest(buf, m)
	case *CallResponse:
		return buf, UnmarshalCallResponse(buf, m)
	}
	return buf, proto.Unmarshal(buf, m)
}
