// Package processors owns the event processors a config lists under
// [[inputs.NAME.processors]] or [[outputs.NAME.processors]]: add_fields,
// rename, drop_fields, filter, sample, throttle, redact and aggregate. Each
// type has a config struct with defaults and Validate, registered with
// pipeline.RegisterProcessor in this package's init, in one table.
//
// Processors run on the worker pool, several workers at once, so a
// processor keeps no per-event state outside a lock. They change an event
// only by replacing its Fields slice entries or values; they never write
// into a value (a *pipeline.Text points into the chunk's shared arena,
// and an output's copy of an event shares it).
package processors

import "github.com/tailship/tailship/pipeline"

func init() {
	for typ, newConfig := range map[string]func() pipeline.ProcessorConfig{
		"add_fields":  func() pipeline.ProcessorConfig { return DefaultAddFields() },
		"rename":      func() pipeline.ProcessorConfig { return DefaultRename() },
		"drop_fields": func() pipeline.ProcessorConfig { return DefaultDropFields() },
		"filter":      func() pipeline.ProcessorConfig { return DefaultFilter() },
		"sample":      func() pipeline.ProcessorConfig { return DefaultSample() },
		"throttle":    func() pipeline.ProcessorConfig { return DefaultThrottle() },
		"redact":      func() pipeline.ProcessorConfig { return DefaultRedact() },
		"aggregate":   func() pipeline.ProcessorConfig { return DefaultAggregate() },
	} {
		pipeline.RegisterProcessor(typ, newConfig)
	}
}
