package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Validate checks the whole configuration and returns every problem as
// Errors, or nil. Errors carry file positions when c came from Parse or Load;
// for a configuration built in Go they carry only the key path.
//
// Validate checks that the files named by the configuration exist and can
// be used: TLS certificates and keys, plugin config files (readable
// regular files), plugin binaries (executable) and scripts. Load resolves
// relative paths before validating, against the configuration file's
// directory first and the working directory second (see ParseIn); an error
// about a file names the path that was tried. In a configuration from Parse
// or built in Go, relative paths are relative to the working directory.
func (c *Config) Validate() error {
	if c == nil {
		return Errors{{Msg: "no configuration"}}
	}
	return c.validate().orNil()
}

// Pos returns where the key at path (for example
// "services[1].limits.upstream.connect_timeout") is in the source file. A key
// that is not in the file, because it has its default or was inherited, gets
// the position of its nearest ancestor that is; line and col are 0 when there
// is none, or when c was built in Go.
func (c *Config) Pos(path string) (file string, line, col int) {
	for p := path; ; p = parentPath(p) {
		if at, ok := c.pos[p]; ok {
			return c.Source, at.line, at.col
		}
		if p == "" {
			return c.Source, 0, 0
		}
	}
}

// ErrorAt returns an error about the key at path, positioned as Pos says.
// Layers above the configuration use it to report, for example, a balancer
// name that no balancer is registered under.
func (c *Config) ErrorAt(path, msg string) *Error {
	file, line, col := c.Pos(path)
	return &Error{File: file, Line: line, Col: col, Path: path, Msg: msg}
}

// checker collects validation errors in the order of the file's sections.
type checker struct {
	c    *Config
	errs Errors
}

func (c *Config) validate() Errors {
	k := &checker{c: c}
	k.listeners()
	k.admin()
	k.observe()
	k.logging()
	k.bounds("limits.server", c.Limits.Server, nil)
	k.bounds("limits.request", c.Limits.Request, nil)
	k.upstream("limits.upstream", c.Limits.Upstream, nil)
	k.services()
	k.routes()
	k.scripts()
	k.plugins()
	k.bindings("hooks", c.Hooks, 0)
	for i, r := range c.Routes {
		k.bindings(fmt.Sprintf("routes[%d].hooks", i), r.Hooks, len(c.Hooks))
	}
	return k.errs
}

// maxBindings bounds the hooks of one route, global ones included.
const maxBindings = 16

var phaseNames = map[string]bool{"validate": true, "shape": true, "route": true, "respond": true, "observe": true}

func (k *checker) scripts() {
	names := make(map[string]string)
	for i, sc := range k.c.Scripts {
		p := fmt.Sprintf("scripts[%d]", i)
		k.unique(p+".name", "script name", sc.Name, sc.Name, names)
		if sc.File == "" {
			k.add(p+".file", "required")
		} else if _, err := os.Stat(sc.File); err != nil {
			k.fileError(p+".file", "cannot read", sc.File, errors.Unwrap(err))
		}
		if sc.Runtimes <= 0 {
			k.add(p+".runtimes", "must be a positive integer, got %s", quote(strconv.Itoa(sc.Runtimes)))
		}
		if sc.MaxRuntimeCalls <= 0 {
			k.add(p+".max_runtime_calls", "must be a positive integer, got %s", quote(strconv.Itoa(sc.MaxRuntimeCalls)))
		}
		if sc.MaxCallMemory <= 0 {
			k.add(p+".max_call_memory", "must be a positive size, got %s", quote(sc.MaxCallMemory.String()))
		}
	}
}

