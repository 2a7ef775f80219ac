package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tailship/tailship/config"
)

// InputSettings are the keys every input table has. Plugin config structs
// embed it so the keys sit flat in [inputs.NAME].
type InputSettings struct {
	Type         string         `toml:"type"`
	Fields       map[string]any `toml:"fields"`
	MaxLineBytes config.Size    `toml:"max_line_bytes"`
	// InvalidUTF8 is what happens to bytes that are not UTF-8: "pass"
	// ships them as read, "replace" puts U+FFFD in their place. Such
	// lines are counted either way.
	InvalidUTF8 string `toml:"invalid_utf8"`
	// KeepCR keeps the \r of CRLF line endings; by default it is removed.
	KeepCR bool `toml:"keep_cr"`
	// Parser names how lines become fields: none, or a parser the parse
	// package registered (json, logfmt, regex, cri, docker, syslog).
	Parser string        `toml:"parser"`
	Parse  ParseSettings `toml:"parse"`
	// Processors are the [[inputs.NAME.processors]] tables as written;
	// the agent decodes each into its type's config, in ProcessorConfigs.
	Processors       []map[string]any  `toml:"processors"`
	ProcessorConfigs []ProcessorConfig `toml:"-"`
	// Multiline joins the lines of one record (a stack trace) into one
	// event; off unless a pattern or preset is set.
	Multiline MultilineSettings `toml:"multiline"`
}

// MultilineSettings are the options of [inputs.NAME.multiline]. The parse
// package validates them and runs the joining; see its doc for the rules.
type MultilineSettings struct {
	// Preset names built-in rules: java, go, python.
	Preset string `toml:"preset"`
	// StartPattern: a line that matches begins a record, any other line
	// continues the record before it.
	StartPattern string `toml:"start_pattern"`
	// ContinuePattern: a line that matches continues the record before
	// it, any other line begins one.
	ContinuePattern string `toml:"continue_pattern"`
	// Negate inverts the pattern's match.
	Negate bool `toml:"negate"`
	// MaxLines and MaxBytes bound a record; the line that would pass them
	// begins the next record, so nothing is lost.
	MaxLines int         `toml:"max_lines"`
	MaxBytes config.Size `toml:"max_bytes"`
	// Timeout ships a pending record when no line has come for this long.
	Timeout config.Duration `toml:"timeout"`
}

// Enabled reports whether multiline joining is configured.
func (m *MultilineSettings) Enabled() bool {
	return m.Preset != "" || m.StartPattern != "" || m.ContinuePattern != ""
}

// DefaultMultilineSettings are the limits Filebeat users know (500 lines)
// with a record size bound and a short quiet time.
func DefaultMultilineSettings() MultilineSettings {
	return MultilineSettings{MaxLines: 500, MaxBytes: 1 << 20, Timeout: config.Dur(5 * time.Second)}
}

// ParseSettings are the options of [inputs.NAME.parse]; each parser
// rejects the ones it does not use, so a misplaced option is an error.
type ParseSettings struct {
	// Pattern is the regex parser's expression; named groups become fields.
	Pattern string `toml:"pattern"`
	// Timestamp sets the event time from a parsed field.
	Timestamp TimestampSettings `toml:"timestamp"`
	// PartialTimeout bounds how long cri and docker wait for the rest of a
	// partial line before giving its pieces up (counted).
	PartialTimeout config.Duration `toml:"partial_timeout"`
	// KeepRaw keeps the line as read in "message" next to the parsed
	// fields. By default a parsed event is its fields (as in Fluent Bit,
	// Vector and Filebeat), which halves what a json output writes.
	KeepRaw bool `toml:"keep_raw"`
}

// TimestampSettings say which field holds the event time and how to read it.
type TimestampSettings struct {
	Field  string `toml:"field"`
	Layout string `toml:"layout"` // a Go time layout, or unix, unix_ms, unix_us, unix_ns
}

