package kafka

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tailship/tailship/kafkasasl"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestSASL: with the password from sasl.password_file the input consumes
// from a cluster that requires SASL, with each mechanism; with a wrong one
// it gets nothing and its logs never carry the password.
func TestSASL(t *testing.T) {
	for _, mech := range []string{kafkasasl.Plain, kafkasasl.ScramSHA256, kafkasasl.ScramSHA512} {
		t.Run(mech, func(t *testing.T) { testSASL(t, mech) })
	}
}

func testSASL(t *testing.T, mech string) {
	topic := fmt.Sprintf("sasl-%d", time.Now().UnixNano())
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "admin", "right-secret"), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.SASL(kafkasasl.Mechanism(mech, "admin", "right-secret")))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		v := strings.TrimSuffix(pipelinetest.Line("s", i), "\n")
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()

	dir := t.TempDir()
	for _, tc := range []struct {
		pw   string
		want int
	}{{"wrong-secret", 0}, {"right-secret", 100}} {
		pwFile := filepath.Join(dir, "pw")
		os.WriteFile(pwFile, []byte(tc.pw+"\n"), 0o600)
		cfg := testConfig(addrs, topic, "g-"+tc.pw)
		cfg.SASL = kafkasasl.Config{Mechanism: mech, Username: "admin", PasswordFile: pwFile}
		core, logs := observer.New(zap.DebugLevel)
		rg := startRigLog(t, cfg, "kafka", false, zap.New(core))
		if tc.want > 0 {
			waitFor(t, "records", func() bool { return rg.Out.Len() >= tc.want })
			if err := pipelinetest.CheckSequences(rg.Out.Lines(), map[string]int{"s": tc.want}); err != nil {
				t.Fatal(err)
			}
		} else {
			waitFor(t, "the refused login in the log", func() bool {
				return logs.FilterLevelExact(zap.WarnLevel).Len()+logs.FilterLevelExact(zap.ErrorLevel).Len() > 0
			})
		}
		rg.Stop()
		if rg.Out.Len() != tc.want {
			t.Fatalf("password %s: %d records, want %d", tc.pw, rg.Out.Len(), tc.want)
		}
		for _, e := range logs.All() {
			line := fmt.Sprint(e.Message, e.ContextMap())
			if strings.Contains(line, "secret") {
				t.Fatalf("log carries the password: %s", line)
			}
		}
		t.Logf("password %s: %d log entries, none with the password", tc.pw, logs.Len())
	}
}
