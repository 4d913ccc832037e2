package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Clone returns a deep copy of c: changing one does not change the other.
// The copy keeps c's source positions.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := *c
	n.Listeners = slices.Clone(c.Listeners)
	for i, l := range n.Listeners {
		if l.TLS != nil {
			tls := *l.TLS
			n.Listeners[i].TLS = &tls
		}
	}
	n.Services = slices.Clone(c.Services)
	for i := range n.Services {
		n.Services[i].Endpoints = slices.Clone(n.Services[i].Endpoints)
	}
	n.Routes = slices.Clone(c.Routes)
	for i := range n.Routes {
		n.Routes[i].Match.Methods = slices.Clone(n.Routes[i].Match.Methods)
		n.Routes[i].Hooks = cloneBindings(n.Routes[i].Hooks)
		if rl := n.Routes[i].RateLimit; rl != nil {
			c := *rl
			n.Routes[i].RateLimit = &c
		}
	}
	n.Scripts = slices.Clone(c.Scripts)
	for i := range n.Scripts {
		n.Scripts[i].Config = cloneFree(n.Scripts[i].Config)
	}
	n.Plugins = slices.Clone(c.Plugins)
	for i := range n.Plugins {
		n.Plugins[i].Args = slices.Clone(n.Plugins[i].Args)
		n.Plugins[i].Env = slices.Clone(n.Plugins[i].Env)
		n.Plugins[i].Config = cloneFree(n.Plugins[i].Config)
	}
	n.Hooks = cloneBindings(c.Hooks)
	return &n
}

func cloneBindings(bs []HookBinding) []HookBinding {
	out := slices.Clone(bs)
	for i := range out {
		out[i].Phases = slices.Clone(out[i].Phases)
		out[i].Config = cloneFree(out[i].Config)
	}
	return out
}

// cloneFree deep-copies free-form configuration (maps, lists, scalars).
func cloneFree(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneAny(v)
	}
	return out
}

func cloneAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneFree(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneAny(e)
		}
		return out
	}
	return v
}

// Redacted returns a deep copy of c with its secrets replaced by
// "REDACTED", for /admin/config: admin.token; every value of every plugin's
// env; the values under secret-looking keys (see SecretKey) anywhere in the
// free-form config of plugins, scripts and hook bindings, and in
// "--secret=value" plugin arguments; and the password in any URL-like
// setting or config string (redis.address, observe.tracing.endpoint,
// "scheme://user:pass@host"). An empty secret stays empty, so that the copy
// still shows that none is set; key names are always kept. Collector
// headers for OTLP come from the environment (OTEL_EXPORTER_OTLP_HEADERS),
// never from the configuration, so they cannot show here.
func (c *Config) Redacted() *Config {
	n := c.Clone()
	if n == nil {
		return nil
	}
	if n.Admin.Token != "" {
		n.Admin.Token = Redaction
	}
	n.Redis.Address = redactURL(n.Redis.Address)
	n.Observe.Tracing.Endpoint = redactURL(n.Observe.Tracing.Endpoint)
	for i := range n.Plugins {
		p := &n.Plugins[i]
		// A plugin's environment is where its secrets go: hide every value.
		for j, kv := range p.Env {
			k, _, _ := strings.Cut(kv, "=")
			p.Env[j] = k + "=" + Redaction
		}
		redactArgs(p.Args)
		redactFree(p.Config)
	}
	for i := range n.Scripts {
		redactFree(n.Scripts[i].Config)
	}
	for i := range n.Hooks {
		redactFree(n.Hooks[i].Config)
	}
	for i := range n.Routes {
		for j := range n.Routes[i].Hooks {
			redactFree(n.Routes[i].Hooks[j].Config)
		}
	}
	return n
}

// Redaction replaces a secret in Redacted.
const Redaction = "REDACTED"

// secretWords are the parts of a key name that mark its value secret.
var secretWords = []string{"secret", "token", "password", "passwd", "passphrase", "pwd", "key", "apikey",
	"credential", "private", "auth", "signature"}

// SecretKey reports whether a configuration key's name says its value is a
// secret: one of its words (split at "_", "-", ".", spaces and lower-upper
// case changes, compared case-insensitively) is or starts with a word such
// as secret, token, password, passwd, key, credential, private or auth, or
// the whole name contains one of secret, token, password, passwd, apikey,
// credential or private ("clientSecret", "x-api-key", "db_password",
// "PRIVATEKEY"). It errs on the side of hiding, except for names whose
// last word says the value only points at or names a secret ("secret_file",
// "keys_path", "auth_header", "token_name"): those stay shown.
func SecretKey(name string) bool {
	words := keyWords(name)
	if n := len(words); n > 1 && slices.Contains([]string{"file", "path", "dir", "header", "name"}, words[n-1]) {
		return false
	}
	lower := strings.ToLower(name)
	for _, w := range []string{"secret", "token", "password", "passwd", "apikey", "credential", "private"} {
		if strings.Contains(lower, w) {
			return true
		}
	}
	for _, w := range words {
		for _, s := range secretWords {
			if strings.HasPrefix(w, s) {
				return true
			}
		}
	}
	return false
}

// keyWords splits a key name into lower-case words.
func keyWords(name string) []string {
	var words []string
	start := 0
	rs := []rune(name)
	flush := func(end int) {
		if end > start {
			words = append(words, strings.ToLower(string(rs[start:end])))
		}
	}
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ' ' || r == '/' || r == ':':
			flush(i)
			start = i + 1
		case i > 0 && unicode.IsUpper(r) && unicode.IsLower(rs[i-1]):
			flush(i)
			start = i
		}
	}
	flush(len(rs))
	return words
}

