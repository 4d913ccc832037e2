package sdk

import "context"

// Validator is implemented by hooks that take part in the validate phase.
//
// Validate is called once per request, before any upstream work, with a
// context whose deadline is min(the binding's budget, the time left in the
// request). It returns a decision, or an error to invoke the binding's
// failure policy.
type Validator interface {
	Validate(ctx context.Context, req *Request) (ValidateDecision, error)
}

// Shaper is implemented by hooks that take part in the shape phase.
//
// Shape runs after validate (req.Labels holds the labels validate added) and
// before admission: the core, not the hook, decides who waits and who is
// shed; the hook only says who matters.
type Shaper interface {
	Shape(ctx context.Context, req *Request) (ShapeDecision, error)
}

// Router is implemented by hooks that take part in the route phase.
type Router interface {
	Route(ctx context.Context, req *Request) (RouteDecision, error)
}

// Responder is implemented by hooks that take part in the respond phase. It
// sees the response status and headers before they are sent to the client.
type Responder interface {
	Respond(ctx context.Context, req *Request, resp *Response) (RespondDecision, error)
}

// Observer is implemented by hooks that take part in the observe phase.
// Observe runs after the response is finished; it cannot delay or change it,
// and it has no error to return: an observer handles its own failures.
type Observer interface {
	Observe(ctx context.Context, obs *Observation)
}
