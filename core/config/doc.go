// Package config reads, checks and documents the gateway's configuration.
//
// A configuration is one YAML document whose keys are those of [Config]
// (docs/config.md lists them all; it is generated from types.go by
// "go generate ./core/config"). Parse and Load decode it strictly:
//
//   - An absent key keeps its default. Every bound has a finite default; see
//     [Default].
//   - A key that is present must hold a valid value. An empty value
//     ("deadline:" with nothing after it, or null) is "missing value", and a
//     zero or negative bound is an error: no bound means "unlimited".
//   - Unknown keys (with a suggestion of the key probably meant), duplicate
//     keys, values of the wrong type, a top level that is not a mapping and a
//     second YAML document in the file are errors.
//   - Durations are Go durations ("250ms", "1m30s"). Sizes are byte counts,
//     plain ("512") or with a unit: B, KB, MB, GB (powers of 1000) or KiB,
//     MiB, GiB (powers of 1024). Rates are a size per second ("1KiB/s").
//
// Services and routes inherit bounds: each service's limits.upstream starts
// as a copy of the global limits.upstream, and each route's limits.request as
// a copy of the global limits.request; the keys a service or route gives
// override those one by one. The global limits are applied first, wherever
// they are in the file.
//
// File paths (listeners[].tls.cert and key, scripts[].file, plugins[].path
// and config_file) that are relative are resolved by [Load] against the
// directory of the configuration file (as named, a symlink to the file not
// followed), before validation: dir/p, unless no file is there and p names
// one relative to the working directory, which is then used instead. The
// result is absolute either way; when p exists in neither place it is
// dir/p, and the error names that path. [ParseIn] does the same against a
// given directory; [Parse] keeps paths as written (relative to the working
// directory).
//
// Every error found is reported, not only the first: Parse, Load and
// [Config.Validate] return [Errors], one [Error] per problem in line order,
// each naming the file, the position of the key (or list item) and its path:
//
//	gatehouse.yaml:14:5: routes[1].limits.request.deadline: must be a positive duration, got "0s"
//
// A configuration built in Go has no positions, so its errors start at the
// path. Layers above report errors about a key the same way with
// [Config.ErrorAt].
package config

//go:generate go run ./internal/docgen
