package http

import (
	"bytes"
	"crypto/tls"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tailship/tailship/config/configtest"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// echoServer answers with a status and echoes the Authorization header in
// the body, as a careless proxy might: the worst case for leaking secrets.
func echoServer(t *testing.T, status func(auth string) int) *httptest.Server {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(status(r.Header.Get("Authorization")))
		io.WriteString(w, "you sent Authorization: "+r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAuthFromFiles(t *testing.T) {
	const password, token = "s3cr3t-pa55", "tok-9f8e7d"
	for _, tc := range []struct {
		name string
		auth Auth
		want string
	}{
		{"password_file", Auth{User: "shipper", PasswordFile: writeSecret(t, password+"\n")}, basicAuth("shipper", password)},
		{"password_file CRLF", Auth{User: "shipper", PasswordFile: writeSecret(t, password+"\r\n")}, basicAuth("shipper", password)},
		{"password", Auth{User: "shipper", Password: password}, basicAuth("shipper", password)},
		{"bearer_token_file", Auth{BearerTokenFile: writeSecret(t, token+"\n")}, "Bearer " + token},
		{"bearer_token", Auth{BearerToken: token}, "Bearer " + token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			srv := echoServer(t, func(a string) int {
				mu.Lock()
				got = append(got, a)
				mu.Unlock()
				return 200
			})
			c := testConfig(srv.URL)
			c.Auth = tc.auth
			out := build(t, c)
			defer out.Close(t.Context())
			if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x")); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("Authorization %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSecretsNeverInErrorsOrLogs: a receiver that echoes the credentials
// back in a 401 and in a 503 body: the errors the output returns, the
// agent's log lines and the dead-letter file never hold them.
func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	const password = "hunter2-very-secret"
	for _, status := range []int{401, 503} {
		srv := echoServer(t, func(string) int { return status })
		c := testConfig(srv.URL)
		c.Auth = Auth{User: "shipper", PasswordFile: writeSecret(t, password+"\n")}
		c.Retry.MaxElapsed.UnmarshalText([]byte("30ms"))
		c.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")

		out := build(t, c)
		err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
		out.Close(t.Context())
		if err == nil || !strings.Contains(err.Error(), "***") {
			t.Fatalf("%d: error %v; want the echoed secret masked", status, err)
		}
		enc := basicAuth("shipper", password)
		for _, secret := range []string{password, enc, strings.TrimPrefix(enc, "Basic ")} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("%d: error holds a secret: %v", status, err)
			}
		}

		// Through the runner, with its logs captured.
		var logs bytes.Buffer
		core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel)
		in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 20, ChunkLines: 10}
		ship(t, c, in, pipelinetest.ShipOptions{Logger: zap.New(core)})
		dead, _ := os.ReadFile(c.DeadLetterPath)
		if len(dead) == 0 || logs.Len() == 0 {
			t.Fatalf("%d: nothing dead-lettered (%d bytes) or logged (%d bytes)", status, len(dead), logs.Len())
		}
		for _, secret := range []string{password, strings.TrimPrefix(enc, "Basic ")} {
			if bytes.Contains(logs.Bytes(), []byte(secret)) || bytes.Contains(dead, []byte(secret)) {
				t.Fatalf("%d: a secret reached the logs or the dead-letter file:\n%s\n%s", status, logs.String(), dead)
			}
		}
	}
}

func TestSecretHeaderMasked(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		io.Copy(io.Discard, r.Body)
		nethttp.Error(w, "bad key "+r.Header.Get("X-Api-Key")+" for team "+r.Header.Get("X-Team"), 403)
	}))
	defer srv.Close()
	c := testConfig(srv.URL)
	c.Headers = map[string]string{"X-Api-Key": "k-123456789", "X-Team": "payments"}
	out := build(t, c)
	defer out.Close(t.Context())
	err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
	if err == nil || strings.Contains(err.Error(), "k-123456789") || !strings.Contains(err.Error(), "bad key *** for team payments") {
		t.Fatalf("error %v", err)
	}
}

func TestURLCredentialsBecomeHeader(t *testing.T) {
	var got string
	srv := echoServer(t, func(a string) int { got = a; return 500 })
	u := strings.Replace(srv.URL, "http://", "http://shipper:pa55w0rd@", 1)
	out := build(t, testConfig(u))
	defer out.Close(t.Context())
	err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
	if got != basicAuth("shipper", "pa55w0rd") {
		t.Fatalf("Authorization %q", got)
	}
	if err == nil || strings.Contains(err.Error(), "pa55w0rd") || strings.Contains(err.Error(), "shipper:") {
		t.Fatalf("error %v", err)
	}
}

// tlsServer is an ndjson receiver over TLS with a certificate from ca;
// with clientCA set it requires a client certificate signed by it.
func tlsServer(t *testing.T, ca *configtest.CA, requireClient bool) (*ndjsonServer, *httptest.Server) {
	s := &ndjsonServer{receiver: receiver{t: t}}
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server()}}
	if requireClient {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = ca.Pool()
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return s, srv
}

func TestTLS(t *testing.T) {
	ca := configtest.NewCA(t)

	t.Run("verified with ca_file", func(t *testing.T) {
		s, srv := tlsServer(t, ca, false)
		c := testConfig(srv.URL)
		c.TLS.CAFile = ca.CAFile
		in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 2000, ChunkLines: 100}
		ship(t, c, in, pipelinetest.ShipOptions{})
		if err := pipelinetest.CheckSequences(s.Lines(), in.Want()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unknown CA is a clear error", func(t *testing.T) {
		_, srv := tlsServer(t, ca, false)
		out := build(t, testConfig(srv.URL))
		defer out.Close(t.Context())
		err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") ||
			!strings.Contains(err.Error(), "tls.ca_file") {
			t.Fatalf("error %v; want unknown authority with a tls.ca_file hint", err)
		}
		if pipeline.IsPermanent(err) {
			t.Fatal("a TLS failure must be retried: the fix is in the config or on the server, and lines must wait")
		}
	})

	t.Run("wrong server_name", func(t *testing.T) {
		_, srv := tlsServer(t, ca, false)
		c := testConfig(srv.URL)
		c.TLS.CAFile = ca.CAFile
		c.TLS.ServerName = "logs.example.com"
		out := build(t, c)
		defer out.Close(t.Context())
		err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
		if err == nil || !strings.Contains(err.Error(), "tls.server_name") {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("insecure_skip_verify", func(t *testing.T) {
		_, srv := tlsServer(t, ca, false)
		c := testConfig(srv.URL)
		c.TLS.InsecureSkipVerify = true
		out := build(t, c)
		defer out.Close(t.Context())
		if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		s, srv := tlsServer(t, ca, true)
		c := testConfig(srv.URL)
		c.TLS.CAFile = ca.CAFile
		out := build(t, c)
		err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
		out.Close(t.Context())
		if err == nil {
			t.Fatal("a server requiring a client certificate accepted none")
		}
		c.TLS.CertFile, c.TLS.KeyFile = ca.Client()
		out = build(t, c)
		defer out.Close(t.Context())
		if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "with cert")); err != nil {
			t.Fatal(err)
		}
		if l := s.Lines(); len(l) != 1 || l[0] != "with cert" {
			t.Fatalf("lines %q", l)
		}
	})
}
