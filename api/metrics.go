package api

import (
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailship/tailship/agent"
)

// The agent keeps its counters as plain atomics on the hot path; this
// collector turns one Status snapshot per scrape into metrics, so scraping
// costs the pipeline nothing between scrapes.
type collector struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tailship_"+name, help, labels, nil)
}

var (
	dInputLines      = desc("input_lines_total", "Lines read by every input.")
	dInputBytes      = desc("input_bytes_total", "Bytes read by every input.")
	dFilesOpen       = desc("files_open", "Files the inputs hold open.")
	dFileRotations   = desc("file_rotations_total", "Rotations a file input followed: files renamed (within the globs or out of them) while followed, and truncations (copytruncate). Deletions are not counted.", "input")
	dFileLag         = desc("file_lag_bytes", "Bytes of a followed file not yet acknowledged by every output (size minus committed offset).", "input", "path")
	dDropped         = desc("events_dropped_total", "Events not delivered, by reason (queue_full, rejected, retries_exhausted, partial_timeout, ...).", "reason")
	dConsumerLag     = desc("consumer_lag_messages", "Messages of a kafka partition not yet committed by the group (high watermark minus committed offset).", "input", "topic", "partition")
	dTruncated       = desc("lines_truncated_total", "Lines cut to max_line_bytes.")
	dUnterminated    = desc("lines_unterminated_total", "Last lines without a newline, shipped once their file was rotated away or deleted.")
	dInvalidUTF8     = desc("lines_invalid_utf8_total", "Lines with bytes that are not UTF-8 (passed or replaced, as invalid_utf8 says).")
	dParseErrors     = desc("parse_errors_total", "Lines a parser rejected (shipped as read with a parse_error field).")
	dLostBytes       = desc("input_lost_bytes_total", "Input bytes given up before they became lines, by reason (truncated, deleted).", "reason")
	dQueueEvents     = desc("queue_events", "Events in the output's queue.", "output")
	dQueueBytes      = desc("queue_bytes", "Bytes in the output's queue.", "output")
	dQueueMaxEvents  = desc("queue_capacity_events", "queue.max_events of the output.", "output")
	dQueueMaxBytes   = desc("queue_capacity_bytes", "queue.max_bytes of the output.", "output")
	dOutputEvents    = desc("output_events_total", "Events settled by the output, by status (delivered, rejected, dead_lettered, dropped).", "output", "status")
	dOutputBatches   = desc("output_batches_total", "Write attempts of batches, by status (delivered, failed).", "output", "status")
	dOutputRetries   = desc("output_retries_total", "Failed writes that were retried.", "output")
	dOutputFailing   = desc("output_failing_seconds", "How long the output has failed without a success (0 when healthy).", "output")
	dCheckpointAge   = desc("checkpoint_age_seconds", "Age of the oldest acknowledged position not yet written to the checkpoint file (0 when it is current).")
	dBackpressure    = desc("backpressure_seconds_total", "Time the input waited for the memory budget or the worker pool.", "input")
	dMemoryUsed      = desc("memory_used_bytes", "Bytes of the memory budget (agent.memory_limit) in use by buffered events.")
	dMemoryLimit     = desc("memory_limit_bytes", "agent.memory_limit.")
	dReady           = desc("ready", "1 when /readyz reports ready.")
	dReloads         = desc("config_reloads_total", "Reloads of the config, by result (ok, failed).", "result")
	dConfigTimestamp = desc("config_loaded_timestamp_seconds", "When the running config was loaded.")
)

