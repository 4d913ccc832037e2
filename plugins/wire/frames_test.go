package wire

import (
	"bufio"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// TestFrameRecvResumes: a read cut short by the read deadline (a caller
// giving up at its deadline) keeps what it read of a frame, and the next
// Recv goes on from there, for a frame in bounds and one over them.
func TestFrameRecvResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rw := pluginpb.NewRawConn(c)
	f := &frameStream{conn: c, r: bufio.NewReaderSize(rw, 32<<10), fw: pluginpb.NewFrameWriter(rw), max: 64}

	small, _ := pluginpb.AppendFrame(nil, &pluginpb.CallResponse{Id: 7, Error: "x"})
	big, _ := pluginpb.AppendFrame(nil, &pluginpb.CallResponse{Id: 9, Error: string(make([]byte, 100))})
	for _, frame := range [][]byte{small, big} {
		for _, cut := range []int{2, 5, len(frame) - 1} {
			if _, err := peer.Write(frame[:cut]); err != nil {
				t.Fatal(err)
			}
			f.setReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := f.Recv(); !isTimeout(err) {
				t.Fatalf("cut at %d: %v, want a timeout", cut, err)
			}
			if _, err := peer.Write(frame[cut:]); err != nil {
				t.Fatal(err)
			}
			f.setReadDeadline(time.Time{})
			resp, err := f.Recv()
			if err != nil {
				t.Fatalf("cut at %d: %v", cut, err)
			}
			want := uint64(7)
			if len(frame) == len(big) {
				want = 9
				if resp.ErrorKind != pluginpb.ErrorKind_ERROR_KIND_TOO_LARGE {
					t.Errorf("oversized frame: %v", resp)
				}
			} else if !proto.Equal(resp, &pluginpb.CallResponse{Id: 7, Error: "x"}) {
				t.Errorf("cut at %d: %v", cut, resp)
			}
			if resp.Id != want {
				t.Errorf("cut at %d: id %d, want %d", cut, resp.Id, want)
			}
		}
	}
}
