package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

// template is an index name pattern: literals, %{field} and time tokens.
type template []tmplPart

type tmplPart struct {
	lit   string
	field string // %{field}
	verb  byte   // 'Y', 'm', 'd', 'H' (UTC), or 0
}

func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, tmplPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return nil, errors.New("ends in a lone '%' (write %% for a percent sign)")
		}
		i++
		switch c := s[i]; c {
		case '%':
			lit.WriteByte('%')
		case 'Y', 'm', 'd', 'H':
			flush()
			t = append(t, tmplPart{verb: c})
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%%{ at %d is not closed by }", i-1)
			}
			name := s[i+1 : i+end]
			if name == "" {
				return nil, errors.New("%{} names no field")
			}
			flush()
			t = append(t, tmplPart{field: name})
			i += end
		default:
			return nil, fmt.Errorf("unknown token %%%c (known: %%{field}, %%Y %%m %%d %%H, and %%%% for a percent sign)", c)
		}
	}
	flush()
	if len(t) == 0 {
		return nil, errors.New("is empty")
	}
	return t, nil
}

func (t template) static() bool {
	for _, p := range t {
		if p.field != "" {
			return false
		}
	}
	return true
}

// expand appends the index name for one event. Elasticsearch index names
// are lowercase and exclude a few characters; field values are folded into
// that shape here rather than have every document of a batch rejected for
// an uppercase service name. A missing field expands to "unknown".
func (t template) expand(dst []byte, src *pipeline.Source, ev *pipeline.Event, now time.Time) []byte {
	for _, p := range t {
		switch {
		case p.field != "":
			v, ok := fieldValue(src, ev, p.field)
			if !ok || v == "" {
				v = "unknown"
			}
			for _, r := range strings.ToLower(v) {
				switch r {
				case '\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':':
					r = '_'
				}
				dst = append(dst, string(r)...)
			}
		case p.verb != 0:
			n, width := 0, 2
			switch p.verb {
			case 'Y':
				n, width = now.Year(), 4
			case 'm':
				n = int(now.Month())
			case 'd':
				n = now.Day()
			case 'H':
				n = now.Hour()
			}
			s := strconv.Itoa(n)
			for range width - len(s) {
				dst = append(dst, '0')
			}
			dst = append(dst, s...)
		default:
			dst = append(dst, p.lit...)
		}
	}
	return dst
}

// fieldValue finds a field of the event, then of its source, as text.
func fieldValue(src *pipeline.Source, ev *pipeline.Event, key string) (string, bool) {
	for i := range ev.Fields {
		if ev.Fields[i].Key == key {
			return valueText(ev.Fields[i].Value), true
		}
	}
	if src != nil {
		for i := range src.Fields {
			if src.Fields[i].Key == key {
				return valueText(src.Fields[i].Value), true
			}
		}
	}
	return "", false
}

func valueText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func hasField(fs []pipeline.Field, key string) bool {
	for i := range fs {
		if fs[i].Key == key {
			return true
		}
	}
	return false
}

// appendBulk appends a _bulk body: per event a create action (create works
// for plain indices and for data streams, which refuse index) and the
// document, which carries @timestamp (data streams require it) unless the
// event has its own.
func (o *output) appendBulk(dst []byte, b *pipeline.Batch, now time.Time) []byte {
	now = now.UTC()
	ts := now.AppendFormat(nil, time.RFC3339Nano)
	var action []byte
	if o.index.static() {
		action = o.appendAction(nil, nil, nil, now)
	}
	var doc, name []byte
	for src, ev := range b.All() {
		if action != nil {
			dst = append(dst, action...)
		} else {
			name = o.appendAction(name[:0], src, ev, now)
			dst = append(dst, name...)
		}
		doc = codec.AppendJSON(doc[:0], src, ev)
		if !hasField(ev.Fields, "@timestamp") {
			dst = append(dst, `{"@timestamp":"`...)
			dst = append(dst, ts...)
			dst = append(dst, '"', ',')
			dst = append(dst, doc[1:]...)
		} else {
			dst = append(dst, doc...)
		}
		dst = append(dst, '\n')
	}
	return dst
}

func (o *output) appendAction(dst []byte, src *pipeline.Source, ev *pipeline.Event, now time.Time) []byte {
	dst = append(dst, `{"create":{"_index":`...)
	name := o.index.expand(nil, src, ev, now)
	dst = codec.AppendString(dst, name)
	return append(dst, "}}\n"...)
}

// bulkResponse is what a _bulk response says per item, reduced by the
// filter_path the output asks for.
type bulkResponse struct {
	Errors bool                  `json:"errors"`
	Items  []map[string]bulkItem `json:"items"`
}

type bulkItem struct {
	Status int `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// bulkResult turns a 2xx _bulk response into nil (all documents taken) or
// a PartialError naming the items to retry and those rejected for good.
func (o *output) bulkResult(body []byte, n int) error {
	var r bulkResponse
	if err := json.Unmarshal(body, &r); err != nil {
		// The request may have been processed; retrying it whole can
		// duplicate documents, which beats losing them.
		return fmt.Errorf("POST %s: unreadable bulk response: %w: %s", o.url, err, snippet(body))
	}
	if !r.Errors {
		return nil
	}
	if len(r.Items) != n {
		return fmt.Errorf("POST %s: bulk response has %d items for %d documents", o.url, len(r.Items), n)
	}
	pe := &pipeline.PartialError{}
	var first string
	for i, m := range r.Items {
		for _, it := range m {
			reason := fmt.Sprintf("status %d", it.Status)
			if it.Error != nil {
				reason = fmt.Sprintf("status %d: %s: %s", it.Status, it.Error.Type, it.Error.Reason)
			}
			switch {
			case it.Status/100 == 2:
				continue
			case it.Status == 429 || it.Status == 408 || it.Status/100 == 5:
				pe.Retry = append(pe.Retry, i)
			default:
				pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: i, Reason: reason})
			}
			if first == "" {
				first = reason
			}
		}
	}
	if len(pe.Retry) == 0 && len(pe.Rejected) == 0 {
		return nil
	}
	pe.Err = fmt.Errorf("bulk: %d documents to retry, %d rejected, of %d; first: %s",
		len(pe.Retry), len(pe.Rejected), n, first)
	return pe
}
