package http

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

// foldIndex rewrites a field value into an Elasticsearch index name's
// shape: lowercase, without the characters index names exclude. Folding
// here beats having every document of a batch rejected for an uppercase
// service name.
func foldIndex(dst []byte, v string) []byte {
	for _, r := range strings.ToLower(v) {
		switch r {
		case '\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':':
			r = '_'
		}
		dst = append(dst, string(r)...)
	}
	return dst
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
	if o.index.Static() {
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
	name := o.index.Append(nil, src, ev, now, foldIndex)
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
