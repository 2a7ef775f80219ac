package processors

import (
	"errors"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// FilterConfig is `type = "filter"`: keep (action = "keep", the default)
// or drop (action = "drop") the events whose field matches a regex or
// equals a value. A dropped event is acknowledged like a delivered one
// and counted as dropped with reason "filter".
type FilterConfig struct {
	Type string `toml:"type"`
	pipeline.Condition
	Action string `toml:"action"`
}

// DefaultFilter returns the defaults.
func DefaultFilter() *FilterConfig { return &FilterConfig{Action: "keep"} }

// Validate implements pipeline.ProcessorConfig.
func (c *FilterConfig) Validate() error {
	var errs []error
	if err := c.Condition.Compile(); err != nil {
		errs = append(errs, err)
	}
	if c.Action != "keep" && c.Action != "drop" {
		errs = append(errs, config.Errorf("action", "must be \"keep\" or \"drop\", got %q", c.Action))
	}
	return errors.Join(errs...)
}

// Build implements pipeline.ProcessorConfig.
func (c *FilterConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &filter{cond: &c.Condition, keep: c.Action == "keep"}, nil
}

type filter struct {
	cond *pipeline.Condition
	keep bool
}

func (p *filter) DropReason() string { return "filter" }

func (p *filter) Process(ev *pipeline.Event) (bool, error) { return p.ProcessSource(nil, ev, nil) }

func (p *filter) ProcessSource(src *pipeline.Source, ev *pipeline.Event, _ *pipeline.Arena) (bool, error) {
	return p.cond.Matches(src, ev) == p.keep, nil
}
