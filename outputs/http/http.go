// Package http is the HTTP output: one POST per batch, with the body as
// newline-delimited JSON, raw lines, an Elasticsearch _bulk request or a
// Loki push request, compressed with gzip or zstd (Content-Encoding).
// Elasticsearch and Loki decode gzip but not zstd request bodies, so zstd is
// a config error with those formats.
//
// # Delivery
//
// A batch is delivered when the receiver answers 2xx. 408, 429, 5xx and
// network errors are retried with the runner's backoff (retry.*), honouring
// Retry-After; other statuses are permanent rejections (dead-lettered with
// dead_letter_path, else counted as lost). A request that times out may have
// been processed, so a retry can duplicate it: delivery is at least once.
//
// Elasticsearch answers 200 even when some documents failed. The output
// reads the per-item statuses and reports them to the runner as a
// pipeline.PartialError: items that failed with 429 or 5xx are re-sent
// alone, items rejected for what they contain (a mapping error) are
// dead-lettered, the rest count as delivered.
//
// # Secrets
//
// Passwords and tokens come from the config (where ${ENV} is expanded) or
// from a file read once at start (password_file, bearer_token_file; a
// trailing newline is trimmed, as secret mounts usually have one). They are
// sent only as the Authorization header and are masked in every error the
// output returns, in case a receiver echoes a request back.
package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

// Formats of the request body.
const (
	FormatNDJSON        = "ndjson"        // one JSON object per event (codec json)
	FormatRaw           = "raw"           // the lines as read
	FormatElasticsearch = "elasticsearch" // a _bulk request
	FormatLoki          = "loki"          // a Loki push request (JSON)
)

func init() {
	pipeline.RegisterOutput("http", func() pipeline.OutputConfig { return DefaultConfig() })
}

// DefaultConfig returns the http output's defaults.
func DefaultConfig() *Config {
	return &Config{
		OutputSettings: pipeline.DefaultOutputSettings(),
		Format:         FormatNDJSON,
		Compression:    codec.CompressionGzip,
		Timeout:        config.Dur(30 * time.Second),
	}
}

// Config is [outputs.NAME] with type = "http".
type Config struct {
	pipeline.OutputSettings
	URL         string            `toml:"url"`
	Format      string            `toml:"format"`      // ndjson | raw | elasticsearch | loki
	Compression string            `toml:"compression"` // none | gzip | zstd
	Headers     map[string]string `toml:"headers"`
	Timeout     config.Duration   `toml:"timeout"` // per request, response included
	Auth        Auth              `toml:"auth"`
	TLS         config.TLS        `toml:"tls"`

	// elasticsearch
	Index    string `toml:"index"`    // template: %{field}, %Y %m %d %H (UTC), %%
	Pipeline string `toml:"pipeline"` // ingest pipeline, optional

	// loki
	Labels       []string          `toml:"labels"`        // fields that become stream labels
	StaticLabels map[string]string `toml:"static_labels"` // labels on every stream; unset: job = "tailship"
	TenantID     string            `toml:"tenant_id"`     // X-Scope-OrgID
}

// Auth is [outputs.NAME.auth]: basic (user and password) or bearer.
type Auth struct {
	User            string `toml:"user"`
	Password        string `toml:"password"`
	PasswordFile    string `toml:"password_file"`
	BearerToken     string `toml:"bearer_token"`
	BearerTokenFile string `toml:"bearer_token_file"`
}

