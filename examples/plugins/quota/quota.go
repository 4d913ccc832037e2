package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/plugin"
)

// Config is the plugin's configuration (plugins[].config in the gateway's configuration, as JSON).
type Config struct {
	// Tiers maps a tier label to its shaping.
	Tiers map[string]Shaping `json:"tiers"`
	// Anonymous shapes requests without a user label (or with an unknown
	// tier). Default: priority degraded, cost 1.
	Anonymous *Shaping `json:"anonymous"`
	// QuotaFile lists per-user overrides, one per line: "USER TIER" moves
	// a user to another tier, "USER over" turns the user away (429). It is
	// read again when it changes (checked every second); a version that
	// does not parse is logged and the previous one kept.
	QuotaFile string `json:"quota_file"`
}

// Shaping is what a tier gets.
type Shaping struct {
	// Priority is "bulk", "degraded", "default" or "critical".
	Priority string `json:"priority"`
	// Cost is the tokens a request takes from its rate bucket; default 1.
	Cost int `json:"cost"`
}

type shaping struct {
	priority sdk.Priority
	cost     int
}

// cacheTTL bounds how long the gateway reuses a decision: a change of the
// quota file reaches requests within it (after the plugin reloads).
const cacheTTL = 10 * time.Second

// quota shapes requests by tier.
type quota struct {
	tiers     map[string]shaping
	anonymous shaping
	overrides atomic.Pointer[map[string]string] // user -> tier or "over"
	file      string
	modified  time.Time
}

// Configure implements plugin.Configurer.
func (q *quota) Configure(_ context.Context, raw []byte) error {
	var c Config
	if len(raw) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return fmt.Errorf("quota config: %w", err)
		}
	}
	conv := func(name string, s Shaping) (shaping, error) {
		p, err := sdk.ParsePriority(s.Priority)
		if err != nil || p == sdk.PriorityUnset {
			return shaping{}, fmt.Errorf("quota config: %s: priority %q: want bulk, degraded, default or critical", name, s.Priority)
		}
		if s.Cost < 0 {
			return shaping{}, fmt.Errorf("quota config: %s: negative cost", name)
		}
		return shaping{priority: p, cost: max(s.Cost, 1)}, nil
	}
	q.tiers = map[string]shaping{}
	for name, s := range c.Tiers {
		sh, err := conv("tiers."+name, s)
		if err != nil {
			return err
		}
		q.tiers[name] = sh
	}
	q.anonymous = shaping{priority: sdk.PriorityDegraded, cost: 1}
	if c.Anonymous != nil {
		sh, err := conv("anonymous", *c.Anonymous)
		if err != nil {
			return err
		}
		q.anonymous = sh
	}
	q.overrides.Store(&map[string]string{})
	if q.file = c.QuotaFile; q.file != "" {
		if err := q.load(); err != nil {
			return fmt.Errorf("quota config: %w", err)
		}
		go func() {
			for range time.Tick(time.Second) {
				if err := q.load(); err != nil {
					log.Printf("quota file not reloaded: %v", err)
				}
			}
		}()
	}
	return nil
}

// load reads the quota file if it changed since the last load.
func (q *quota) load() error {
	fi, err := os.Stat(q.file)
	if err != nil {
		return fmt.Errorf("quota_file: %w", err)
	}
	if fi.ModTime().Equal(q.modified) {
		return nil
	}
	b, err := os.ReadFile(q.file)
	if err != nil {
		return fmt.Errorf("quota_file: %w", err)
	}
	m := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return fmt.Errorf("%s:%d: want USER TIER or USER over", q.file, i+1)
		}
		m[f[0]] = f[1]
	}
	q.overrides.Store(&m)
	q.modified = fi.ModTime()
	return nil
}

// Shape implements sdk.Shaper.
func (q *quota) Shape(ctx context.Context, req *sdk.Request) (sdk.ShapeDecision, error) {
	user, tier := req.Labels["user"], req.Labels["tier"]
	if user == "" {
		// The rate key is the client's address: cache per address.
		if err := plugin.CacheFor(ctx, cacheTTL, "label:user", "label:tier", "client_ip"); err != nil {
			return sdk.ShapeDecision{}, err
		}
		return sdk.ShapeDecision{Priority: q.anonymous.priority, RateKey: "ip:" + req.ClientIP, Cost: q.anonymous.cost}, nil
	}
	// The decision depends on the user and tier labels only.
	if err := plugin.CacheFor(ctx, cacheTTL, "label:user", "label:tier"); err != nil {
		return sdk.ShapeDecision{}, err
	}
	switch o := (*q.overrides.Load())[user]; o {
	case "":
	case "over":
		return sdk.ShapeDecision{Reject: &sdk.Reject{Status: 429, Header: map[string]string{"Retry-After": "60"}, Body: "quota exceeded\n"}}, nil
	default:
		tier = o
	}
	sh, ok := q.tiers[tier]
	if !ok {
		sh = q.anonymous
	}
	return sdk.ShapeDecision{Priority: sh.priority, RateKey: "user:" + user, Cost: sh.cost, Labels: map[string]string{"quota_tier": tier}}, nil
}
