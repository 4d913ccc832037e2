//go:build tools

// Package gatehouse pins dependencies until code imports them.
package gatehouse
import (
 _ "github.com/dop251/goja"
 _ "github.com/hashicorp/go-plugin"
 _ "github.com/fsnotify/fsnotify"
 _ "github.com/cespare/xxhash/v2"
 _ "github.com/rs/zerolog"
 _ "gopkg.in/yaml.v3"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/HdrHistogram/hdrhistogram-go"
 _ "go.uber.org/goleak"
)

