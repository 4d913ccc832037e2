package plugins

import (
	"crypto/sha256"
	"encoding/binary"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
)

// maxVarySpecs bounds the distinct vary lists kept per phase: each is one
// lookup per call, and a plugin should have one or two.
const maxVarySpecs = 4

// decisionCache holds decisions a plugin marked cacheable (plugin.CacheFor),
// bounded in entries (least recently used evicted) and in time (the
// plugin's TTL, capped). A decision is keyed by the phase and a SHA-256 of
// the request parts its hint named: two requests share a decision only if
// they agree on every one of them.
//
// Lookups must know which parts to key on before the plugin is asked, so
// the cache remembers, per phase, the vary lists it has seen (as HTTP caches
// remember Vary) and tries each.
type decisionCache struct {
	max    int
	maxTTL time.Duration
	now    func() time.Time

	specs [5]atomic.Pointer[[]varySpec]

	mu      sync.Mutex
	entries map[[32]byte]*cacheEntry
	head    cacheEntry // sentinel of the LRU list; head.next is the newest
}

type varySpec struct {
	key   string // the parts joined, to compare specs
	parts []string
}

type cacheEntry struct {
	key        [32]byte
	expires    time.Time
	decision   any
	prev, next *cacheEntry
}

func newDecisionCache(max int, maxTTL time.Duration) *decisionCache {
	c := &decisionCache{max: max, maxTTL: maxTTL, now: time.Now, entries: make(map[[32]byte]*cacheEntry)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

// get returns a cached decision for phase p and req.
func (c *decisionCache) get(p sdk.Phase, req *sdk.Request) (any, bool) {
	specs := c.specs[p].Load()
	if specs == nil {
		return nil, false
	}
	now := c.now()
	for i := range *specs {
		key := cacheKey(p, &(*specs)[i], req)
		c.mu.Lock()
		e := c.entries[key]
		if e != nil && now.Before(e.expires) {
			c.unlink(e)
			c.pushFront(e)
			d := e.decision
			c.mu.Unlock()
			return d, true
		}
		if e != nil {
			c.unlink(e)
			delete(c.entries, key)
		}
		c.mu.Unlock()
	}
	return nil, false
}

// put stores decision d for phase p under the hint's parts of req. It
// reports false when the hint is unusable (an unknown part, too many vary
// lists).
func (c *decisionCache) put(p sdk.Phase, req *sdk.Request, h wire.Hint, d any) bool {
	spec, ok := c.spec(p, h.Vary)
	if !ok {
		return false
	}
	ttl := min(h.TTL, c.maxTTL)
	key := cacheKey(p, spec, req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		e.decision, e.expires = d, c.now().Add(ttl)
		c.unlink(e)
		c.pushFront(e)
		return true
	}
	e := &cacheEntry{key: key, expires: c.now().Add(ttl), decision: d}
	c.entries[key] = e
	c.pushFront(e)
	for len(c.entries) > c.max {
		old := c.head.prev
		c.unlink(old)
		delete(c.entries, old.key)
	}
	return true
}

// spec returns the registered vary list for parts, registering it when
// there is room.
func (c *decisionCache) spec(p sdk.Phase, parts []string) (*varySpec, bool) {
	norm := make([]string, len(parts))
	for i, v := range parts {
		n, ok := normVary(v)
		if !ok {
			return nil, false
		}
		norm[i] = n
	}
	key := strings.Join(norm, "\x00")
	for {
		old := c.specs[p].Load()
		var list []varySpec
		if old != nil {
			for i := range *old {
				if (*old)[i].key == key {
					return &(*old)[i], true
				}
			}
			list = append(list, *old...)
		}
		if len(list) >= maxVarySpecs {
			return nil, false
		}
		list = append(list, varySpec{key: key, parts: norm})
		if c.specs[p].CompareAndSwap(old, &list) {
			return &list[len(list)-1], true
		}
	}
}

// normVary checks a vary part and canonicalises a header name.
func normVary(v string) (string, bool) {
	switch v {
	case "method", "host", "path", "query", "client_ip", "route", "service", "tls_peer":
		return v, true
	}
	if name, ok := strings.CutPrefix(v, "header:"); ok && name != "" {
		return "header:" + textproto.CanonicalMIMEHeaderKey(name), true
	}
	if name, ok := strings.CutPrefix(v, "label:"); ok && name != "" {
		return v, true
	}
	return "", false
}

var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// cacheKey hashes the phase, the spec and the request's values of its
// parts, each length-prefixed so that no two lists of values collide.
func cacheKey(p sdk.Phase, s *varySpec, req *sdk.Request) [32]byte {
	bp := keyBufs.Get().(*[]byte)
	b := append((*bp)[:0], byte(p))
	b = appendField(b, s.key)
	for _, part := range s.parts {
		switch {
		case part == "method":
			b = appendField(b, req.Method)
		case part == "host":
			b = appendField(b, req.Host)
		case part == "path":
			b = appendField(b, req.Path)
		case part == "query":
			b = appendField(b, req.RawQuery)
		case part == "client_ip":
			b = appendField(b, req.ClientIP)
		case part == "route":
			b = appendField(b, req.Route)
		case part == "service":
			b = appendField(b, req.Service)
		case part == "tls_peer":
			if req.TLS != nil {
				b = appendField(append(b, 1), req.TLS.PeerSubject)
			} else {
				b = append(b, 0)
			}
		case strings.HasPrefix(part, "header:"):
			vals := req.Header[part[len("header:"):]]
			b = binary.AppendUvarint(b, uint64(len(vals)))
			for _, v := range vals {
				b = appendField(b, v)
			}
		case strings.HasPrefix(part, "label:"):
			if v, ok := req.Labels[part[len("label:"):]]; ok {
				b = appendField(append(b, 1), v)
			} else {
				b = append(b, 0)
			}
		}
	}
	sum := sha256.Sum256(b)
	*bp = b
	keyBufs.Put(bp)
	return sum
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (c *decisionCache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *decisionCache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

func (c *decisionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