var (
	labelRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	headerRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// Validate checks the keys of the http output; the loader validates the
// common output keys through Common.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		add("url", "required: where to POST batches")
	case err != nil:
		add("url", "invalid: %v", redactURLError(err))
	case u.Scheme != "http" && u.Scheme != "https":
		add("url", "must start with http:// or https://")
	case u.Host == "":
		add("url", "has no host")
	case u.Scheme == "http" && (c.TLS.Enabled || c.TLS.Configured()):
		add("tls", "TLS settings with an http:// url; use https://")
	}
	switch c.Format {
	case FormatNDJSON, FormatRaw, FormatElasticsearch, FormatLoki:
	default:
		add("format", "must be one of %q, %q, %q, %q, got %q", FormatNDJSON, FormatRaw, FormatElasticsearch, FormatLoki, c.Format)
	}
	switch c.Compression {
	case codec.CompressionNone, codec.CompressionGzip:
	case codec.CompressionZstd:
		// Elasticsearch and Loki decode gzip (and deflate) request
		// bodies, not zstd: they would answer 400 to every batch.
		if c.Format == FormatElasticsearch || c.Format == FormatLoki {
			add("compression", "%s does not decode zstd request bodies; use \"gzip\" or \"none\"", c.Format)
		}
	default:
		// snappy has no registered Content-Encoding that receivers decode.
		add("compression", "must be %q, %q or %q, got %q", codec.CompressionNone, codec.CompressionGzip, codec.CompressionZstd, c.Compression)
	}
	if c.Timeout.D() <= 0 {
		add("timeout", "must be above 0")
	}
	for k := range c.Headers {
		if !headerRE.MatchString(k) {
			add("headers", "%q is not a valid header name", k)
		}
		switch strings.ToLower(k) {
		case "content-encoding", "content-length", "host":
			add("headers", "%s is set by the output", k)
		}
	}
	errs = append(errs, c.Auth.validate())
	if u != nil && u.User != nil && (c.Auth.User != "" || c.Auth.BearerToken != "" || c.Auth.BearerTokenFile != "") {
		add("url", "holds credentials and auth is set too; use one")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))

	if c.Format == FormatElasticsearch {
		if c.Index == "" {
			add("index", "required with format = \"elasticsearch\" (e.g. \"logs-%%{service}\")")
		} else if _, err := template.Parse(c.Index); err != nil {
			add("index", "%v", err)
		}
	} else {
		if c.Index != "" {
			add("index", "only used with format = \"elasticsearch\"")
		}
		if c.Pipeline != "" {
			add("pipeline", "only used with format = \"elasticsearch\"")
		}
	}
	if c.Format == FormatLoki {
		for _, l := range c.Labels {
			if !labelRE.MatchString(l) {
				add("labels", "%q is not a valid Loki label name ([a-zA-Z_][a-zA-Z0-9_]*)", l)
			}
		}
		for k := range c.StaticLabels {
			if !labelRE.MatchString(k) {
				add("static_labels", "%q is not a valid Loki label name ([a-zA-Z_][a-zA-Z0-9_]*)", k)
			}
		}
		if len(c.Labels) == 0 && c.StaticLabels != nil && len(c.StaticLabels) == 0 {
			add("labels", "Loki needs at least one label: set labels or static_labels")
		}
	} else {
		if len(c.Labels) > 0 {
			add("labels", "only used with format = \"loki\"")
		}
		if c.StaticLabels != nil {
			add("static_labels", "only used with format = \"loki\"")
		}
		if c.TenantID != "" {
			add("tenant_id", "only used with format = \"loki\"")
		}
	}
	return errors.Join(errs...)
}

func (a *Auth) validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf("auth."+key, format, args...))
	}
	basic := a.User != "" || a.Password != "" || a.PasswordFile != ""
	bearer := a.BearerToken != "" || a.BearerTokenFile != ""
	if basic && bearer {
		add("bearer_token", "basic auth (user, password) and a bearer token are both set; use one")
	}
	if a.Password != "" && a.PasswordFile != "" {
		add("password_file", "password is set too; use one")
	}
	if a.BearerToken != "" && a.BearerTokenFile != "" {
		add("bearer_token_file", "bearer_token is set too; use one")
	}
	if (a.Password != "" || a.PasswordFile != "") && a.User == "" {
		add("user", "required with a password")
	}
	for key, path := range map[string]string{"password_file": a.PasswordFile, "bearer_token_file": a.BearerTokenFile} {
		if path == "" {
			continue
		}
		// Only the path and the OS error: never the contents.
		if s, err := config.ReadSecret(path); err != nil {
			add(key, "%v", err)
		} else if s == "" {
			add(key, "%s is empty", path)
		}
	}
	return errors.Join(errs...)
}

