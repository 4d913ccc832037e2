package config

import (
	"reflect"
	"slices"
	"strings"

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

// Redacted returns a deep copy of c with its secrets (admin.token) replaced
// by "REDACTED", for /admin/config. An empty secret stays empty, so that
// the copy still shows that none is set.
func (c *Config) Redacted() *Config {
	n := c.Clone()
	if n != nil && n.Admin.Token != "" {
		n.Admin.Token = "REDACTED"
	}
	if n != nil {
		// A plugin's environment is where its secrets go.
		for i := range n.Plugins {
			for j, kv := range n.Plugins[i].Env {
				k, _, _ := strings.Cut(kv, "=")
				n.Plugins[i].Env[j] = k + "=REDACTED"
			}
		}
	}
	return n
}

// Equal reports whether c and o hold the same settings. Source and source
// positions are ignored, and an empty list equals an absent one.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	a, b := c.Clone(), o.Clone()
	for _, x := range []*Config{a, b} {
		x.Source, x.pos = "", nil
		normalizeEmpty(reflect.ValueOf(x).Elem())
	}
	return reflect.DeepEqual(a, b)
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
