package sdk_test

import (
	"context"
	"fmt"

	"github.com/gatehouse/gatehouse/sdk"
)

// apiKeys is a Go hook taking part in the validate and shape phases.
type apiKeys struct{ tenants map[string]string } // key -> tenant

func (h apiKeys) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	tenant, ok := h.tenants[req.Header.Get("X-Api-Key")]
	if !ok {
		return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 401, Body: "missing or unknown API key"}}, nil
	}
	return sdk.ValidateDecision{Labels: map[string]string{"tenant": tenant}}, nil
}

func (h apiKeys) Shape(ctx context.Context, req *sdk.Request) (sdk.ShapeDecision, error) {
	return sdk.ShapeDecision{RateKey: "tenant:" + req.Labels["tenant"], Cost: 1}, nil
}

func Example() {
	hook := apiKeys{tenants: map[string]string{"k-123": "acme"}}
	fmt.Println(sdk.PhasesOf(hook))

	req := &sdk.Request{Method: "GET", Path: "/v1/orders", Header: sdk.Header{"X-Api-Key": {"k-123"}}}
	d, _ := hook.Validate(context.Background(), req)
	fmt.Println(d.Reject == nil, d.Labels["tenant"])

	d, _ = hook.Validate(context.Background(), &sdk.Request{Header: sdk.Header{}})
	fmt.Println(d.Reject.Status, d.Reject.Body)
	// Output:
	// validate|shape
	// true acme
	// 401 missing or unknown API key
}
