//go:build linux

package plugin

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

type echoHook struct{}

func (echoHook) Validate(_ context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	return sdk.ValidateDecision{Labels: map[string]string{"path": req.Path}}, nil
}

// TestFramesOnlyForParent: the framed call socket is offered only in a
// socket directory the gateway gave, and serves only the parent process: a
// connection from any other process (here, this test, which is not its own
// parent) is closed unanswered.
func TestFramesOnlyForParent(t *testing.T) {
	s := newPluginServer(echoHook{})
	t.Setenv("PLUGIN_UNIX_SOCKET_DIR", "")
	if addr := s.offerFrames(); addr != "" {
		t.Fatalf("offered without a socket directory: %s", addr)
	}
	t.Setenv("PLUGIN_UNIX_SOCKET_DIR", t.TempDir())
	addr := s.offerFrames()
	if addr == "" {
		t.Fatal("no framed call socket offered")
	}
	conn, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := pluginpb.AppendFrame(nil, &pluginpb.CallRequest{Id: 1, Phase: pluginpb.Phase_PHASE_VALIDATE,
		TimeoutNanos: int64(time.Second), Request: &pluginpb.Request{Path: "/x"}})
	conn.Write(b)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp pluginpb.CallResponse
	if _, err := pluginpb.ReadFrame(bufio.NewReader(conn), nil, 1<<20, &resp); err == nil {
		t.Fatalf("a process other than the parent got an answer: %+v", &resp)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection from a stranger left open")
	}
}
