package tests

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const secretsConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "json"
log_level = "debug"
checkpoint_interval = "50ms"

[api]
listen = "APIADDR"

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"

[outputs.bearer]
type = "http"
inputs = ["logs"]
url = "RECEIVER/bearer"
format = "raw"
compression = "none"
batch = { max_events = 100, timeout = "50ms" }
retry = { initial = "20ms", max = "100ms" }
auth = { bearer_token = "${TAILSHIP_TEST_BEARER}" }

[outputs.basic]
type = "http"
inputs = ["logs"]
url = "RECEIVER/basic"
format = "raw"
compression = "none"
batch = { max_events = 100, timeout = "50ms" }
retry = { initial = "20ms", max = "100ms" }
auth = { user = "shipper", password_file = "%[1]s/basic.pw" }
`

// authSink is a receiver that records the Authorization header of every
// request and, while failing, refuses it the way a careless server does:
// with the credentials it was sent quoted back in the error body, so
// whatever the agent does with a response body is put to the test.
type authSink struct {
	failing atomic.Bool
	mu      sync.Mutex
	auth    map[string]map[string]int // path -> Authorization -> requests
	lines   map[string][]string       // path -> accepted lines
}

func (s *authSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := r.Header.Get("Authorization")
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	if s.auth[r.URL.Path] == nil {
		s.auth[r.URL.Path] = map[string]int{}
	}
	s.auth[r.URL.Path][a]++
	s.mu.Unlock()
	if s.failing.Load() {
		cred := strings.TrimPrefix(strings.TrimPrefix(a, "Bearer "), "Basic ")
		decoded, _ := base64.StdEncoding.DecodeString(cred)
		code := http.StatusInternalServerError
		if r.URL.Path == "/basic" {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, fmt.Sprintf(`{"error":"credentials %s (%s) not accepted","authorization":%q}`, cred, decoded, a), code)
		return
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	s.mu.Lock()
	for sc.Scan() {
		s.lines[r.URL.Path] = append(s.lines[r.URL.Path], sc.Text())
	}
	s.mu.Unlock()
}

func (s *authSink) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines[path])
}

// TestSecretsNeverExposed: an HTTP output with a bearer token from ${ENV}
// and another with a basic-auth password from password_file ship to a
// receiver that fails for a while and quotes the credentials back in its
// error bodies. The requests carry the credentials; neither secret (nor
// the base64 form basic auth puts on the wire) shows in /status, /metrics
// or the agent's log, and every line arrives once the receiver recovers.
func TestSecretsNeverExposed(t *testing.T) {
	random := func() string {
		b := make([]byte, 12)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	token, password := "tok-"+random(), "pw-"+random()
	basic := base64.StdEncoding.EncodeToString([]byte("shipper:" + password))
	secrets := map[string]string{"bearer token": token, "password": password, "basic credentials": basic}
	t.Setenv("TAILSHIP_TEST_BEARER", token)

	sink := &authSink{auth: map[string]map[string]int{}, lines: map[string][]string{}}
	sink.failing.Store(true)
	srv := httptest.NewServer(sink)
	defer srv.Close()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "basic.pw"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := freePort(t)
	cfg := writeConfig(t, dir, strings.NewReplacer("RECEIVER", srv.URL, "APIADDR", apiAddr).Replace(secretsConfig))
	const total = 2000
	appendSeq(t, filepath.Join(dir, "logs", "s.log"), "s", 0, total)
	a := startAgent(t, cfg)

	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + apiAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return string(b)
	}
	leak := func(where, text string) {
		t.Helper()
		for what, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s appears in %s:\n%s", what, where, text)
			}
		}
	}
	// Failing: both outputs have retried and report the receiver's error.
	var st struct {
		Outputs []struct {
			Name      string `json:"name"`
			Retries   int64  `json:"retries"`
			LastError string `json:"last_error"`
		} `json:"outputs"`
	}
	waitFor(t, "both outputs retrying with an error in /status", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + apiAddr + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&st) != nil || len(st.Outputs) != 2 {
			return false
		}
		for _, o := range st.Outputs {
			if o.Retries < 3 || !strings.Contains(o.LastError, "not accepted") {
				return false
			}
		}
		return true
	}, a)
	t.Logf("last errors while failing: %q, %q", st.Outputs[0].LastError, st.Outputs[1].LastError)
	leak("/status while failing", get("/status"))
	metrics := get("/metrics")
	if !strings.Contains(metrics, `output="bearer"`) {
		t.Fatalf("/metrics has no series for the bearer output:\n%s", metrics)
	}
	leak("/metrics while failing", metrics)

	sink.failing.Store(false)
	waitFor(t, "every line at both outputs", 60*time.Second, func() bool {
		return sink.count("/bearer") >= total && sink.count("/basic") >= total
	}, a)
	leak("/status after recovery", get("/status"))
	leak("/metrics after recovery", get("/metrics"))
	a.stop(syscall.SIGTERM)
	log := a.log.String()
	if !strings.Contains(log, "not accepted") {
		t.Fatalf("the agent never logged the receiver's error, so the log check proves nothing:\n%s", log)
	}
	leak("the agent's log", log)

	// What went on the wire did carry the secrets, and nothing else.
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for path, want := range map[string]string{"/bearer": "Bearer " + token, "/basic": "Basic " + basic} {
		if len(sink.auth[path]) != 1 || sink.auth[path][want] == 0 {
			t.Errorf("%s requests carried Authorization %v, want only %q", path, sink.auth[path], want)
		}
		lost, dup, err := tally(sink.lines[path], map[string]int{"s": total}, inOrder)
		if err != nil || lost != 0 {
			t.Errorf("%s: lost %d, duplicated %d, err %v", path, lost, dup, err)
		}
	}
}
