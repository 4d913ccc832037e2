// Command rawframes is a test plugin written against the wire protocol
// (sdk/pluginpb) without the SDK's server, to send on its framed call
// socket what the SDK never would. It takes part in validate only.
//
// Per call, by request path: "/big" answers with a label of X-Big bytes
// whatever the gateway's bound on messages; "/slow" answers after
// X-Sleep (a duration); "/break" closes the framed call socket without
// answering. Every answer labels "via" with the transport it took
// (frames, stream or unary) and "pid" with the plugin's process ID.
package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/gatehouse/gatehouse/sdk/plugin"
	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

type server struct {
	pluginpb.UnimplementedPluginServer
	frames sync.Once
}

func (s *server) Configure(_ context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	resp := &pluginpb.ConfigureResponse{Phases: []pluginpb.Phase{pluginpb.Phase_PHASE_VALIDATE}, Features: []string{"stream", "frames"}, SdkVersion: "raw"}
	if req.Frames {
		s.frames.Do(func() { resp.FramesAddress = serveFrames() })
	}
	return resp, nil
}

func header(req *pluginpb.CallRequest, name string) string {
	if req.Request == nil {
		return ""
	}
	for _, f := range req.Request.Header {
		if strings.EqualFold(f.Name, name) && len(f.Values) > 0 {
			return f.Values[0]
		}
	}
	return ""
}

func path(req *pluginpb.CallRequest) string {
	if req.Request == nil {
		return ""
	}
	return req.Request.Path
}

// answer is the decision for req, sent on transport via.
func answer(req *pluginpb.CallRequest, via string) *pluginpb.CallResponse {
	labels := map[string]string{"via": via, "pid": strconv.Itoa(os.Getpid())}
	switch path(req) {
	case "/big":
		n, _ := strconv.Atoi(header(req, "X-Big"))
		labels["big"] = strings.Repeat("x", n)
	case "/slow":
		d, _ := time.ParseDuration(header(req, "X-Sleep"))
		time.Sleep(d)
	}
	return &pluginpb.CallResponse{Id: req.Id, Decision: &pluginpb.CallResponse_Validate{Validate: &pluginpb.ValidateDecision{Labels: labels}}}
}

func (s *server) Call(_ context.Context, req *pluginpb.CallRequest) (*pluginpb.CallResponse, error) {
	return answer(req, "unary"), nil
}

func (s *server) Calls(stream pluginpb.Plugin_CallsServer) error {
	var mu sync.Mutex
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		if req.Cancel {
			continue
		}
		go func() {
			resp := answer(req, "stream")
			mu.Lock()
			defer mu.Unlock()
			_ = stream.Send(resp)
		}()
	}
}

// serveFrames serves one connection on a framed call socket in the
// plugin's socket directory and returns its path.
func serveFrames() string {
	p := filepath.Join(os.Getenv("PLUGIN_UNIX_SOCKET_DIR"), "frames-raw.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return ""
	}
	go func() {
		conn, err := ln.AcceptUnix()
		ln.Close()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var (
			mu   sync.Mutex
			rbuf []byte
		)
		for {
			req := new(pluginpb.CallRequest)
			if rbuf, err = pluginpb.ReadFrame(r, rbuf, 64<<20, req); err != nil {
				return
			}
			if req.Cancel {
				continue
			}
			if path(req) == "/break" {
				return
			}
			go func() {
				b, err := pluginpb.AppendFrame(nil, answer(req, "frames"))
				if err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				_, _ = conn.Write(b)
			}()
		}
	}()
	return p
}

type servePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (servePlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterPluginServer(s, &server{})
	return nil
}

func (servePlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not a client")
}

func main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  plugin.Handshake(),
		VersionedPlugins: map[int]goplugin.PluginSet{plugin.ProtocolVersion: {plugin.PluginName: servePlugin{}}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))...)
		},
	})
}
