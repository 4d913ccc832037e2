package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/plugin"
)

// Config is the plugin's configuration (plugins[].config in the gateway's configuration, as JSON).
type Config struct {
	// Secret is the HMAC-SHA256 key of bearer tokens; SecretFile reads it
	// from a file instead (trailing newline ignored). One is required.
	Secret     string `json:"secret"`
	SecretFile string `json:"secret_file"`
	// KeysFile lists API keys, one per line: "KEY USER TIER" ("#" starts a
	// comment). Optional.
	KeysFile string `json:"keys_file"`
	// Rules restrict path prefixes to tiers: a request whose path starts
	// with a rule's prefix needs one of its tiers (403 otherwise). The
	// first matching rule applies.
	Rules []Rule `json:"rules"`
	// CacheTTL is how long the gateway may reuse a decision for the same
	// credentials (and path, when there are rules). Default 30s; "0s" or a
	// negative value turns caching off.
	CacheTTL string `json:"cache_ttl"`
}

// Rule gives the tiers allowed under a path prefix.
type Rule struct {
	PathPrefix string   `json:"path_prefix"`
	Tiers      []string `json:"tiers"`
}

// identity is who the credentials name.
type identity struct{ user, tier string }

// authz validates HMAC-signed bearer tokens (JWT, HS256) and API keys,
// labels the request with user and tier, and denies with 401 (no or bad
// credentials) or 403 (a tier not allowed on the path).
type authz struct {
	secret   []byte
	keys     map[[32]byte]identity // by SHA-256 of the key
	rules    []Rule
	cacheTTL time.Duration
	now      func() time.Time
}

// Configure implements plugin.Configurer.
func (a *authz) Configure(_ context.Context, raw []byte) error {
	var c Config
	if len(raw) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return fmt.Errorf("authz config: %w", err)
		}
	}
	switch {
	case c.Secret != "" && c.SecretFile != "":
		return errors.New("authz config: secret and secret_file are exclusive")
	case c.SecretFile != "":
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return fmt.Errorf("authz config: secret_file: %w", err)
		}
		a.secret = []byte(strings.TrimRight(string(b), "\r\n"))
	default:
		a.secret = []byte(c.Secret)
	}
	if len(a.secret) < 16 {
		return errors.New("authz config: the HMAC secret must be at least 16 bytes")
	}
	a.keys = map[[32]byte]identity{}
	if c.KeysFile != "" {
		b, err := os.ReadFile(c.KeysFile)
		if err != nil {
			return fmt.Errorf("authz config: keys_file: %w", err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			line, _, _ = strings.Cut(line, "#")
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if len(f) != 3 {
				return fmt.Errorf("authz config: %s:%d: want KEY USER TIER", c.KeysFile, i+1)
			}
			a.keys[sha256.Sum256([]byte(f[0]))] = identity{user: f[1], tier: f[2]}
		}
	}
	for _, r := range c.Rules {
		if !strings.HasPrefix(r.PathPrefix, "/") || len(r.Tiers) == 0 {
			return fmt.Errorf("authz config: rule %+v: want a path_prefix starting with / and tiers", r)
		}
	}
	a.rules = c.Rules
	a.cacheTTL = 30 * time.Second
	if c.CacheTTL != "" {
		d, err := time.ParseDuration(c.CacheTTL)
		if err != nil {
			return fmt.Errorf("authz config: cache_ttl: %w", err)
		}
		a.cacheTTL = d
	}
	if a.now == nil {
		a.now = time.Now
	}
	return nil
}

func unauthorized(why string) sdk.ValidateDecision {
	return sdk.ValidateDecision{Reject: &sdk.Reject{
		Status: 401, Header: map[string]string{"WWW-Authenticate": `Bearer realm="gatehouse"`}, Body: why + "\n",
	}}
}

// Validate implements sdk.Validator.
func (a *authz) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	id, expires, why := a.identify(req)
	if why != "" {
		return unauthorized(why), nil
	}
	if ttl := min(a.cacheTTL, expires.Sub(a.now())); ttl > 0 {
		vary := []string{"header:Authorization", "header:X-Api-Key"}
		if len(a.rules) > 0 {
			vary = append(vary, "path")
		}
		if err := plugin.CacheFor(ctx, ttl, vary...); err != nil {
			return sdk.ValidateDecision{}, err
		}
	}
	for _, r := range a.rules {
		if strings.HasPrefix(req.Path, r.PathPrefix) {
			allowed := false
			for _, t := range r.Tiers {
				allowed = allowed || t == id.tier
			}
			if !allowed {
				return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 403, Body: "tier " + id.tier + " may not use " + r.PathPrefix + "\n"}}, nil
			}
			break
		}
	}
	return sdk.ValidateDecision{Labels: map[string]string{"user": id.user, "tier": id.tier}}, nil
}

// identify returns who the request's credentials name and until when, or
// why they are refused.
func (a *authz) identify(req *sdk.Request) (identity, time.Time, string) {
	if key := req.Header.Get("X-Api-Key"); key != "" {
		id, ok := a.keys[sha256.Sum256([]byte(key))]
		if !ok {
			return identity{}, time.Time{}, "unknown API key"
		}
		return id, a.now().Add(24 * time.Hour), ""
	}
	auth := req.Header.Get("Authorization")
	if auth == "" {
		return identity{}, time.Time{}, "missing credentials (Authorization: Bearer or X-Api-Key)"
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return identity{}, time.Time{}, "unsupported authorization scheme"
	}
	claims, err := a.verify(strings.TrimSpace(token))
	if err != nil {
		return identity{}, time.Time{}, "invalid token: " + err.Error()
	}
	return identity{user: claims.Sub, tier: claims.Tier}, time.Unix(claims.Exp, 0), ""
}

// Claims are the token's claims the plugin reads.
type Claims struct {
	Sub  string `json:"sub"`
	Tier string `json:"tier"`
	Exp  int64  `json:"exp"`
	Nbf  int64  `json:"nbf,omitempty"`
}

var b64 = base64.RawURLEncoding

// verify checks a JWT signed with HS256 and returns its claims.
func (a *authz) verify(token string) (Claims, error) {
	var c Claims
	if len(token) > 4096 {
		return c, errors.New("too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("not a JWT")
	}
	head, err := b64.DecodeString(parts[0])
	if err != nil {
		return c, errors.New("bad header encoding")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(head, &h) != nil || h.Alg != "HS256" {
		return c, errors.New("algorithm must be HS256")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return c, errors.New("bad signature encoding")
	}
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if subtle.ConstantTimeCompare(sig, mac.Sum(nil)) != 1 {
		return c, errors.New("bad signature")
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, errors.New("bad claims")
	}
	now := a.now().Unix()
	switch {
	case c.Sub == "" || c.Tier == "":
		return c, errors.New("sub and tier are required")
	case c.Exp == 0 || now >= c.Exp:
		return c, errors.New("expired")
	case c.Nbf != 0 && now < c.Nbf:
		return c, errors.New("not yet valid")
	}
	return c, nil
}

// Sign returns a token for claims under secret (for tests and tools).
func Sign(secret []byte, c Claims) string {
	head := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(c)
	msg := head + "." + b64.EncodeToString(body)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(msg))
	return msg + "." + b64.EncodeToString(mac.Sum(nil))
}
