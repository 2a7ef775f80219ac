package processors

import (
	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// SampleConfig is `type = "sample"`: keep 1 event in rate. Which ones is
// decided by a hash of field (FNV-1a of its text), so it is deterministic:
// every event with the same trace id is kept or dropped together, on every
// agent, across restarts. Events without the field hash their line.
// Drops are counted with reason "sample".
type SampleConfig struct {
	Type  string `toml:"type"`
	Rate  int64  `toml:"rate"`
	Field string `toml:"field"`
}

// DefaultSample returns the defaults.
func DefaultSample() *SampleConfig { return &SampleConfig{Rate: 10, Field: "message"} }

// Validate implements pipeline.ProcessorConfig.
func (c *SampleConfig) Validate() error {
	if c.Rate < 1 {
		return config.Errorf("rate", "must be at least 1 (keep 1 event in rate), got %d", c.Rate)
	}
	if c.Field == "" {
		return config.Errorf("field", "must name the field to hash (\"message\" is the line)")
	}
	return nil
}

// Build implements pipeline.ProcessorConfig.
func (c *SampleConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	return &sample{rate: uint64(c.Rate), field: c.Field}, nil
}

type sample struct {
	rate  uint64
	field string
}

func (p *sample) DropReason() string { return "sample" }

func (p *sample) Process(ev *pipeline.Event) (bool, error) { return p.ProcessSource(nil, ev, nil) }

func (p *sample) ProcessSource(src *pipeline.Source, ev *pipeline.Event, _ *pipeline.Arena) (bool, error) {
	if p.rate == 1 {
		return true, nil
	}
	var tmp [64]byte
	b, ok := pipeline.LookupText(tmp[:0], src, ev, p.field)
	if !ok {
		b = ev.Raw
	}
	return fnv1a(b)%p.rate == 0, nil
}

func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