// Build implements pipeline.OutputConfig. Secret files are read here, once.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", redactURLError(err))
	}
	o := &output{
		format:   c.Format,
		timeout:  c.Timeout.D(),
		headers:  nethttp.Header{},
		tenantID: c.TenantID,
	}
	if c.Format == FormatElasticsearch {
		if !strings.HasSuffix(u.Path, "/_bulk") {
			u.Path = strings.TrimSuffix(u.Path, "/") + "/_bulk"
		}
		q := u.Query()
		if c.Pipeline != "" {
			q.Set("pipeline", c.Pipeline)
		}
		// Only what is needed to know which items failed: the response
		// to a 5,000-document bulk shrinks from ~1 MB to a few bytes
		// when all succeed.
		q.Set("filter_path", "errors,items.*.status,items.*.error")
		u.RawQuery = q.Encode()
		if o.index, err = template.Parse(c.Index); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
	}
	if c.Format == FormatLoki {
		o.labels = c.Labels
		static := c.StaticLabels
		if static == nil {
			static = map[string]string{"job": "tailship"}
		}
		o.static = sortedLabels(static)
	}
	if u.User != nil {
		// Credentials in the URL become an explicit header, and the URL
		// used in requests and errors carries none.
		p, _ := u.User.Password()
		o.secrets = append(o.secrets, p)
		o.headers.Set("Authorization", basicAuth(u.User.Username(), p))
		u.User = nil
	}
	o.url = u.String()
	for k, v := range c.Headers {
		o.headers.Set(k, v)
		// An API key in a custom header is as secret as a password.
		lk := strings.ToLower(k)
		for _, hint := range []string{"auth", "token", "key", "secret", "password", "cookie"} {
			if strings.Contains(lk, hint) {
				o.secrets = append(o.secrets, v)
				break
			}
		}
	}
	a := c.Auth
	switch {
	case a.User != "":
		pw := a.Password
		if a.PasswordFile != "" {
			if pw, err = config.ReadSecret(a.PasswordFile); err != nil {
				return nil, fmt.Errorf("auth.password_file: %w", err)
			}
		}
		o.secrets = append(o.secrets, pw)
		o.headers.Set("Authorization", basicAuth(a.User, pw))
	case a.BearerToken != "" || a.BearerTokenFile != "":
		tok := a.BearerToken
		if a.BearerTokenFile != "" {
			if tok, err = config.ReadSecret(a.BearerTokenFile); err != nil {
				return nil, fmt.Errorf("auth.bearer_token_file: %w", err)
			}
		}
		o.secrets = append(o.secrets, tok)
		o.headers.Set("Authorization", "Bearer "+tok)
	}
	if v := o.headers.Get("Authorization"); v != "" {
		o.secrets = append(o.secrets, v)
		// The credentials alone too: a receiver that quotes the base64
		// of user:password back in an error body would otherwise put
		// the password, one decode away, into logs and /status.
		if _, cred, ok := strings.Cut(v, " "); ok && cred != "" {
			o.secrets = append(o.secrets, cred)
		}
	}
	switch c.Format {
	case FormatNDJSON, FormatElasticsearch:
		o.headers.Set("Content-Type", "application/x-ndjson")
	case FormatRaw:
		o.headers.Set("Content-Type", "text/plain; charset=utf-8")
	case FormatLoki:
		o.headers.Set("Content-Type", "application/json")
	}
	if c.Compression != codec.CompressionNone {
		o.headers.Set("Content-Encoding", c.Compression)
	}
	if o.headers.Get("User-Agent") == "" {
		o.headers.Set("User-Agent", "tailship")
	}

	tr := nethttp.DefaultTransport.(*nethttp.Transport).Clone()
	tr.MaxIdleConnsPerHost = c.MaxInFlight + 1
	if u.Scheme == "https" {
		if tr.TLSClientConfig, err = c.TLS.ClientConfig(u.Hostname()); err != nil {
			return nil, err
		}
		tr.ForceAttemptHTTP2 = true
	}
	o.client = &nethttp.Client{
		Transport: tr,
		// A redirect of a POST would either drop the body or resend it
		// somewhere the user did not configure; report it instead.
		CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse },
	}

	// One encoder per batch in flight: encoders reuse their buffers.
	format := codec.FormatJSON
	if c.Format == FormatRaw {
		format = codec.FormatRaw
	}
	o.encoders = make(chan *encoder, c.MaxInFlight)
	for range c.MaxInFlight {
		enc, err := codec.NewEncoder(codec.Settings{Format: format, Compression: c.Compression})
		if err != nil {
			return nil, err
		}
		o.encoders <- &encoder{Encoder: enc}
	}
	return o, nil
}

