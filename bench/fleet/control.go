package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Handler is the fleet's control API, served on its own loopback address:
//
//	GET  /healthz  200 once the endpoints listen
//	POST /run      body: a Plan as JSON; starts it (see Fleet.Run)
//	POST /stop     ends the plan, every endpoint back to ModeOK
//	GET  /stats    the current run's Stats as JSON
func Handler(f *Fleet) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		var p Plan
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			http.Error(w, "plan: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := f.Run(p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		if err := f.Stop(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(f.Snapshot())
	})
	return mux
}

// Client drives a fleet process through its control API.
type Client struct {
	// Addr is the control API's host:port.
	Addr string
}

func (c Client) do(ctx context.Context, method, path string, body any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, rd)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fleet %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("fleet %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fleet %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Run starts p on the fleet.
func (c Client) Run(ctx context.Context, p Plan) error {
	return c.do(ctx, http.MethodPost, "/run", p, nil)
}

// Stop ends the fleet's plan.
func (c Client) Stop(ctx context.Context) error { return c.do(ctx, http.MethodPost, "/stop", nil, nil) }

// Stats returns the current run's counts.
func (c Client) Stats(ctx context.Context) (*Stats, error) {
	var s Stats
	if err := c.do(ctx, http.MethodGet, "/stats", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Healthy reports whether the control API answers.
func (c Client) Healthy(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}
