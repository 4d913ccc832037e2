package gatehouse

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
)

// failing is a validate hook returning err, as a plugin host's hook does.
type failing struct{ err error }

func (f failing) Validate(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
	return sdk.ValidateDecision{}, f.err
}

// TestPluginFailureKinds pins the bug where a plugin over its max_concurrent
// was counted as overloaded by the plugin's metrics but as an error by the
// binding's (gatehouse_hook_failures_total): a plugin call's failure is
// counted, and stamped, under the hook kind that matches the plugin's.
func TestPluginFailureKinds(t *testing.T) {
	for _, tc := range []struct {
		kind wire.Kind
		want hook.FailureKind
	}{
		{wire.KindOverloaded, hook.FailOverloaded},
		{wire.KindTimeout, hook.FailTimeout},
		{wire.KindUnavailable, hook.FailUnavailable},
		{wire.KindInvalid, hook.FailInvalid},
		{wire.KindPlugin, hook.FailError},
		{wire.KindTooLarge, hook.FailError},
		{wire.KindTransport, hook.FailError},
	} {
		err := fmt.Errorf("call: %w", &wire.Error{Kind: tc.kind, Err: errors.New("x")})
		v := hook.NewVersion("p", failing{err}, "1")
		v.Wait = true
		b := &hook.Binding{Name: "p", Source: hook.Static{V: v}, Budget: time.Second, MaxConcurrent: 4, Policy: hook.Policy{Open: true}}
		ch := &hook.Chain{Bindings: []*hook.Binding{b}, Log: zerolog.Nop()}
		var s hook.Snapshot
		ch.Begin(&s)
		ch.Validate(context.Background(), &s, nopStamper{}, &sdk.Request{}, time.Now().Add(time.Second))
		if got := b.Totals().Failures; got[tc.want] != 1 {
			t.Errorf("plugin failure %s: binding counted %v, want one %s", tc.kind, got, tc.want)
		}
		if fs := s.Failures(); len(fs) != 1 || fs[0].Kind != tc.want {
			t.Errorf("plugin failure %s: recorded %+v", tc.kind, fs)
		}
	}
	if _, ok := pluginErrorKind(errors.New("not a plugin's")); ok {
		t.Error("an error of no plugin classified as a plugin's")
	}
}

type nopStamper struct{}

func (nopStamper) Hook(bool, string) {}