// Describe sends nothing: the collector is unchecked, as its label values
// (paths, outputs) change with the config and the files found.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.s.snapshot()
	if !ok {
		return
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(dInputLines, float64(st.InputLines))
	counter(dInputBytes, float64(st.InputBytes))
	gauge(dFilesOpen, float64(st.FilesOpen))
	counter(dTruncated, float64(st.LinesTruncated))
	counter(dInvalidUTF8, float64(st.InvalidUTF8))
	counter(dUnterminated, float64(st.Unterminated))
	counter(dParseErrors, float64(st.ParseErrors))
	for _, reason := range sortedKeys(st.Dropped) {
		counter(dDropped, float64(st.Dropped[reason]), reason)
	}
	for _, reason := range sortedKeys(st.LostBytes) {
		counter(dLostBytes, float64(st.LostBytes[reason]), reason)
	}
	for _, key := range sortedKeys(st.ConsumerLag) {
		if parts := strings.SplitN(key, "/", 3); len(parts) == 3 {
			gauge(dConsumerLag, float64(st.ConsumerLag[key]), parts[0], parts[1], parts[2])
		}
	}
	gauge(dCheckpointAge, st.CheckpointAge)
	gauge(dMemoryUsed, float64(st.MemoryUsed))
	gauge(dMemoryLimit, float64(st.MemoryLimit))
	counter(dReloads, float64(st.Reloads), "ok")
	counter(dReloads, float64(st.ReloadFailures), "failed")
	gauge(dConfigTimestamp, float64(st.ConfigLoaded.UnixNano())/1e9)
	ready := 0.0
	if c.s.readiness(&st, true).Ready {
		ready = 1
	}
	gauge(dReady, ready)

	for _, in := range st.Inputs {
		counter(dBackpressure, in.BackpressureSeconds, in.Name)
		if in.Type == "file" || in.Rotations > 0 {
			counter(dFileRotations, float64(in.Rotations), in.Name)
		}
		seen := map[string]bool{}
		for _, f := range in.Files {
			// Two readers can briefly share a path (a file replaced
			// while its old self is read to its end); one series each
			// path, the larger lag.
			if seen[f.Path] {
				continue
			}
			seen[f.Path] = true
			gauge(dFileLag, float64(maxLag(in.Files, f.Path)), in.Name, f.Path)
		}
	}
	// Aggregate processors' windows, log-to-metric: a gauge per series,
	// named after the processor (tailship_aggregate_<name>_<stat>).
	for _, s := range st.Series {
		names := make([]string, len(s.Labels))
		values := make([]string, len(s.Labels))
		for i, l := range s.Labels {
			names[i], values[i] = l.Name, l.Value
		}
		m, err := prometheus.NewConstMetric(desc("aggregate_"+s.Name, s.Help, names...), prometheus.GaugeValue, s.Value, values...)
		if err == nil {
			ch <- m
		}
	}
	for _, o := range st.Outputs {
		gauge(dQueueEvents, float64(o.QueueEvents), o.Name)
		gauge(dQueueBytes, float64(o.QueueBytes), o.Name)
		gauge(dQueueMaxEvents, float64(o.QueueMaxEvents), o.Name)
		gauge(dQueueMaxBytes, float64(o.QueueMaxBytes), o.Name)
		counter(dOutputEvents, float64(o.Delivered), o.Name, "delivered")
		counter(dOutputEvents, float64(o.Rejected-o.DeadLettered), o.Name, "rejected")
		counter(dOutputEvents, float64(o.DeadLettered), o.Name, "dead_lettered")
		counter(dOutputEvents, float64(o.Dropped), o.Name, "dropped")
		counter(dOutputBatches, float64(o.Batches), o.Name, "delivered")
		counter(dOutputBatches, float64(o.Failures), o.Name, "failed")
		counter(dOutputRetries, float64(o.Retries), o.Name)
		failing := 0.0
		if o.FailingSince != nil {
			failing = time.Since(*o.FailingSince).Seconds()
		}
		gauge(dOutputFailing, failing, o.Name)
	}
}

func maxLag(files []agent.FileStatus, path string) int64 {
	var m int64
	for _, f := range files {
		if f.Path == path && f.Lag > m {
			m = f.Lag
		}
	}
	return m
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
