package http

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

type label struct{ name, value string }

func sortedLabels(m map[string]string) []label {
	out := make([]label, 0, len(m))
	for k, v := range m {
		out = append(out, label{k, v})
	}
	slices.SortFunc(out, func(a, b label) int { return strings.Compare(a.name, b.name) })
	return out
}

// lokiState is the scratch space of one push request, reused across
// batches: streams are found by their encoded label set.
type lokiState struct {
	index   map[string]int
	streams []lokiStream
	labels  []label
	key     []byte
}

type lokiStream struct {
	labels  string // the encoded {"k":"v",...} object
	entries []lokiEntry
}

type lokiEntry struct {
	ts int64
	ev *pipeline.Event
}

// appendPush appends a Loki push request: events grouped into streams by
// their label set (the configured fields of each event, or of its source,
// plus the static labels), each stream's entries in batch order with
// strictly increasing timestamps, which Loki requires within a stream.
//
// Events carry no parsed time yet, so the timestamp is the time of sending,
// made unique per output so that the order survives equal clock readings.
func (o *output) appendPush(dst []byte, st *lokiState, b *pipeline.Batch) []byte {
	if st.index == nil {
		st.index = map[string]int{}
	}
	clear(st.index)
	for i := range st.streams {
		clear(st.streams[i].entries)
		st.streams[i].entries = st.streams[i].entries[:0]
	}
	st.streams = st.streams[:0]

	base := o.timestamps(b.Len())
	i := int64(0)
	for src, ev := range b.All() {
		st.labels = append(st.labels[:0], o.static...)
		for _, name := range o.labels {
			if v, ok := template.FieldValue(src, ev, name); ok && v != "" {
				st.labels = setLabel(st.labels, name, v)
			}
		}
		slices.SortFunc(st.labels, func(a, b label) int { return strings.Compare(a.name, b.name) })
		st.key = appendLabels(st.key[:0], st.labels)
		k, ok := st.index[string(st.key)]
		if !ok {
			k = len(st.streams)
			st.index[string(st.key)] = k
			if k < cap(st.streams) {
				st.streams = st.streams[:k+1]
				st.streams[k].labels = string(st.key)
			} else {
				st.streams = append(st.streams, lokiStream{labels: string(st.key)})
			}
		}
		st.streams[k].entries = append(st.streams[k].entries, lokiEntry{base + i, ev})
		i++
	}

	dst = append(dst, `{"streams":[`...)
	for si, s := range st.streams {
		if si > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"stream":`...)
		dst = append(dst, s.labels...)
		dst = append(dst, `,"values":[`...)
		for ei, e := range s.entries {
			if ei > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `["`...)
			dst = strconv.AppendInt(dst, e.ts, 10)
			dst = append(dst, `",`...)
			dst = codec.AppendString(dst, e.ev.Raw)
			dst = append(dst, ']')
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, "]}"...)
}

// timestamps reserves n consecutive nanosecond timestamps after every one
// handed out before, starting at the current time if it is later.
func (o *output) timestamps(n int) int64 {
	for {
		last := o.lastTS.Load()
		base := max(time.Now().UnixNano(), last+1)
		if o.lastTS.CompareAndSwap(last, base+int64(n)-1) {
			return base
		}
	}
}

// setLabel sets name to v, replacing a static label of the same name: a
// field is more specific than a constant.
func setLabel(ls []label, name, v string) []label {
	for i := range ls {
		if ls[i].name == name {
			ls[i].value = v
			return ls
		}
	}
	return append(ls, label{name, v})
}

func appendLabels(dst []byte, ls []label) []byte {
	dst = append(dst, '{')
	for i, l := range ls {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = codec.AppendString(dst, l.name)
		dst = append(dst, ':')
		dst = codec.AppendString(dst, l.value)
	}
	return append(dst, '}')
}