// redactFree redacts, in place, the values under secret keys in free-form
// configuration (recursively through maps and lists), and URL passwords
// and credential-looking strings ("Bearer …", "Basic …") everywhere in it.
func redactFree(m map[string]any) {
	for k, v := range m {
		if SecretKey(k) {
			m[k] = redactValue(v)
			continue
		}
		m[k] = redactNested(v)
	}
}

func redactNested(v any) any {
	switch x := v.(type) {
	case map[string]any:
		redactFree(x)
	case []any:
		for i, e := range x {
			x[i] = redactNested(e)
		}
	case string:
		return redactString(x)
	}
	return v
}

// redactValue hides a value under a secret key: a non-empty scalar becomes
// Redaction, and so does every leaf of a map or list (keys kept). Booleans
// say whether something is on, not what it is, and are kept; so are empty
// values, which show that no secret is set.
func redactValue(v any) any {
	switch x := v.(type) {
	case nil, bool:
		return v
	case string:
		if x == "" {
			return x
		}
	case map[string]any:
		for k, e := range x {
			x[k] = redactValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = redactValue(e)
		}
		return x
	}
	return Redaction
}

// redactString hides the credentials a string carries in itself: a URL's
// password, an HTTP credential.
func redactString(s string) string {
	for _, scheme := range []string{"Bearer ", "Basic ", "Token "} {
		if len(s) > len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			return s[:len(scheme)] + Redaction
		}
	}
	return redactURL(s)
}

// redactURL replaces the user information of a URL ("redis://user:pass@host")
// and the values of secret-looking query parameters; other strings are
// returned as they are.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		// "user:pass@host:port" without a scheme.
		if at := strings.LastIndex(s, "@"); at > 0 && !strings.ContainsAny(s, "/ \t\n") && strings.Contains(s[:at], ":") {
			return Redaction + s[at:]
		}
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: hide whatever sits between the scheme and an "@".
		if i, at := strings.Index(s, "://"), strings.LastIndex(s, "@"); at > i+3 {
			return s[:i+3] + Redaction + s[at:]
		}
		return s
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redaction)
		} else {
			u.User = url.User(Redaction)
		}
		changed = true
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if SecretKey(k) {
				for i := range vs {
					vs[i] = Redaction
				}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return s
	}
	return u.String()
}

// redactArgs hides, in place, the values of secret-looking flags in a
// plugin's arguments: "--token=x" and "--token x".
func redactArgs(args []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			args[i] = redactString(a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !SecretKey(name) {
			if hasVal {
				args[i] = a[:len(a)-len(val)] + redactString(val)
			}
			continue
		}
		if hasVal {
			if val != "" {
				args[i] = a[:len(a)-len(val)] + Redaction
			}
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			args[i+1] = Redaction
			i++
		}
	}
}

// Hash identifies c's settings: configurations Equal reports equal have
// the same hash (12 hex digits of a SHA-256 over the settings written as
// YAML). Operators compare it across instances (gatehouse_config_info).
func (c *Config) Hash() string {
	if c == nil {
		return ""
	}
	a := c.settings()
	out, err := yaml.Marshal(a)
	if err != nil {
		out = fmt.Appendf(nil, "%#v", a)
	}
	sum := sha256.Sum256(out)
	return hex.EncodeToString(sum[:6])
}

// Equal reports whether c and o hold the same settings. Source and source
// positions are ignored, and an empty list equals an absent one. File paths
// are compared as resolved (see Load), not as written.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	return reflect.DeepEqual(c.settings(), o.settings())
}

// settings is a copy of c with only its settings: no source, positions or
// paths as written, and empty lists as absent ones.
func (c *Config) settings() *Config {
	a := c.Clone()
	a.Source, a.pos, a.written = "", nil, nil
	normalizeEmpty(reflect.ValueOf(a).Elem())
	return a
}

// normalizeEmpty sets every empty slice under v to nil.
func normalizeEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalizeEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalizeEmpty(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
		}
		for i := range v.Len() {
			normalizeEmpty(v.Index(i))
		}
	}
}

// MarshalYAML writes c as a configuration file that Parse reads back to an
// equal configuration: every key with its value, in declaration order, except
// absent optional sections (listeners[].tls) and empty lists.
func (c Config) MarshalYAML() (any, error) {
	return encode(reflect.ValueOf(c))
}

func encode(v reflect.Value) (*yaml.Node, error) {
	if s, ok := v.Interface().(interface{ MarshalYAML() (any, error) }); ok && v.Kind() != reflect.Struct {
		out, err := s.MarshalYAML()
		if err != nil {
			return nil, err
		}
		v = reflect.ValueOf(out)
	}
	switch v.Kind() {
	case reflect.Pointer:
		return encode(v.Elem())
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i := range v.NumField() {
			name := yamlName(v.Type().Field(i))
			f := v.Field(i)
			if name == "" || (f.Kind() == reflect.Pointer || f.Kind() == reflect.Slice) && (f.IsNil() || f.Kind() == reflect.Slice && f.Len() == 0) {
				continue
			}
			val, err := encode(f)
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, val)
		}
		return m, nil
	case reflect.Slice:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Type().Elem().Kind() == reflect.String {
			seq.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			item, err := encode(v.Index(i))
			if err != nil {
				return nil, err
			}
			seq.Content = append(seq.Content, item)
		}
		return seq, nil
	default:
		n := &yaml.Node{}
		if err := n.Encode(v.Interface()); err != nil {
			return nil, err
		}
		return n, nil
	}
}
