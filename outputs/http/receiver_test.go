package http

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	nethttp "net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The receivers here decode requests the way the real servers do, and
// independently of the output's own encoder: the standard library's gzip,
// zstd's decoder, encoding/json.

// decodeBody undoes Content-Encoding as a server would.
func decodeBody(r *nethttp.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case "zstd":
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(raw, nil)
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
}

// failure decides, before a request is looked at, whether it fails: a
// status (0 = no failure) and an optional Retry-After.
type failure func(request int) (status int, retryAfter string)

// receiver is the part every fake server shares: failure injection and
// bookkeeping. Failed requests change nothing, like a 503 from a real one.
type receiver struct {
	t    *testing.T
	fail failure

	mu        sync.Mutex
	requests  int
	failed    int
	encodings map[string]int
	headers   []nethttp.Header
}

// admit counts the request and answers it if it is to fail.
func (rc *receiver) admit(w nethttp.ResponseWriter, r *nethttp.Request) bool {
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	if rc.encodings == nil {
		rc.encodings = map[string]int{}
	}
	rc.encodings[r.Header.Get("Content-Encoding")]++
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.mu.Unlock()
	if rc.fail == nil {
		return true
	}
	status, ra := rc.fail(n)
	if status == 0 {
		return true
	}
	rc.mu.Lock()
	rc.failed++
	rc.mu.Unlock()
	if ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	nethttp.Error(w, "injected failure", status)
	return false
}

func (rc *receiver) counts() (requests, failed int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests, rc.failed
}

// ndjsonServer accepts newline-delimited JSON (or raw lines) and keeps the
// messages in the order accepted.
type ndjsonServer struct {
	receiver
	raw   bool
	lines []string
}

func newNDJSONServer(t *testing.T, fail failure) (*ndjsonServer, *httptest.Server) {
	s := &ndjsonServer{receiver: receiver{t: t, fail: fail}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *ndjsonServer) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if !s.admit(w, r) {
		return
	}
	body, err := decodeBody(r)
	if err != nil {
		nethttp.Error(w, err.Error(), 400)
		return
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if s.raw {
			got = append(got, sc.Text())
			continue
		}
		var doc struct {
			Message *string `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil || doc.Message == nil {
			nethttp.Error(w, fmt.Sprintf("bad document %q: %v", sc.Text(), err), 400)
			return
		}
		got = append(got, *doc.Message)
	}
	s.mu.Lock()
	s.lines = append(s.lines, got...)
	s.mu.Unlock()
	w.WriteHeader(200)
}

func (s *ndjsonServer) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Len returns how many lines were accepted so far.
func (s *ndjsonServer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// esServer is an Elasticsearch _bulk endpoint. item decides each document's
// fate from its line and how many times that line was sent before: 0 (or
// 2xx) indexes it, anything else fails the item with that status.
type esServer struct {
	receiver
	item func(line string, attempt int) (status int, errType string)

	attempts map[string]int
	indexed  map[string][]string // index -> lines, in the order indexed
	queries  []string
}

func newESServer(t *testing.T, fail failure, item func(string, int) (int, string)) (*esServer, *httptest.Server) {
	s := &esServer{receiver: receiver{t: t, fail: fail}, item: item, attempts: map[string]int{}, indexed: map[string][]string{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *esServer) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if r.URL.Path != "/_bulk" || r.Method != "POST" {
		nethttp.Error(w, "no handler for "+r.Method+" "+r.URL.Path, 404)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		nethttp.Error(w, "bulk needs application/x-ndjson, got "+ct, 406)
		return
	}
	if !s.admit(w, r) {
		return
	}
	body, err := decodeBody(r)
	if err != nil {
		nethttp.Error(w, err.Error(), 400)
		return
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines)%2 != 0 || !strings.HasSuffix(string(body), "\n") {
		nethttp.Error(w, "The bulk request must be terminated by a newline", 400)
		return
	}
	type item struct {
		Index  string         `json:"_index"`
		Status int            `json:"status"`
		Error  map[string]any `json:"error,omitempty"`
	}
	var items []map[string]item
	errorsSeen := false
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, r.URL.RawQuery)
	for i := 0; i < len(lines); i += 2 {
		var action map[string]struct {
			Index string `json:"_index"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &action); err != nil {
			nethttp.Error(w, "malformed action: "+lines[i], 400)
			return
		}
		a, ok := action["create"]
		if !ok || len(action) != 1 || a.Index == "" {
			nethttp.Error(w, "want one create action with _index: "+lines[i], 400)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(lines[i+1]), &doc); err != nil {
			nethttp.Error(w, "malformed document: "+lines[i+1], 400)
			return
		}
		msg, _ := doc["message"].(string)
		if _, ok := doc["@timestamp"].(string); !ok {
			nethttp.Error(w, "document without @timestamp: "+lines[i+1], 400)
			return
		}
		status, errType := 201, ""
		if s.item != nil {
			if st, et := s.item(msg, s.attempts[msg]); st != 0 {
				status, errType = st, et
			}
		}
		s.attempts[msg]++
		it := item{Index: a.Index, Status: status}
		if status/100 == 2 {
			s.indexed[a.Index] = append(s.indexed[a.Index], msg)
		} else {
			errorsSeen = true
			it.Error = map[string]any{"type": errType, "reason": "injected for " + msg}
		}
		items = append(items, map[string]item{"create": it})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"took": 3, "errors": errorsSeen, "items": items})
}

