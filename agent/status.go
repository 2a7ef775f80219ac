package agent

import (
	"regexp"
	"sort"
	"time"

	"github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/pipeline"
)

// Status is a snapshot of the running agent, for /status, /metrics and
// /readyz. Counters are totals since the process started, reloads included.
type Status struct {
	Config         string    `json:"config"`
	ConfigLoaded   time.Time `json:"config_loaded"`
	Running        bool      `json:"running"`
	Reloads        int       `json:"reloads"`
	ReloadFailures int       `json:"reload_failures"`
	LastReloadErr  string    `json:"last_reload_error,omitempty"`

	InputLines     int64            `json:"input_lines"`
	InputBytes     int64            `json:"input_bytes"`
	LinesTruncated int64            `json:"lines_truncated"`
	InvalidUTF8    int64            `json:"lines_invalid_utf8"`
	Unterminated   int64            `json:"lines_unterminated"`
	ParseErrors    int64            `json:"parse_errors"`
	FilesOpen      int64            `json:"files_open"`
	Dropped        map[string]int64 `json:"events_dropped"`
	LostBytes      map[string]int64 `json:"lost_bytes"`
	MemoryUsed     int64            `json:"memory_used_bytes"`
	MemoryLimit    int64            `json:"memory_limit_bytes"`
	// CheckpointAge is how long the oldest acknowledged position not yet
	// written to disk has waited (0: the file on disk is current).
	CheckpointAge float64 `json:"checkpoint_age_seconds"`
	// ConsumerLag is, per "input/topic/partition" of a kafka input, the
	// messages not yet committed (high watermark minus committed offset).
	ConsumerLag map[string]int64 `json:"consumer_lag,omitempty"`

	Inputs  []InputStatus  `json:"inputs"`
	Outputs []OutputStatus `json:"outputs"`
	// Series are the values aggregate processors expose, of the last
	// window each closed; /metrics serves them as tailship_aggregate_*.
	Series []pipeline.Series `json:"series,omitempty"`
}

// InputStatus is one input and the files it follows now.
type InputStatus struct {
	Name                string    `json:"name"`
	Type                string    `json:"type"`
	Started             time.Time `json:"started"` // kept by reloads that leave the input unchanged
	BackpressureSeconds float64   `json:"backpressure_seconds"`
	// Rotations are the renames and truncations a file input followed
	// (pipeline.Stats.RotationsOf), over reloads.
	Rotations int64        `json:"rotations"`
	Files     []FileStatus `json:"files"`
}

// FileStatus is one followed file. Lag is what is on disk but not yet
// acknowledged by every output.
type FileStatus struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	Lag    int64  `json:"lag"`
}

