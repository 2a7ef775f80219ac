package processors

import (
	"errors"
	"sort"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// AddFieldsConfig is `type = "add_fields"`: static fields added to every
// event. Unlike [inputs.NAME] fields, they are event fields, so later
// processors and conditions see them, and they can differ per output.
type AddFieldsConfig struct {
	Type      string         `toml:"type"`
	Fields    map[string]any `toml:"fields"`
	Overwrite bool           `toml:"overwrite"` // replace a field the event already has
}

// DefaultAddFields returns the defaults.
func DefaultAddFields() *AddFieldsConfig { return &AddFieldsConfig{Overwrite: true} }

// Validate implements pipeline.ProcessorConfig.
func (c *AddFieldsConfig) Validate() error {
	if len(c.Fields) == 0 {
		return config.Errorf("fields", "is required: a table of field = value")
	}
	var errs []error
	for _, k := range sortedKeys(c.Fields) {
		switch c.Fields[k].(type) {
		case string, bool, int64, float64:
		default:
			errs = append(errs, config.Errorf("fields."+k, "must be a string, number or boolean"))
		}
	}
	return errors.Join(errs...)
}

// Build implements pipeline.ProcessorConfig.
func (c *AddFieldsConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	p := &addFields{overwrite: c.Overwrite}
	for _, k := range sortedKeys(c.Fields) {
		p.fields = append(p.fields, pipeline.Field{Key: k, Value: c.Fields[k]})
	}
	return p, nil
}

type addFields struct {
	fields    []pipeline.Field
	overwrite bool
}

func (p *addFields) Process(ev *pipeline.Event) (bool, error) { return p.ProcessArena(ev, nil) }

func (p *addFields) ProcessArena(ev *pipeline.Event, a *pipeline.Arena) (bool, error) {
	missing := 0
	for i := range p.fields {
		if j := index(ev.Fields, p.fields[i].Key); j >= 0 {
			if p.overwrite {
				ev.Fields[j].Value = p.fields[i].Value
			}
		} else {
			missing++
		}
	}
	if missing == 0 {
		return true, nil
	}
	fs := ev.Fields
	if a != nil {
		fs = a.Grow(fs, missing)
	}
	for i := range p.fields {
		if index(ev.Fields, p.fields[i].Key) < 0 {
			fs = append(fs, p.fields[i])
		}
	}
	ev.Fields = fs
	return true, nil
}

// RenameConfig is `type = "rename"`: fields = { old = "new" }. A field the
// event does not have is left alone; a field already named new is
// replaced by the renamed one.
type RenameConfig struct {
	Type   string            `toml:"type"`
	Fields map[string]string `toml:"fields"`
}

// DefaultRename returns the defaults.
func DefaultRename() *RenameConfig { return &RenameConfig{} }

// Validate implements pipeline.ProcessorConfig.
func (c *RenameConfig) Validate() error {
	if len(c.Fields) == 0 {
		return config.Errorf("fields", "is required: a table of old = \"new\"")
	}
	var errs []error
	targets := map[string]string{}
	for _, k := range sortedKeys(c.Fields) {
		to := c.Fields[k]
		switch {
		case to == "":
			errs = append(errs, config.Errorf("fields."+k, "the new name must not be empty"))
		case to == k:
			errs = append(errs, config.Errorf("fields."+k, "renames the field to itself"))
		case targets[to] != "":
			errs = append(errs, config.Errorf("fields."+k, "%q is also the new name of %q", to, targets[to]))
		}
		targets[to] = k
	}
	return errors.Join(errs...)
}

// Build implements pipeline.ProcessorConfig.
func (c *RenameConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	p := &rename{}
	for _, k := range sortedKeys(c.Fields) {
		p.from = append(p.from, k)
		p.to = append(p.to, c.Fields[k])
	}
	return p, nil
}

type rename struct{ from, to []string }

func (p *rename) Process(ev *pipeline.Event) (bool, error) {
	for k, from := range p.from {
		i := index(ev.Fields, from)
		if i < 0 {
			continue
		}
		if j := index(ev.Fields, p.to[k]); j >= 0 {
			ev.Fields[j].Value = ev.Fields[i].Value
			ev.Fields = remove(ev.Fields, i)
			continue
		}
		ev.Fields[i].Key = p.to[k]
	}
	return true, nil
}

// DropFieldsConfig is `type = "drop_fields"`: fields = ["a", "b"].
type DropFieldsConfig struct {
	Type   string   `toml:"type"`
	Fields []string `toml:"fields"`
}

// DefaultDropFields returns the defaults.
func DefaultDropFields() *DropFieldsConfig { return &DropFieldsConfig{} }

// Validate implements pipeline.ProcessorConfig.
func (c *DropFieldsConfig) Validate() error {
	if len(c.Fields) == 0 {
		return config.Errorf("fields", "is required: a list of field names")
	}
	for _, f := range c.Fields {
		if f == "" {
			return config.Errorf("fields", "a field name must not be empty")
		}
	}
	return nil
}

// Build implements pipeline.ProcessorConfig.
func (c *DropFieldsConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	return &dropFields{fields: c.Fields}, nil
}

type dropFields struct{ fields []string }

func (p *dropFields) Process(ev *pipeline.Event) (bool, error) {
	for _, f := range p.fields {
		if i := index(ev.Fields, f); i >= 0 {
			ev.Fields = remove(ev.Fields, i)
		}
	}
	return true, nil
}

func index(fs []pipeline.Field, key string) int {
	for i := range fs {
		if fs[i].Key == key {
			return i
		}
	}
	return -1
}

// remove deletes fs[i] in place: the slice belongs to the event (the
// pool's arena slice, or an output's copy).
func remove(fs []pipeline.Field, i int) []pipeline.Field {
	copy(fs[i:], fs[i+1:])
	fs[len(fs)-1] = pipeline.Field{}
	fs = fs[:len(fs)-1]
	if len(fs) == 0 {
		return nil
	}
	return fs
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
