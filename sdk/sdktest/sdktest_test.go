package sdktest_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

// misbehave is the host's test plugin, built once by TestMain.
var misbehave string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sdktest-test-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if misbehave, err = sdktest.Build("../../plugins/testdata/misbehave", dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// TestExecTransports: Exec calls a built binary on the gateway's default
// transport (the framed call socket) unless told otherwise, and every
// transport carries the same cases.
func TestExecTransports(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []sdktest.ExecOptions
		want wire.Transport
	}{
		{"default", nil, wire.DefaultTransport},
		{"frames", []sdktest.ExecOptions{{Transport: wire.TransportFrames}}, wire.TransportFrames},
		{"stream", []sdktest.ExecOptions{{Transport: wire.TransportStream}}, wire.TransportStream},
		{"unary", []sdktest.ExecOptions{{Transport: wire.TransportUnary}}, wire.TransportUnary},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := sdktest.Exec(t, misbehave, []byte(`{"version": "v7"}`), c.opts...)
			if got := p.Transport(); got != c.want {
				t.Fatalf("calls on %s, want %s", got, c.want)
			}
			if got := p.Info().Transport; got != c.want {
				t.Fatalf("transport chosen at Configure: %s, want %s", got, c.want)
			}
			if p.Pid() <= 0 {
				t.Fatalf("pid %d", p.Pid())
			}
			p.Run(t, []sdktest.Case{
				{Name: "reject", Request: sdktest.NewRequest("GET", "/", "X-Invalid", "1"),
					Want: sdk.ValidateDecision{Reject: &sdk.Reject{Status: 999}}},
				{Name: "error", Request: sdktest.NewRequest("GET", "/", "X-Error", "1"),
					Want: sdk.ValidateDecision{}, WantErr: "misbehave: asked to fail"},
				{Name: "shape", Request: sdktest.WithLabels(sdktest.NewRequest("GET", "/"), "user", "u1"),
					Want: sdk.ShapeDecision{Priority: sdk.PriorityDefault, RateKey: "user:u1", Cost: 1}},
				{Name: "respond", Request: sdktest.WithLabels(sdktest.NewRequest("GET", "/"), "user", "u1", "pid", "1"),
					Response: &sdk.Response{Status: 204},
					Want: sdk.RespondDecision{SetHeader: map[string]string{
						"X-Plugin-Status": "204", "X-Plugin-Build": "1", "X-Plugin-Pid": strconv.Itoa(p.Pid()),
						"X-Plugin-Validated-By": "1", "X-Plugin-Labels": "user=u1", "X-Plugin-Body": "", "X-Plugin-Truncated": "",
					}}},
			})
		})
	}
}
