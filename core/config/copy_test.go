package config

import (
	"strings"
	"testing"
)

func TestSecretKey(t *testing.T) {
	for name, want := range map[string]bool{
		"secret": true, "Secret": true, "clientSecret": true, "client_secret": true, "token": true, "AccessToken": true,
		"password": true, "db_password": true, "PASSWD": true, "pwd": true, "key": true, "api_key": true, "apiKey": true,
		"x-api-key": true, "APIKEY": true, "signing.key": true, "credentials": true, "private_key": true, "PrivateKey": true,
		"auth": true, "authorization": true, "auth_secret": true,
		"header": false, "name": false, "timeout": false, "monkey": false, "max_query_length": false, "issuer": false,
		"audience": false, "path": false, "status": false, "secret_file": false, "keys_file": false, "auth_header": false,
		"tokenName": false, "private_key_path": false, "file_secret": true,
	} {
		if got := SecretKey(name); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestRedactedHidesEverySecret pins the bug where only admin.token and
// plugin env were masked: plugin, script and hook binding config blobs, plugin
// arguments and URL credentials were shown in clear by /admin/config.
func TestRedactedHidesEverySecret(t *testing.T) {
	c := Default()
	c.Admin.Token = "tok-admin-1"
	c.Redis.Address = "redis://app:pw-redis-2@10.0.0.5:6379"
	c.Observe.Tracing.Endpoint = "https://ingest:pw-otlp-3@collector.example:4318/v1/traces?api_key=qk-otlp-4&region=eu"
	c.Plugins = []Plugin{{Name: "authz", Path: "/bin/authz",
		Args: []string{"--secret=arg-5", "--token", "arg-6", "--verbose", "--issuer=https://idp"},
		Env:  []string{"AUTHZ_KEY=env-7", "LOG=debug"},
		Config: map[string]any{"secret": "cfg-8", "issuer": "https://idp", "ttl": "5m",
			"upstream": map[string]any{"url": "https://svc:pw-nested-9@auth.internal", "clientSecret": "cfg-10",
				"keys": []any{"k-11", "k-12"}},
			"tenants":  []any{map[string]any{"name": "acme", "api_key": "cfg-13"}},
			"password": "", "auth_enabled": true}}}
	c.Scripts = []Script{{Name: "gate", File: "gate.js", Config: map[string]any{"hmacSecret": "js-14", "maxQueryLength": 2048,
		"header": "Bearer js-15"}}}
	c.Hooks = []HookBinding{{Go: "require_header", Config: map[string]any{"header": "X-Key", "token": "go-16"}}}
	c.Routes = []Route{{Name: "r", Service: "s", Hooks: []HookBinding{{Go: "require_header", Config: map[string]any{
		"credentials": map[string]any{"user": "u", "pass": "go-17"}}}}}}
	orig := c.Clone()

	r := c.Redacted()
	out := dump(t, r)
	for _, secret := range []string{"tok-admin-1", "pw-redis-2", "pw-otlp-3", "qk-otlp-4", "arg-5", "arg-6", "env-7",
		"cfg-8", "pw-nested-9", "cfg-10", "k-11", "k-12", "cfg-13", "js-14", "js-15", "go-16", "go-17"} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted configuration shows %q:\n%s", secret, out)
		}
	}
	// What is not secret stays, and so do the names of the secret keys.
	for _, shown := range []string{"issuer: https://idp", "ttl: 5m", "maxQueryLength: 2048", "header: X-Key", "name: acme",
		"secret: REDACTED", "clientSecret: REDACTED", "hmacSecret: REDACTED", "token: REDACTED", "api_key: REDACTED",
		"auth_enabled: true", `password: ""`, "AUTHZ_KEY=REDACTED", "LOG=REDACTED", "--verbose", "--issuer=https://idp",
		"redis://app:REDACTED@10.0.0.5:6379", "collector.example:4318/v1/traces", "region=eu", "user: REDACTED",
		"header: Bearer REDACTED"} {
		if !strings.Contains(out, shown) {
			t.Errorf("redacted configuration lacks %q:\n%s", shown, out)
		}
	}
	if !c.Equal(orig) {
		t.Error("Redacted changed the configuration it copied")
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:6379":                  "127.0.0.1:6379",
		"user:pw@10.0.0.1:6379":           "REDACTED@10.0.0.1:6379",
		"redis://:pw@h:6379/0":            "redis://:REDACTED@h:6379/0",
		"redis://tokenonly@h:6379":        "redis://REDACTED@h:6379",
		"http://127.0.0.1:4318/v1/traces": "http://127.0.0.1:4318/v1/traces",
		"http://h/v1/traces?token=t&x=1":  "http://h/v1/traces?token=REDACTED&x=1",
		"https://a:b@h:4318/%zz":          "https://REDACTED@h:4318/%zz",
		"":                                "",
		"see a:b@c for details":           "see a:b@c for details",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
