package processors

import (
	"errors"
	"regexp"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// RedactConfig is `type = "redact"`: every match of pattern in the listed
// fields is replaced with replacement ($1 and ${name} expand groups).
// "message" (the default) is the line itself: it masks the raw line, which
// `format = "raw"` ships and `format = "json"` writes as "message", and a
// parsed "message" field too. Redact is the one processor that changes the
// raw line, since a secret must not reach an output by any format; mask
// other parsed fields by name, and note that a raw-format output still
// ships the line as read unless "message" is listed.
type RedactConfig struct {
	Type        string   `toml:"type"`
	Fields      []string `toml:"fields"`
	Pattern     string   `toml:"pattern"`
	Replacement string   `toml:"replacement"`
}

// DefaultRedact returns the defaults.
func DefaultRedact() *RedactConfig {
	return &RedactConfig{Fields: []string{"message"}, Replacement: "[REDACTED]"}
}

// Validate implements pipeline.ProcessorConfig.
func (c *RedactConfig) Validate() error {
	var errs []error
	if c.Pattern == "" {
		errs = append(errs, config.Errorf("pattern", "is required: a regular expression for what to mask"))
	} else if _, err := regexp.Compile(c.Pattern); err != nil {
		errs = append(errs, config.Errorf("pattern", "invalid regular expression: %v", err))
	}
	if len(c.Fields) == 0 {
		errs = append(errs, config.Errorf("fields", "must list at least one field (\"message\" is the line)"))
	}
	for _, f := range c.Fields {
		if f == "" {
			errs = append(errs, config.Errorf("fields", "a field name must not be empty"))
		}
	}
	return errors.Join(errs...)
}

// Build implements pipeline.ProcessorConfig.
func (c *RedactConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		return nil, config.Errorf("pattern", "invalid regular expression: %v", err)
	}
	return &redact{re: re, fields: c.Fields, repl: []byte(c.Replacement)}, nil
}

type redact struct {
	re     *regexp.Regexp
	fields []string
	repl   []byte
}

func (p *redact) Process(ev *pipeline.Event) (bool, error) { return p.ProcessArena(ev, nil) }

// ProcessArena masks in new memory: the raw line and parsed values are
// shared with other outputs and must stay as they are. Nothing is
// allocated for an event with nothing to mask.
func (p *redact) ProcessArena(ev *pipeline.Event, a *pipeline.Arena) (bool, error) {
	for _, f := range p.fields {
		if f == "message" && p.re.Match(ev.Raw) {
			ev.Raw = p.mask(ev.Raw, a)
		}
		i := index(ev.Fields, f)
		if i < 0 {
			continue
		}
		b, ok := pipeline.Bytes(ev.Fields[i].Value)
		if !ok || !p.re.Match(b) {
			continue
		}
		m := p.mask(b, a)
		if a != nil {
			ev.Fields[i].Value = a.Text(m)
		} else {
			t := pipeline.Text(m)
			ev.Fields[i].Value = &t
		}
	}
	return true, nil
}

func (p *redact) mask(b []byte, a *pipeline.Arena) []byte {
	m := p.re.ReplaceAll(b, p.repl)
	if a != nil {
		return a.Copy(m)
	}
	return m
}