// OutputStatus is one output's queue and delivery counters.
type OutputStatus struct {
	Name           string     `json:"name"`
	Type           string     `json:"type"`
	Started        time.Time  `json:"started"` // kept by reloads that leave the output unchanged
	Inputs         []string   `json:"inputs"`
	QueueEvents    int        `json:"queue_events"`
	QueueBytes     int        `json:"queue_bytes"`
	QueueMaxEvents int        `json:"queue_max_events"`
	QueueMaxBytes  int64      `json:"queue_max_bytes"`
	Delivered      int64      `json:"delivered"`
	Batches        int64      `json:"batches"`
	Rejected       int64      `json:"rejected"`
	DeadLettered   int64      `json:"dead_lettered"`
	Dropped        int64      `json:"dropped"`
	Retries        int64      `json:"retries"`
	Failures       int64      `json:"failures"`
	FailingSince   *time.Time `json:"failing_since,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LastErrorAt    *time.Time `json:"last_error_at,omitempty"`
}

// fileLister is what an input offers to show its files (the file input).
type fileLister interface {
	Files() []file.FileStatus
}

// Status returns a snapshot of the running agent.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	a := s.cur
	st := Status{
		Config: s.cfg.Path, ConfigLoaded: s.loadedAt, Running: s.running,
		Reloads: s.reloads, ReloadFailures: s.reloadFailures, LastReloadErr: MaskSecrets(s.lastReloadErr),
	}
	s.mu.Unlock()
	return a.status(st)
}

// status fills st with the agent's state and the totals of parts it
// replaced.
func (a *Agent) status(st Status) Status {
	a.mu.Lock()
	retiredOut, retiredIn := a.totals.snapshot()
	runners, inputs := a.runners, a.inputs
	a.mu.Unlock()

	stats := a.stats
	st.InputLines = stats.InputLines.Load()
	st.InputBytes = stats.InputBytes.Load()
	st.LinesTruncated = stats.LinesTruncated.Load()
	st.InvalidUTF8 = stats.InvalidUTF8Lines.Load()
	st.Unterminated = stats.UnterminatedLines.Load()
	st.ParseErrors = stats.ParseErrors.Load()
	st.FilesOpen = stats.FilesOpen.Load()
	st.Dropped = stats.DroppedByReason()
	st.LostBytes = stats.LostBytesByReason()
	st.ConsumerLag = stats.LagByKey()
	st.MemoryUsed = a.pipe.Budget().Used()
	st.MemoryLimit = a.pipe.Budget().Limit()
	st.CheckpointAge = a.store.Age().Seconds()
	st.Series = a.Series()

	rotations := stats.RotationsByInput()
	for _, ni := range inputs {
		is := InputStatus{Name: ni.name, Type: ni.typ, Started: ni.started, Files: []FileStatus{},
			BackpressureSeconds: (retiredIn[ni.name] + ni.stream.Backpressure()).Seconds(), Rotations: rotations[ni.name]}
		if fl, ok := ni.input.(fileLister); ok {
			for _, f := range fl.Files() {
				is.Files = append(is.Files, FileStatus{Path: f.Path, Offset: f.Committed, Size: f.Size, Lag: max(f.Size-f.Committed, 0)})
			}
		}
		st.Inputs = append(st.Inputs, is)
	}
	for _, r := range runners {
		set := r.Settings()
		ev, by := r.Queue().Depth()
		t := retiredOut[r.Name]
		t.add(r.Runner)
		os := OutputStatus{
			Name: r.Name, Type: set.Type, Started: r.started, Inputs: set.Inputs,
			QueueEvents: ev, QueueBytes: by, QueueMaxEvents: set.Queue.MaxEvents, QueueMaxBytes: int64(set.Queue.MaxBytes),
			Delivered: t.delivered, Batches: t.batches, Rejected: t.rejected, DeadLettered: t.deadLettered,
			Dropped: t.dropped, Retries: t.retries, Failures: t.failures,
		}
		if since := r.FailingSince(); !since.IsZero() {
			os.FailingSince = &since
		}
		if msg, at := r.LastError(); msg != "" {
			os.LastError = MaskSecrets(msg)
			os.LastErrorAt = &at
		}
		st.Outputs = append(st.Outputs, os)
	}
	sort.Slice(st.Inputs, func(i, j int) bool { return st.Inputs[i].Name < st.Inputs[j].Name })
	sort.Slice(st.Outputs, func(i, j int) bool { return st.Outputs[i].Name < st.Outputs[j].Name })
	return st
}

// Outputs report errors without secrets; these patterns are a second line
// of defence for texts that came from elsewhere (a URL with userinfo in a
// net error, a key=value echoed by a receiver).
var (
	urlUserinfo = regexp.MustCompile(`(://[^/\s:@]+:)[^@\s/]+@`)
	secretPair  = regexp.MustCompile(`(?i)\b(password|passwd|pwd|token|secret|api[_-]?key|authorization)(["']?\s*[:=]\s*["']?)(bearer\s+|basic\s+)?[^\s"'&,;]+`)
	bearer      = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`)
)

// MaskSecrets replaces what looks like a credential in an error text.
func MaskSecrets(s string) string {
	if s == "" {
		return s
	}
	s = urlUserinfo.ReplaceAllString(s, "${1}xxxxx@")
	s = secretPair.ReplaceAllString(s, "${1}${2}${3}xxxxx")
	return bearer.ReplaceAllString(s, "${1} xxxxx")
}
