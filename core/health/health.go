// Package health runs active health checks on a service's endpoints: every
// Interval it sends each endpoint "GET http://addr/path" with its own
// client, bounded by Timeout, and marks the endpoint down after Unhealthy
// failed checks in a row and up again after Healthy good ones. Balancers
// skip endpoints marked down, unless all are: then they use them all, so a
// broken health check cannot take a whole service off the air.
//
// Every wait and read is bounded: the connect, the request and the response
// head by Timeout, the response body by MaxBodyBytes (the rest is not read
// and the connection is dropped), and the checker's goroutines (one per
// endpoint) by Close.
package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/core/balance"
)

// Options configure a Checker. All fields but OnChange are required; there
// is no "0 means unlimited". DefaultOptions has the documented defaults.
type Options struct {
	// Path is the path (and optional query) checked, starting with "/".
	// Default "/healthz".
	Path string
	// Interval is the time between the starts of two checks of an
	// endpoint. Default 5s.
	Interval time.Duration
	// Timeout bounds one check: connect, request, response head and the
	// part of the body read. Default 1s; a check that takes longer fails.
	// When a check takes longer than Interval the next starts at once:
	// checks of one endpoint never overlap.
	Timeout time.Duration
	// Healthy is the number of good checks in a row that mark a down
	// endpoint up. Default 2.
	Healthy int
	// Unhealthy is the number of failed checks in a row that mark an up
	// endpoint down. Default 3.
	Unhealthy int
	// OnChange, if set, is called after an endpoint is marked up or down,
	// from the checker's goroutine; it must not block.
	OnChange func(ep *balance.Endpoint, healthy bool)
}

// DefaultOptions returns the defaults documented on each field.
func DefaultOptions() Options {
	return Options{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, Healthy: 2, Unhealthy: 3}
}

// MaxBodyBytes is the most of a check's response body read; a good check
// needs a 2xx status, the body only lets the connection be reused.
const MaxBodyBytes = 4 << 10

// Validate reports the first invalid option, naming its config key.
func (o Options) Validate() error {
	switch {
	case !strings.HasPrefix(o.Path, "/") || strings.ContainsAny(o.Path, " \t\r\n#"):
		return fmt.Errorf("health_check.path must start with \"/\" and hold no spaces or fragment; got %q", o.Path)
	case o.Interval <= 0:
		return fmt.Errorf("health_check.interval must be positive; got %v", o.Interval)
	case o.Timeout <= 0:
		return fmt.Errorf("health_check.timeout must be positive; got %v", o.Timeout)
	case o.Healthy <= 0:
		return fmt.Errorf("health_check.healthy must be positive; got %d", o.Healthy)
	case o.Unhealthy <= 0:
		return fmt.Errorf("health_check.unhealthy must be positive; got %d", o.Unhealthy)
	}
	return nil
}

// Checker checks a fixed set of endpoints until Close.
type Checker struct {
	o      Options
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates o and starts checking eps at once: the first checks are
// spread evenly over the first Interval. Endpoints keep their current mark
// (new endpoints start up) until the thresholds say otherwise.
func New(eps []*balance.Endpoint, o Options) (*Checker, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: o.Timeout}
	tr := &http.Transport{
		Proxy:                  nil, // never through an environment proxy
		DialContext:            dialer.DialContext,
		ResponseHeaderTimeout:  o.Timeout,
		MaxIdleConnsPerHost:    1,
		IdleConnTimeout:        2 * o.Interval,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
	}
	c := &Checker{
		o: o,
		client: &http.Client{
			Transport: tr,
			Timeout:   o.Timeout,
			// A redirect is an answer, not something to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i, ep := range eps {
		c.wg.Add(1)
		go c.loop(ep, o.Interval*time.Duration(i)/time.Duration(len(eps)))
	}
	return c, nil
}

// Close stops the checks, waits for the checker's goroutines to end and
// closes its connections. Marks stay as they are.
func (c *Checker) Close() {
	c.cancel()
	c.wg.Wait()
	c.client.CloseIdleConnections()
}

// loop checks ep every Interval after a first delay, until Close.
func (c *Checker) loop(ep *balance.Endpoint, delay time.Duration) {
	defer c.wg.Done()
	t := time.NewTimer(delay)
	defer t.Stop()
	good, bad := 0, 0
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		ok := c.check(ep.Addr)
		if c.ctx.Err() != nil {
			return // a check cut by Close says nothing about the endpoint
		}
		if ok {
			good, bad = good+1, 0
		} else {
			good, bad = 0, bad+1
		}
		switch up := ep.Healthy(); {
		case !up && good >= c.o.Healthy:
			c.mark(ep, true)
		case up && bad >= c.o.Unhealthy:
			c.mark(ep, false)
		}
		t.Reset(max(c.o.Interval-time.Since(start), 0))
	}
}

func (c *Checker) mark(ep *balance.Endpoint, up bool) {
	ep.SetHealthy(up)
	if c.o.OnChange != nil {
		c.o.OnChange(ep, up)
	}
}

// check sends one request; true for a 2xx answer within Timeout.
func (c *Checker) check(addr string) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+c.o.Path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "gatehouse-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		return false
	}
	// The status decides. Reading a small body lets the connection be
	// reused; closing a body not read to its end drops the connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBodyBytes))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}
