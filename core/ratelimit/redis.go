package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"
)

// takeScript is one bucket update, atomic in Redis. The bucket is a hash
// {t: tokens, ts: µs of the last update} and the clock is Redis's own (TIME),
// so instances need not agree on the time. It returns {allowed, µs to wait,
// whole tokens left}. The key expires once the bucket would be full again.
var takeScript = redis.NewScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
elseif now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
end
local ok, wait = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  ok = 1
else
  wait = math.ceil((cost - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return {ok, wait, math.floor(tokens)}
`)

// RedisOptions configure the shared buckets.
type RedisOptions struct {
	// Address is the Redis server's host:port.
	Address string
	// Timeout bounds every call (connect, send, answer), whatever the
	// request's deadline leaves.
	Timeout time.Duration
	// ProbeInterval is the time between checks of a Redis found down.
	ProbeInterval time.Duration
	// PoolSize is the most connections to Redis.
	PoolSize int
	// KeyPrefix starts every bucket's key.
	KeyPrefix string
	// Log receives the fallback and recovery events.
	Log zerolog.Logger
}

// RedisStats are the shared buckets' counters.
type RedisStats struct {
	// Calls counts bucket updates sent to Redis; Errors those that failed
	// (timeout, refused, bad answer).
	Calls, Errors atomic.Uint64
	// Skipped counts updates not sent because Redis was down.
	Skipped atomic.Uint64
	// Fallbacks counts the times Redis was found down.
	Fallbacks atomic.Uint64
}

// Redis holds token buckets in a Redis server, shared by every gateway
// instance that uses the same server and key prefix. A call that fails or
// takes longer than Timeout marks Redis down: from then on no request
// calls it (they use the local buckets) until a background probe, every
// ProbeInterval, finds it answering again.
type Redis struct {
	Stats RedisStats

	o    RedisOptions
	c    *redis.Client
	down atomic.Bool

	mu      sync.Mutex
	probing bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

var quietOnce sync.Once

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// ErrDown is returned while Redis is considered down.
var ErrDown = errors.New("redis is down")

// NewRedis returns shared buckets on the server at o.Address. It does not
// connect until the first call.
func NewRedis(o RedisOptions) *Redis {
	// The client library logs dial failures on its own; ours are the
	// fallback and recovery events, once each.
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	c := redis.NewClient(&redis.Options{
		Addr:                  o.Address,
		Protocol:              2,
		DialTimeout:           o.Timeout,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		PoolTimeout:           o.Timeout,
		ContextTimeoutEnabled: true,
		// One retry on a fresh connection (a pooled one may be dead after a
		// Redis restart); the call's deadline bounds both attempts.
		MaxRetries:      1,
		MinRetryBackoff: -1,
		MaxRetryBackoff: -1,
		PoolSize:        o.PoolSize,
		DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	return &Redis{o: o, c: c, stop: make(chan struct{})}
}

// Options returns the options r was made with.
func (r *Redis) Options() RedisOptions { return r.o }

// Down reports whether Redis is considered down (requests use local buckets).
func (r *Redis) Down() bool { return r.down.Load() }

// Take takes cost tokens from the shared bucket name/key under rule, within
// the Timeout and the deadline. Any error means the caller must decide
// locally.
func (r *Redis) Take(ctx context.Context, name, key string, cost int, rule Rule, deadline time.Time) (Decision, error) {
	if r.down.Load() {
		r.Stats.Skipped.Add(1)
		return Decision{}, ErrDown
	}
	dl := time.Now().Add(r.o.Timeout)
	if deadline.Before(dl) {
		dl = deadline
	}
	cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), dl)
	defer cancel()
	ttl := (time.Duration(float64(rule.Burst)/rule.perSecond()*float64(time.Second)) + time.Second).Milliseconds()
	r.Stats.Calls.Add(1)
	res, err := takeScript.Run(cctx, r.c, []string{r.o.KeyPrefix + name + ":" + key},
		strconv.FormatFloat(rule.perSecond(), 'g', -1, 64), rule.Burst, cost, ttl).Int64Slice()
	if err == nil && len(res) != 3 {
		err = errors.New("unexpected answer from the rate-limit script")
	}
	if err != nil {
		r.Stats.Errors.Add(1)
		r.markDown(err)
		return Decision{}, err
	}
	d := Decision{Allowed: res[0] == 1, Remaining: int(res[2])}
	if !d.Allowed {
		d.RetryAfter = max(time.Duration(res[1])*time.Microsecond, time.Millisecond)
	}
	return d, nil
}

// markDown switches to the local buckets and starts the probe.
func (r *Redis) markDown(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.probing {
		return
	}
	if !r.down.Swap(true) {
		r.Stats.Fallbacks.Add(1)
		r.o.Log.Warn().Err(err).Str("redis", r.o.Address).Dur("timeout", r.o.Timeout).
			Msg("redis unavailable: shared rate limits fall back to local buckets")
	}
	r.probing = true
	r.wg.Add(1)
	go r.probe()
}

// probe pings Redis every ProbeInterval until it answers within Timeout.
func (r *Redis) probe() {
	defer r.wg.Done()
	t := time.NewTicker(r.o.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.o.Timeout)
		err := r.c.Ping(ctx).Err()
		cancel()
		if err == nil {
			r.mu.Lock()
			r.probing = false
			r.down.Store(false)
			r.mu.Unlock()
			r.o.Log.Info().Str("redis", r.o.Address).Msg("redis answers again: shared rate limits resume")
			return
		}
	}
}

// Close stops the probe and closes the connections.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.stop)
	r.mu.Unlock()
	r.wg.Wait()
	return r.c.Close()
}