// lokiServer is a Loki push endpoint. Like Loki (without out-of-order
// ingestion), it refuses a whole request with 400 if an entry of a stream is
// not newer than the last one accepted for that stream.
type lokiServer struct {
	receiver
	streams map[string][]string // canonical labels -> lines
	lastTS  map[string]int64
	tenants map[string]int
}

func newLokiServer(t *testing.T, fail failure) (*lokiServer, *httptest.Server) {
	s := &lokiServer{receiver: receiver{t: t, fail: fail}, streams: map[string][]string{}, lastTS: map[string]int64{}, tenants: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func canonical(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

func (s *lokiServer) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if r.URL.Path != "/loki/api/v1/push" {
		nethttp.Error(w, "404 page not found", 404)
		return
	}
	// Loki's push parser: JSON only with this content type (anything
	// else is taken as snappy protobuf), and no zstd.
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "gzip" && enc != "deflate" {
		nethttp.Error(w, fmt.Sprintf("Content-Encoding %q not supported", enc), 400)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		nethttp.Error(w, "snappy: corrupt input", 400)
		return
	}
	if !s.admit(w, r) {
		return
	}
	body, err := decodeBody(r)
	if err != nil {
		nethttp.Error(w, err.Error(), 400)
		return
	}
	var req struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values [][2]string       `json:"values"`
		} `json:"streams"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		nethttp.Error(w, "loghttp: "+err.Error(), 400)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Validate the whole request before taking any of it.
	last := map[string]int64{}
	for _, st := range req.Streams {
		if len(st.Stream) == 0 {
			nethttp.Error(w, "error at least one label pair is required per stream", 400)
			return
		}
		key := canonical(st.Stream)
		prev, ok := last[key]
		if !ok {
			prev = s.lastTS[key]
		}
		for _, v := range st.Values {
			ts, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil {
				nethttp.Error(w, "bad timestamp "+v[0], 400)
				return
			}
			if ts <= prev {
				nethttp.Error(w, fmt.Sprintf("entry out of order for stream %s", key), 400)
				return
			}
			prev = ts
		}
		last[key] = prev
	}
	for _, st := range req.Streams {
		key := canonical(st.Stream)
		for _, v := range st.Values {
			s.streams[key] = append(s.streams[key], v[1])
		}
	}
	for k, v := range last {
		s.lastTS[k] = v
	}
	s.tenants[r.Header.Get("X-Scope-OrgID")]++
	w.WriteHeader(204)
}
