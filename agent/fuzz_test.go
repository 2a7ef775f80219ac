package agent

import (
	"errors"
	"strings"
	"testing"

	// The plugins, so the fuzzer reaches their decoders and Validate.
	_ "github.com/tailship/tailship/inputs/file"
	_ "github.com/tailship/tailship/outputs/file"
	_ "github.com/tailship/tailship/outputs/http"
	_ "github.com/tailship/tailship/outputs/stdout"
	_ "github.com/tailship/tailship/outputs/tcp"
	_ "github.com/tailship/tailship/parse"
	_ "github.com/tailship/tailship/processors"
)

// FuzzLoad: whatever the bytes, the loader returns a config or a
// *ConfigError whose every problem names the file and says something; it
// never panics, and a value that came from ${SECRET} is never quoted in
// a problem about a secret key.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"[agent]\ndata_dir = \"/tmp/x\"\n[inputs.a]\ntype = \"file\"\ninclude = [\"/tmp/*.log\"]\n[outputs.o]\ntype = \"stdout\"\ninputs = [\"a\"]\n",
		"[inputs.a]\ntype = \"file\"\ninclude = [\"[\"]\ninvalid_utf8 = \"drop\"\n",
		"[outputs.h]\ntype = \"http\"\nurl = \"https://127.0.0.1:1/\"\npassword = \"${SECRET}\"\ninputs = [\"a\"]\n",
		"[outputs.f]\ntype = \"file\"\npath = \"/tmp/out/%{service}/x.log\"\n",
		"[agent]\nshutdown_timeout = \"${MISSING}\"\n",
		"x = [\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	const secret = "s3cr3t-Fuzz-Value"
	lookup := func(k string) (string, bool) {
		if k == "SECRET" {
			return secret, true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := load(&loader{file: "fuzz.toml", noDisk: true}, data, lookup)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			return
		}
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("error %T is not a *ConfigError: %v", err, err)
		}
		if len(ce.Problems) == 0 {
			t.Fatal("ConfigError without problems")
		}
		for _, p := range ce.Problems {
			if p.File != "fuzz.toml" || p.Msg == "" {
				t.Fatalf("problem without file or message: %+v", p)
			}
			if strings.Contains(p.Key, "password") && strings.Contains(p.Msg, secret) && !strings.Contains(string(data), secret) {
				t.Fatalf("secret quoted in %s", p)
			}
		}
	})
}