// bindings checks hook bindings; before is the number of global bindings
// that also run on the route.
func (k *checker) bindings(path string, bs []HookBinding, before int) {
	if before+len(bs) > maxBindings {
		k.add(path, "at most %d hooks per route (global ones included), got %d", maxBindings, before+len(bs))
	}
	for i, b := range bs {
		p := fmt.Sprintf("%s[%d]", path, i)
		named := 0
		for _, s := range []string{b.Script, b.Plugin, b.Go} {
			if s != "" {
				named++
			}
		}
		switch {
		case named == 0:
			k.add(p, "names no hook: set script, plugin or go")
		case named > 1:
			k.add(p, "names more than one hook: set only one of script, plugin and go")
		case b.Script != "" && !k.hasScript(b.Script):
			k.add(p+".script", "unknown script %s (known: %s)", quote(b.Script), k.scriptNames())
		case b.Plugin != "" && !k.hasPlugin(b.Plugin):
			k.add(p+".plugin", "unknown plugin %s (known: %s)", quote(b.Plugin), k.pluginNames())
		}
		if b.Config != nil && b.Go == "" {
			k.add(p+".config", "only compiled-in (go) hooks take config here; a script's or plugin's config goes under scripts[] or plugins[]")
		}
		seen := map[string]bool{}
		for j, ph := range b.Phases {
			if !phaseNames[ph] {
				k.add(fmt.Sprintf("%s.phases[%d]", p, j), "must be one of validate, shape, route, respond, observe; got %s", quote(ph))
			} else if seen[ph] {
				k.add(fmt.Sprintf("%s.phases[%d]", p, j), "duplicate phase %s", quote(ph))
			}
			seen[ph] = true
		}
		if b.Budget <= 0 {
			k.add(p+".budget", "must be a positive duration, got %s", quote(b.Budget.String()))
		}
		if b.MaxConcurrent <= 0 {
			k.add(p+".max_concurrent", "must be a positive integer, got %s", quote(strconv.Itoa(b.MaxConcurrent)))
		}
		if b.OnFailure != "open" && b.OnFailure != "closed" {
			k.add(p+".on_failure", "must be open or closed, got %s", quote(b.OnFailure))
		}
		if b.FailureStatus < 400 || b.FailureStatus > 599 {
			k.add(p+".failure_status", "must be from 400 to 599, got %d", b.FailureStatus)
		}
		if b.BodyBytes < 0 {
			k.add(p+".body_bytes", "must not be negative, got %s", quote(b.BodyBytes.String()))
		}
	}
}

// minPluginMessage is the smallest max_message_bytes: a request view with
// its headers must fit.
const minPluginMessage = 4 * KiB

func (k *checker) plugins() {
	names := make(map[string]string)
	for i, pl := range k.c.Plugins {
		p := fmt.Sprintf("plugins[%d]", i)
		k.unique(p+".name", "plugin name", pl.Name, pl.Name, names)
		if strings.ContainsAny(pl.Name, "/\\\x00") {
			k.add(p+".name", "must not contain slashes, got %s", quote(pl.Name))
		}
		k.executable(p+".path", pl.Path)
		if pl.Config != nil && pl.ConfigFile != "" {
			k.add(p, "set at most one of config and config_file")
		}
		if pl.ConfigFile != "" {
			k.readable(p+".config_file", pl.ConfigFile)
		}
		for j, kv := range pl.Env {
			if key, _, ok := strings.Cut(kv, "="); !ok || key == "" {
				k.add(fmt.Sprintf("%s.env[%d]", p, j), "must be KEY=value, got %s", quote(kv))
			}
		}
		k.bounds(p, struct {
			StartTimeout  Duration `yaml:"start_timeout"`
			DrainTimeout  Duration `yaml:"drain_timeout"`
			MaxConcurrent int      `yaml:"max_concurrent"`
		}{pl.StartTimeout, pl.DrainTimeout, pl.MaxConcurrent}, nil)
		k.bounds(p+".health", pl.Health, nil)
		k.bounds(p+".restart", pl.Restart, nil)
		if pl.Restart.BackoffMax < pl.Restart.BackoffMin {
			k.add(p+".restart.backoff_max", "must be at least restart.backoff_min (%s), got %s", pl.Restart.BackoffMin, quote(pl.Restart.BackoffMax.String()))
		}
		if pl.MaxMessageBytes < minPluginMessage {
			k.add(p+".max_message_bytes", "must be at least %s, got %s", minPluginMessage, quote(pl.MaxMessageBytes.String()))
		}
		if pl.MaxBodyBytes <= 0 || pl.MaxBodyBytes > pl.MaxMessageBytes/2 {
			k.add(p+".max_body_bytes", "must be positive and at most half of max_message_bytes (%s), got %s", pl.MaxMessageBytes/2, quote(pl.MaxBodyBytes.String()))
		}
		if pl.Cache.MaxEntries < 0 {
			k.add(p+".cache.max_entries", "must not be negative, got %d", pl.Cache.MaxEntries)
		}
		if pl.Cache.MaxTTL <= 0 {
			k.add(p+".cache.max_ttl", "must be a positive duration, got %s", quote(pl.Cache.MaxTTL.String()))
		}
		if pl.Limits.Memory < 0 {
			k.add(p+".limits.memory", "must not be negative, got %s", quote(pl.Limits.Memory.String()))
		}
		if pl.Limits.CPU < 0 {
			k.add(p+".limits.cpu", "must not be negative, got %s", quote(pl.Limits.CPU.String()))
		}
		if pl.Limits.OpenFiles < 0 {
			k.add(p+".limits.open_files", "must not be negative, got %d", pl.Limits.OpenFiles)
		}
	}
}