// DefaultInputSettings returns the defaults for the common input keys.
func DefaultInputSettings() InputSettings {
	return InputSettings{MaxLineBytes: 1 << 20, Parser: "none", InvalidUTF8: "pass",
		Parse:     ParseSettings{PartialTimeout: config.Dur(10 * time.Second)},
		Multiline: DefaultMultilineSettings()}
}

// Lines returns how the pipeline cuts this input's lines.
func (s *InputSettings) Lines() LineOptions {
	return LineOptions{KeepCR: s.KeepCR, ReplaceInvalidUTF8: s.InvalidUTF8 == "replace"}
}

// Common returns the settings; promoted to plugin configs that embed them.
func (s *InputSettings) Common() *InputSettings { return s }

// Validate checks the common input keys.
func (s *InputSettings) Validate() error {
	var errs []error
	if s.MaxLineBytes < 16 {
		errs = append(errs, config.Errorf("max_line_bytes", "must be at least 16 bytes, got %d", int64(s.MaxLineBytes)))
	}
	switch s.InvalidUTF8 {
	case "pass", "replace":
	default:
		errs = append(errs, config.Errorf("invalid_utf8", "must be \"pass\" or \"replace\", got %q", s.InvalidUTF8))
	}
	for k, v := range s.Fields {
		switch v.(type) {
		case string, bool, int64, float64:
		default:
			errs = append(errs, config.Errorf("fields."+k, "must be a string, number or boolean"))
		}
	}
	errs = append(errs, s.validateParser())
	return errors.Join(errs...)
}