func basicAuth(user, pw string) string {
	r, _ := nethttp.NewRequest("GET", "http://x", nil)
	r.SetBasicAuth(user, pw)
	return r.Header.Get("Authorization")
}

// redactURLError keeps a URL parse error from quoting a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(ue.Err.Error())
	}
	return err
}

type output struct {
	url      string
	format   string
	timeout  time.Duration
	headers  nethttp.Header
	client   *nethttp.Client
	encoders chan *encoder
	secrets  []string

	index    template.Template // elasticsearch
	labels   []string          // loki
	static   []label
	tenantID string
	lastTS   atomic.Int64 // loki: last timestamp used, to keep entries ordered
}

// encoder is one in-flight batch's working set.
type encoder struct {
	*codec.Encoder
	body []byte
	loki lokiState
}

// Write implements pipeline.Output.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	var enc *encoder
	select {
	case enc = <-o.encoders:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { o.encoders <- enc }()

	var payload []byte
	var err error
	switch o.format {
	case FormatElasticsearch:
		enc.body = o.appendBulk(enc.body[:0], b, time.Now())
		payload, err = enc.Compress(enc.body)
	case FormatLoki:
		enc.body = o.appendPush(enc.body[:0], &enc.loki, b)
		payload, err = enc.Compress(enc.body)
	default:
		payload, err = enc.Encode(b)
	}
	if err != nil {
		return pipeline.Permanent(fmt.Errorf("encode: %w", err))
	}
	if len(payload) == 0 {
		return nil
	}
	status, header, body, err := o.post(ctx, payload)
	if err != nil {
		return err
	}
	if err := o.classify(status, header, body); err != nil {
		return err
	}
	if o.format == FormatElasticsearch {
		return o.bulkResult(body, b.Len())
	}
	return nil
}

// post sends one request and returns the status and the response body: all
// of it for Elasticsearch (the per-item results), the first few KiB
// otherwise (for the error message).
func (o *output) post(ctx context.Context, payload []byte) (int, nethttp.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, o.url, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, nil, pipeline.Permanent(o.mask(fmt.Errorf("request: %w", err)))
	}
	req.Header = o.headers.Clone()
	if o.tenantID != "" {
		req.Header.Set("X-Scope-OrgID", o.tenantID)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		// net/http already strips a password from the URL it quotes.
		return 0, nil, nil, o.mask(config.ExplainTLSError(err))
	}
	defer resp.Body.Close()
	limit := int64(4 << 10)
	if o.format == FormatElasticsearch && resp.StatusCode/100 == 2 {
		limit = 256 << 20
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, nil, o.mask(fmt.Errorf("POST %s: reading the response: %w", o.url, err))
	}
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, body, nil
}

// classify maps a status to the runner's error classes.
func (o *output) classify(status int, h nethttp.Header, body []byte) error {
	if status/100 == 2 {
		return nil
	}
	err := o.mask(fmt.Errorf("POST %s: %d %s: %s", o.url, status, nethttp.StatusText(status), snippet(body)))
	if status == nethttp.StatusRequestTimeout || status == nethttp.StatusTooManyRequests || status/100 == 5 {
		if d, ok := retryAfter(h.Get("Retry-After"), time.Now()); ok {
			return pipeline.Throttle(err, d)
		}
		return err
	}
	return pipeline.Permanent(err)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. Very
// long delays are capped so a confused receiver cannot park an output for
// days; the cap is generous because a receiver that says an hour means it.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	const maxWait = time.Hour
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, maxWait), true
	}
	if t, err := nethttp.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxWait), true
	}
	return 0, false
}

// snippet is the start of a response body, on one line, for an error.
func snippet(b []byte) string {
	const max = 512
	s := string(b)
	if len(s) > max {
		s = s[:max] + "…"
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(empty body)"
	}
	return s
}

// mask replaces every secret in err's text, keeping err's class (Throttle,
// Permanent) to the caller, which wraps after masking.
func (o *output) mask(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := msg
	for _, s := range o.secrets {
		if s != "" {
			masked = strings.ReplaceAll(masked, s, "***")
		}
	}
	if masked == msg {
		return err
	}
	return errors.New(masked)
}

// Close implements pipeline.Output.
func (o *output) Close(context.Context) error {
	o.client.CloseIdleConnections()
	return nil
}
