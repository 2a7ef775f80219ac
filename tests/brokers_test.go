package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// needService skips (or, under TAILSHIP_REQUIRE_SERVICES=1, fails) a test
// whose server is unreachable.
func needService(t *testing.T, name string, err error, start string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s is unreachable (%v); start it with: %s", name, err, start)
	if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

const brokersConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"

[outputs.list]
type = "redis"
inputs = ["logs"]
address = "127.0.0.1:6379"
mode = "list"
key = "KEY:list"
batch = { max_events = 2000, timeout = "100ms" }

[outputs.stream]
type = "redis"
inputs = ["logs"]
mode = "stream"
key = "KEY:stream"
format = "json"
batch = { max_events = 3000, timeout = "100ms" }

[outputs.rabbit]
type = "amqp"
inputs = ["logs"]
url = "amqp://guest:${RABBIT_PASSWORD:-guest}@127.0.0.1:5672/"
exchange = "KEY"
routing_key = "logs"
batch = { max_events = 1000, timeout = "100ms" }
`

// TestBrokersThroughSIGKILL: the real binary tails two files into a Redis
// list, a Redis stream (json) and a RabbitMQ exchange, is killed with
// SIGKILL mid-stream and restarted: every broker ends up with every line,
// in file order, repeats only where a sequence restarts after the kill.
func TestBrokersThroughSIGKILL(t *testing.T) {
	ctx := context.Background()
	rc := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer rc.Close()
	needService(t, "Redis at 127.0.0.1:6379", rc.Ping(ctx).Err(), "redis-server --daemonize yes --port 6379")
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	needService(t, "RabbitMQ at 127.0.0.1:5672", err, "rabbitmq-server -detached")
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}

	key := fmt.Sprintf("tailship-e2e.%d.%d", os.Getpid(), time.Now().UnixNano())
	defer rc.Del(ctx, key+":list", key+":stream")
	// The exchange as the agent declares it, and a queue bound to it
	// that lives as long as this test's connection.
	if err := ch.ExchangeDeclare(key, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.ExchangeDelete(key, false, false)
	q, err := ch.QueueDeclare(key, false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "logs", key, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var rabbit []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for d := range deliveries {
			mu.Lock()
			rabbit = append(rabbit, string(d.Body))
			mu.Unlock()
		}
	})
	defer wg.Wait()
	defer ch.Close()

	dir := t.TempDir()
	cfg := writeConfig(t, dir, brokersConfig)
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.ReplaceAll(string(data), "KEY", key)), 0o644)
	want := map[string]int{"r0": 150000, "r1": 150000}
	for f, n := range want {
		appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, 0, n)
	}

	read := map[string]func() ([]string, error){
		"redis list": func() ([]string, error) {
			l, err := rc.LRange(ctx, key+":list", 0, -1).Result()
			for i := range l {
				l[i] = trimNL(l[i])
			}
			return l, err
		},
		"redis stream (json)": func() ([]string, error) {
			entries, err := rc.XRange(ctx, key+":stream", "-", "+").Result()
			out := make([]string, 0, len(entries))
			for _, e := range entries {
				out = append(out, jsonMessage(t, e.Values["message"]))
			}
			return out, err
		},
		"rabbitmq": func() ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			out := make([]string, len(rabbit))
			for i, l := range rabbit {
				out[i] = trimNL(l)
			}
			return out, nil
		},
	}

	a := startAgent(t, cfg)
	totalBytes := int64(0)
	for f, n := range want {
		totalBytes += int64(n * len(seqLine(f, 0)))
	}
	committedAtKill := killMidStream(t, a, filepath.Join(dir, "data"), totalBytes)
	// Every output had its share of what was committed; what each holds
	// at the kill is logged with the outcome.
	atKill := map[string]int{}
	for name, f := range read {
		lines, _ := f()
		atKill[name] = len(lines)
	}
	a = startAgent(t, cfg)
	for name, f := range read {
		deadline := time.Now().Add(120 * time.Second)
		for {
			lines, err := f()
			if err == nil {
				if lost, _, terr := tally(lines, want, restartsOK); terr == nil && lost == 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not everything arrived (%d lines, err %v); log:\n%s", name, len(lines), err, a.log)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, a.log)
	}
	for name, f := range read {
		lines, err := f()
		if err != nil {
			t.Fatal(err)
		}
		lost, dup, err := tally(lines, want, restartsOK)
		if err != nil || lost != 0 {
			t.Errorf("%s after SIGKILL: lost %d, duplicated %d, err %v", name, lost, dup, err)
		}
		t.Logf("%s after SIGKILL (%d lines there, %d of %d bytes committed, at the kill): lost %d, duplicated %d (in flight at the kill)", name, atKill[name], committedAtKill, totalBytes, lost, dup)
	}
}

func trimNL(s string) string { return strings.TrimSuffix(s, "\n") }

// jsonMessage returns the message field of a JSON event.
func jsonMessage(t *testing.T, v any) string {
	s, _ := v.(string)
	var doc struct{ Message string }
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		t.Errorf("stream entry %q: %v", s, err)
	}
	return trimNL(doc.Message)
}
