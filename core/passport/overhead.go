package passport

import "time"

// Waiting returns the time the request spent waiting on someone else, taken
// from the stamps alone:
//
//   - the client sending its headers (ACCEPTED → HEADERS_READ);
//   - dialing a new upstream connection (ENDPOINT_PICKED → CONN_ACQUIRED(new));
//   - each upstream attempt, from REQ_HEADERS_SENT until response headers
//     arrive or the attempt ends (the upload runs inside this window);
//   - streaming the response body (RESPONDED → RESP_BODY_SENT or the end),
//     which waits on the endpoint sending and the client reading;
//   - the body of an upgraded connection (UPGRADED → end);
//   - hooks whose exit note ends in "+wait" (out-of-process calls): enter → exit.
func (p *Passport) Waiting() time.Duration {
	var wait time.Duration
	var from time.Duration
	var open State // the state that opened the current waiting interval, or Invalid
	var hookFrom time.Duration
	for i := 0; i < p.Len(); i++ {
		st := p.At(i)
		if open != Invalid {
			if end, count := closes(open, st); end {
				if count {
					wait += st.Offset - from
				}
				open = Invalid
			}
		}
		switch st.State {
		case Accepted, ReqHeadersSent, Responded, Upgraded, EndpointPicked:
			if open == Invalid {
				open, from = st.State, st.Offset
			}
		case HookEnter:
			hookFrom = st.Offset
		case HookExit:
			if n := st.Note; len(n) > 5 && n[len(n)-5:] == "+wait" {
				wait += st.Offset - hookFrom
			}
		}
	}
	return wait
}

// closes reports whether stamp st ends the interval opened by state open,
// and whether that interval counts as waiting.
func closes(open State, st Stamp) (end, count bool) {
	switch open {
	case Accepted:
		end = st.State == HeadersRead || st.State == Failed
	case EndpointPicked:
		if st.State == ConnAcquired {
			return true, st.Note == "new"
		}
		end = st.State == AttemptFailed || st.State == Failed
	case ReqHeadersSent:
		end = st.State == RespHeadersReceived || st.State == AttemptFailed || st.State == Failed
	case Responded, Upgraded:
		end = st.State == RespBodySent || st.State == Done || st.State == Failed
	}
	return end, end
}

// Overhead is the time the gateway itself added: Total minus Waiting. Its
// p99.9 is one of the three numbers an operator alerts on.
func (p *Passport) Overhead() time.Duration {
	o := p.Total() - p.Waiting()
	if o < 0 {
		return 0
	}
	return o
}