func (s *InputSettings) validateParser() error {
	if s.Parser == "none" || s.Parser == "" {
		var errs []error
		if s.Parse.Pattern != "" {
			errs = append(errs, config.Errorf("parse.pattern", "is only used by parser = \"regex\""))
		}
		if s.Parse.Timestamp != (TimestampSettings{}) {
			errs = append(errs, config.Errorf("parse.timestamp", "needs a parser to read fields from (parser = \"none\")"))
		}
		if s.Parse.KeepRaw {
			errs = append(errs, config.Errorf("parse.keep_raw", "needs a parser (parser = \"none\" ships the line as it is)"))
		}
		if len(errs) == 0 {
			_, err := BuildParser(s) // multiline runs without a parser too
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	parsers.Lock()
	_, ok := parsers.m[s.Parser]
	parsers.Unlock()
	if !ok {
		return config.Errorf("parser", "unknown parser %q (known: %s)", s.Parser, strings.Join(ParserNames(), ", "))
	}
	_, err := BuildParser(s)
	return err
}

// BatchConfig closes a batch on whichever limit comes first.
type BatchConfig struct {
	MaxEvents int             `toml:"max_events"`
	MaxBytes  config.Size     `toml:"max_bytes"`
	Timeout   config.Duration `toml:"timeout"`
}

// QueueConfig bounds an output's queue.
type QueueConfig struct {
	MaxEvents int         `toml:"max_events"`
	MaxBytes  config.Size `toml:"max_bytes"`
	WhenFull  string      `toml:"when_full"` // block | drop_newest
}

// RetryConfig shapes the backoff between attempts of a failed batch.
type RetryConfig struct {
	Initial    config.Duration `toml:"initial"`
	Max        config.Duration `toml:"max"`
	MaxElapsed config.Duration `toml:"max_elapsed"` // 0 retries forever
}

// OutputSettings are the keys every output table has.
type OutputSettings struct {
	Type   string      `toml:"type"`
	Inputs []string    `toml:"inputs"`
	Batch  BatchConfig `toml:"batch"`
	Queue  QueueConfig `toml:"queue"`
	Retry  RetryConfig `toml:"retry"`
	// MaxInFlight is how many batches may be written at once. 1 keeps
	// batches in order; more trades order for throughput against a slow
	// receiver. Acknowledgements commit in order either way.
	MaxInFlight int `toml:"max_in_flight"`
	// DeadLetterPath, when set, is a file that receives every event the
	// output rejects permanently, as a JSON line with the reason, instead
	// of counting it as lost.
	DeadLetterPath string `toml:"dead_letter_path"`
	// When, if set, routes by content: the output takes only the events
	// of its inputs that match; the others count as settled for it.
	When *Condition `toml:"when"`
	// Processors are the [[outputs.NAME.processors]] tables as written
	// (see InputSettings.Processors). They run on this output's copy of
	// each event, so other outputs see the event unchanged.
	Processors       []map[string]any  `toml:"processors"`
	ProcessorConfigs []ProcessorConfig `toml:"-"`
}

// DefaultOutputSettings returns the defaults for the common output keys.
func DefaultOutputSettings() OutputSettings {
	return OutputSettings{
		Batch:       BatchConfig{MaxEvents: 5000, MaxBytes: 1 << 20, Timeout: config.Dur(time.Second)},
		Queue:       QueueConfig{MaxEvents: 20000, MaxBytes: 8 << 20, WhenFull: "block"},
		Retry:       RetryConfig{Initial: config.Dur(100 * time.Millisecond), Max: config.Dur(30 * time.Second)},
		MaxInFlight: 1,
	}
}

// Common returns the settings; promoted to plugin configs that embed them.
func (s *OutputSettings) Common() *OutputSettings { return s }

// Validate checks the common output keys.
func (s *OutputSettings) Validate() error {
	var errs []error
	if len(s.Inputs) == 0 {
		errs = append(errs, config.Errorf("inputs", "an output needs at least one input to read"))
	}
	if s.Batch.MaxEvents < 1 {
		errs = append(errs, config.Errorf("batch.max_events", "must be at least 1"))
	}
	if s.Batch.MaxBytes < 1 {
		errs = append(errs, config.Errorf("batch.max_bytes", "must be at least 1 byte"))
	}
	if s.Batch.Timeout.D() <= 0 {
		errs = append(errs, config.Errorf("batch.timeout", "must be above 0"))
	}
	if s.Queue.MaxEvents < 1 {
		errs = append(errs, config.Errorf("queue.max_events", "must be at least 1"))
	}
	if s.Queue.MaxBytes < 1 {
		errs = append(errs, config.Errorf("queue.max_bytes", "must be at least 1 byte"))
	}
	switch s.Queue.WhenFull {
	case "block", "drop_newest":
	default:
		errs = append(errs, config.Errorf("queue.when_full", "must be \"block\" or \"drop_newest\", got %q", s.Queue.WhenFull))
	}
	if s.Retry.Initial.D() <= 0 {
		errs = append(errs, config.Errorf("retry.initial", "must be above 0"))
	}
	if s.Retry.Max.D() < s.Retry.Initial.D() {
		errs = append(errs, config.Errorf("retry.max", "must not be below retry.initial"))
	}
	if s.MaxInFlight < 1 || s.MaxInFlight > 256 {
		errs = append(errs, config.Errorf("max_in_flight", "must be between 1 and 256, got %d", s.MaxInFlight))
	}
	if s.When != nil {
		errs = append(errs, config.Prefix("when", s.When.Compile()))
	}
	if s.DeadLetterPath != "" {
		if fi, err := os.Stat(s.DeadLetterPath); err == nil && fi.IsDir() {
			errs = append(errs, config.Errorf("dead_letter_path", "%q is a directory; it must name a file", s.DeadLetterPath))
		} else if fi, err := os.Stat(filepath.Dir(s.DeadLetterPath)); err == nil && !fi.IsDir() {
			errs = append(errs, config.Errorf("dead_letter_path", "%q: %s is not a directory", s.DeadLetterPath, filepath.Dir(s.DeadLetterPath)))
		}
	}
	return errors.Join(errs...)
}