// executable checks that name is an executable regular file.
func (k *checker) executable(path, name string) {
	if name == "" {
		k.add(path, "required")
		return
	}
	fi, err := os.Stat(name)
	if err != nil {
		k.fileError(path, "cannot use", name, errors.Unwrap(err))
		return
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		k.add(path, "%s is not an executable file", quotePath(name))
	}
}

func (k *checker) hasPlugin(name string) bool {
	for _, p := range k.c.Plugins {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (k *checker) pluginNames() string {
	var names []string
	for _, p := range k.c.Plugins {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		return "none are configured"
	}
	return strings.Join(names, ", ")
}

func (k *checker) hasScript(name string) bool {
	for _, s := range k.c.Scripts {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (k *checker) scriptNames() string {
	var names []string
	for _, s := range k.c.Scripts {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return "none are configured"
	}
	return strings.Join(names, ", ")
}

func (k *checker) add(path, format string, args ...any) {
	k.errs = append(k.errs, k.c.ErrorAt(path, fmt.Sprintf(format, args...)))
}

// also names the first holder of a duplicated value: its path, and its line
// when known.
func (k *checker) also(path string) string {
	if _, line, _ := k.c.Pos(path); line > 0 {
		return fmt.Sprintf("also %s, line %d", path, line)
	}
	return "also " + path
}

func (k *checker) listeners() {
	if len(k.c.Listeners) == 0 {
		k.add("listeners", "at least one listener is required")
	}
	names := make(map[string]string)
	addrs := make(map[string]string)
	for i, l := range k.c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		k.unique(p+".name", "listener name", l.Name, l.Name, names)
		if l.Address == "" {
			k.add(p+".address", "required")
		} else if msg := checkAddress(l.Address, false); msg != "" {
			k.add(p+".address", "%s", msg)
		} else {
			_, dup := addrs[normalAddress(l.Address)]
			k.unique(p+".address", "listener address", l.Address, normalAddress(l.Address), addrs)
			for j, prev := range k.c.Listeners[:i] {
				if !dup && checkAddress(prev.Address, false) == "" && overlaps(prev.Address, l.Address) {
					_, port, _ := net.SplitHostPort(l.Address)
					k.add(p+".address", "listener address %s overlaps %s (%s): both would bind port %s",
						quote(l.Address), quote(prev.Address), k.also(fmt.Sprintf("listeners[%d].address", j)), port)
					break
				}
			}
		}
		if l.TLS != nil {
			k.readable(p+".tls.cert", l.TLS.Cert)
			k.readable(p+".tls.key", l.TLS.Key)
		}
	}
}

// overlaps reports whether two valid listen addresses would bind the same
// socket: the same port (not 0, which always gets a free one) on the same
// host, or on a host and a wildcard that covers it ("" and "::" cover every
// address, "0.0.0.0" every IPv4 one). Host names other than the wildcards
// are compared as written: what they resolve to is known only at bind time.
func overlaps(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb || na == 0 {
		return false
	}
	ia, ib := net.ParseIP(ha), net.ParseIP(hb)
	allA, allB := ha == "" || ia != nil && ia.Equal(net.IPv6unspecified), hb == "" || ib != nil && ib.Equal(net.IPv6unspecified)
	v4A, v4B := ia != nil && ia.Equal(net.IPv4zero), ib != nil && ib.Equal(net.IPv4zero)
	switch {
	case allA || allB:
		return true
	case ia != nil && ib != nil:
		return ia.Equal(ib) || v4A && ib.To4() != nil || v4B && ia.To4() != nil
	}
	return strings.EqualFold(ha, hb)
}

// unique reports a missing value, or one whose key is already in seen; it
// records the key.
func (k *checker) unique(path, what, value, key string, seen map[string]string) {
	if value == "" {
		k.add(path, "required")
		return
	}
	if prev, dup := seen[key]; dup {
		k.add(path, "duplicate %s %s (%s)", what, quote(value), k.also(prev))
		return
	}
	seen[key] = path
}

// readable checks that name is a regular file this process can open.
func (k *checker) readable(path, name string) {
	if name == "" {
		k.add(path, "required")
		return
	}
	fi, err := os.Stat(name)
	if err == nil && !fi.Mode().IsRegular() {
		k.add(path, "%s is not a regular file", quotePath(name))
		return
	}
	if err == nil {
		var f *os.File
		if f, err = os.Open(name); err == nil {
			f.Close()
			return
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	k.fileError(path, "cannot read", name, err)
}

func (k *checker) admin() {
	a := k.c.Admin
	if a.Address == "" {
		k.add("admin.address", "required")
		return
	}
	if msg := checkAddress(a.Address, false); msg != "" {
		k.add("admin.address", "%s", msg)
		return
	}
	host, _, _ := net.SplitHostPort(a.Address)
	if !isLoopback(host) && a.Token == "" {
		k.add("admin.token", "required when admin.address %s is not a loopback address", quote(a.Address))
	}
	// The admin listener binds after the public ones: sharing an address
	// with one of them would fail at startup, after the gateway was built.
	for i, l := range k.c.Listeners {
		if checkAddress(l.Address, false) == "" && overlaps(l.Address, a.Address) {
			k.add("admin.address", "%s is taken by a listener (%s): the admin listener needs an address of its own",
				quote(a.Address), k.also(fmt.Sprintf("listeners[%d].address", i)))
			break
		}
	}
}

func (k *checker) observe() {
	t := k.c.Observe.Tracing
	if t.SamplePerMillion > 1_000_000 {
		k.add("observe.tracing.sample_per_million", "at most 1000000 (every trace); got %d", t.SamplePerMillion)
	}
	if !t.Enabled {
		return
	}
	if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		k.add("observe.tracing.endpoint", "must be an http:// or https:// URL; got %s", quote(t.Endpoint))
	}
	if t.ServiceName == "" {
		k.add("observe.tracing.service_name", "required")
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (k *checker) logging() {
	switch k.c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		k.add("logging.level", "must be one of debug, info, warn, error; got %s", quote(k.c.Logging.Level))
	}
	switch k.c.Logging.Format {
	case "json", "console":
	default:
		k.add("logging.format", "must be json or console; got %s", quote(k.c.Logging.Format))
	}
}

func (k *checker) services() {
	names := make(map[string]string)
	for i, s := range k.c.Services {
		p := fmt.Sprintf("services[%d]", i)
		k.unique(p+".name", "service name", s.Name, s.Name, names)
		if len(s.Endpoints) == 0 {
			k.add(p+".endpoints", "at least one endpoint is required")
		}
		seen := make(map[string]string)
		for j, e := range s.Endpoints {
			ep := fmt.Sprintf("%s.endpoints[%d]", p, j)
			if msg := checkAddress(e, true); msg != "" {
				k.add(ep, "%s", msg)
				continue
			}
			k.unique(ep, "endpoint", e, normalAddress(e), seen)
		}
		if s.Balancer == "" {
			k.add(p+".balancer", "must not be empty; leave the key out for the default %s", quote(k.c.NewService("").Balancer))
		}
		switch s.Protocol {
		case "http1", "h2c", "h2":
			if s.TLS && s.Protocol != "http1" {
				k.add(p+".tls", "only valid with protocol http1 (h2 always uses TLS, h2c never does); got protocol %s", quote(s.Protocol))
			}
		default:
			k.add(p+".protocol", "must be one of http1, h2c, h2; got %s", quote(s.Protocol))
		}
		k.upstream(p+".limits.upstream", s.Limits.Upstream, &k.c.Limits.Upstream)
		k.bounds(p+".retry", s.Retry, nil)
		k.bounds(p+".balancing", s.Balancing, nil)
		k.bounds(p+".outlier", s.Outlier, nil)
		k.bounds(p+".health_check", s.HealthCheck, nil)
		if s.SlowStart != nil && *s.SlowStart <= 0 {
			k.add(p+".slow_start", "must be a positive duration, got %s", quote(s.SlowStart.String()))
		}
		for _, pc := range []struct {
			key string
			v   int
			max int
		}{{"outlier.min_success_percent", s.Outlier.MinSuccessPercent, 100}, {"outlier.jitter_percent", s.Outlier.JitterPercent, 99},
			{"outlier.max_ejected_percent", s.Outlier.MaxEjectedPercent, 100}} {
			if pc.v > pc.max {
				k.add(p+"."+pc.key, "must be at most %d, got %d", pc.max, pc.v)
			}
		}
		if c := s.Balancing.Choices; c < 2 || c > 8 {
			k.add(p+".balancing.choices", "must be in [2, 8], got %d", c)
		}
		if hc := s.HealthCheck.Path; !strings.HasPrefix(hc, "/") {
			k.add(p+".health_check.path", "must start with \"/\", got %s", quote(hc))
		}
		if r := s.Retry; r.BackoffBase > r.BackoffMax && r.BackoffMax > 0 {
			k.add(p+".retry.backoff_base", "must not exceed retry.backoff_max (%s), got %s", r.BackoffMax, quote(r.BackoffBase.String()))
		}
		k.admission(p+".admission", s.Admission)
	}
}

// upstream checks upstream limits. For a service, global is the global
// limits it inherited from: a bad value it merely inherited is reported once,
// at the global key.
func (k *checker) upstream(path string, u UpstreamLimits, global *UpstreamLimits) {
	var g any
	if global != nil {
		g = *global
	}
	k.bounds(path, u, g)
	if u.MaxConnsPerEndpoint > 0 && u.MaxIdlePerEndpoint > u.MaxConnsPerEndpoint {
		inherited := global != nil &&
			u.MaxConnsPerEndpoint == global.MaxConnsPerEndpoint && u.MaxIdlePerEndpoint == global.MaxIdlePerEndpoint
		if !inherited {
			k.add(path+".max_idle_per_endpoint", "must not exceed max_conns_per_endpoint (%d > %d)",
				u.MaxIdlePerEndpoint, u.MaxConnsPerEndpoint)
		}
	}
}

// bounds checks that every bound in limits struct v is positive. When
// inherited is the struct v was copied from, a field still equal to its bad
// inherited value is left to the check of the original.
func (k *checker) bounds(path string, v, inherited any) {
	rv := reflect.ValueOf(v)
	var iv reflect.Value
	if inherited != nil {
		iv = reflect.ValueOf(inherited)
	}
	for i := range rv.NumField() {
		x := rv.Field(i).Interface()
		msg := notPositive(x)
		if msg == "" {
			continue
		}
		if iv.IsValid() && iv.Field(i).Interface() == x {
			continue
		}
		k.add(joinPath(path, yamlName(rv.Type().Field(i))), "%s", msg)
	}
}

// notPositive says why bound x is not positive, or returns "".
func notPositive(x any) string {
	switch x := x.(type) {
	case Duration:
		if x <= 0 {
			return "must be a positive duration, got " + quote(x.String())
		}
	case Size:
		if x <= 0 {
			return "must be a positive size, got " + quote(x.String())
		}
	case Rate:
		if x <= 0 {
			return "must be a positive rate, got " + quote(x.String())
		}
	case int:
		if x <= 0 {
			return "must be a positive integer, got " + quote(strconv.Itoa(x))
		}
	}
	return ""
}

func (k *checker) routes() {
	var known []string
	services := make(map[string]bool)
	for _, s := range k.c.Services {
		if s.Name != "" && !services[s.Name] {
			services[s.Name] = true
			known = append(known, s.Name)
		}
	}
	names := make(map[string]string)
	for i, r := range k.c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		k.unique(p+".name", "route name", r.Name, r.Name, names)
		switch {
		case r.Service == "":
			k.add(p+".service", "required")
		case !services[r.Service] && len(known) == 0:
			k.add(p+".service", "unknown service %s (no services are configured)", quote(r.Service))
		case !services[r.Service]:
			k.add(p+".service", "unknown service %s (known: %s)", quote(r.Service), strings.Join(known, ", "))
		}
		m := r.Match
		if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
			k.add(p+".match.path_prefix", "must start with \"/\", got %s", quote(m.PathPrefix))
		}
		if m.Host != "" && !validHost(m.Host) {
			k.add(p+".match.host", "must be a host name without scheme or port, optionally starting with \"*.\"; got %s", quote(m.Host))
		}
		seen := make(map[string]string)
		for j, method := range m.Methods {
			mp := fmt.Sprintf("%s.match.methods[%d]", p, j)
			if !validMethod(method) {
				k.add(mp, "must be an upper-case method token such as \"GET\", got %s", quote(method))
				continue
			}
			k.unique(mp, "method", method, method, seen)
		}
		k.bounds(p+".limits.request", r.Limits.Request, k.c.Limits.Request)
		k.shaping(p, r)
	}
	k.redis()
}

// checkAddress checks host:port with a numeric port in 1..65535, and says
// what is wrong. The host may be empty ("all interfaces") unless needHost.
// Addresses to listen on (needHost false) may use port 0: the system picks
// a free port, which embedding programs and tests read back.
func checkAddress(addr string, needHost bool) string {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil, !allDigits(port), strings.ContainsAny(host, " \t\r\n/"):
		return fmt.Sprintf("must be host:port with a port from 1 to 65535, got %s", quote(addr))
	case needHost && host == "":
		return fmt.Sprintf("must be host:port with a host, got %s", quote(addr))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 && needHost || n < 0 || n > 65535 {
		return fmt.Sprintf("port must be from 1 to 65535, got %s", quote(addr))
	}
	return ""
}

// normalAddress spells a valid address one way, so "Localhost:080" and
// "localhost:80" are found to be the same.
func normalAddress(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(n))
}

// validHost accepts a host name or IP address, or "*." and a host name.
func validHost(h string) bool {
	name, wildcard := strings.CutPrefix(h, "*.")
	if name == "" {
		return false
	}
	if !wildcard && net.ParseIP(name) != nil {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isLetter(c) || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// validMethod accepts an RFC 9110 token without lower-case letters.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
