package processors

import (
	"errors"
	"sync"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// ThrottleConfig is `type = "throttle"`: at most rate events per second
// per key (the values of key_fields; one key for all events without
// them), with bursts of up to burst events. The excess is dropped and
// counted with reason "throttle". At most max_keys keys are tracked; keys
// beyond share one bucket, so memory stays bounded whatever the values.
type ThrottleConfig struct {
	Type      string   `toml:"type"`
	Rate      float64  `toml:"rate"`
	Burst     int64    `toml:"burst"`
	KeyFields []string `toml:"key_fields"`
	MaxKeys   int      `toml:"max_keys"`
}

// DefaultThrottle returns the defaults; burst 0 means rate (at least 1).
func DefaultThrottle() *ThrottleConfig { return &ThrottleConfig{MaxKeys: 10000} }

// Validate implements pipeline.ProcessorConfig.
func (c *ThrottleConfig) Validate() error {
	var errs []error
	if c.Rate <= 0 {
		errs = append(errs, config.Errorf("rate", "is required: events per second per key, above 0"))
	}
	if c.Burst < 0 {
		errs = append(errs, config.Errorf("burst", "must not be negative"))
	}
	if c.MaxKeys < 1 {
		errs = append(errs, config.Errorf("max_keys", "must be at least 1"))
	}
	for _, k := range c.KeyFields {
		if k == "" {
			errs = append(errs, config.Errorf("key_fields", "a field name must not be empty"))
		}
	}
	return errors.Join(errs...)
}

// Build implements pipeline.ProcessorConfig.
func (c *ThrottleConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	return newThrottle(c, time.Now), nil
}

func newThrottle(c *ThrottleConfig, now func() time.Time) *throttle {
	burst := float64(c.Burst)
	if burst == 0 {
		burst = max(c.Rate, 1)
	}
	return &throttle{rate: c.Rate, burst: burst, keys: c.KeyFields, maxKeys: c.MaxKeys, now: now,
		buckets: map[string]*bucket{}}
}

type throttle struct {
	rate, burst float64
	keys        []string
	maxKeys     int
	now         func() time.Time

	mu       sync.Mutex
	buckets  map[string]*bucket
	overflow bucket
	scratch  []byte
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (p *throttle) DropReason() string { return "throttle" }

func (p *throttle) Process(ev *pipeline.Event) (bool, error) { return p.ProcessSource(nil, ev, nil) }

func (p *throttle) ProcessSource(src *pipeline.Source, ev *pipeline.Event, _ *pipeline.Arena) (bool, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scratch = appendKey(p.scratch[:0], src, ev, p.keys)
	b, ok := p.buckets[string(p.scratch)]
	if !ok {
		if len(p.buckets) >= p.maxKeys {
			p.evictIdle(now)
		}
		if len(p.buckets) < p.maxKeys {
			b = &bucket{tokens: p.burst, last: now}
			p.buckets[string(p.scratch)] = b
		} else {
			b = &p.overflow
			if b.last.IsZero() {
				b.tokens, b.last = p.burst, now
			}
		}
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(p.burst, b.tokens+d.Seconds()*p.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false, nil
	}
	b.tokens--
	return true, nil
}

// evictIdle forgets buckets that have refilled: they behave exactly like
// new ones.
func (p *throttle) evictIdle(now time.Time) {
	for k, b := range p.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*p.rate >= p.burst {
			delete(p.buckets, k)
		}
	}
}

// appendKey appends the text of each key field, NUL-separated, with a
// marker for a missing field so "" and absent differ.
func appendKey(dst []byte, src *pipeline.Source, ev *pipeline.Event, keys []string) []byte {
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, 0)
		}
		var tmp [64]byte
		b, ok := pipeline.LookupText(tmp[:0], src, ev, k)
		if !ok {
			// Missing, or a value without a text form (an object).
			dst = append(dst, 1)
			continue
		}
		dst = append(dst, b...)
	}
	return dst
}
