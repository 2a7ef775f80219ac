package agent_test

import (
	"strings"
	"testing"
)

// TestAPIListenLoopbackOnly: the API refuses a non-loopback address unless
// api.allow_remote = true, with an error naming the file, line and key.
func TestAPIListenLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		api     string
		wantErr string
	}{
		{`listen = "127.0.0.1:8686"`, ""},
		{`listen = "[::1]:8686"`, ""},
		{`listen = "localhost:8686"`, ""},
		{`listen = ""`, ""},
		{`listen = "0.0.0.0:8686"`, "t.toml:2: api.listen: \"0.0.0.0:8686\" is not a loopback address"},
		{`listen = ":8686"`, "api.listen: \":8686\" is not a loopback address"},
		{`listen = "10.1.2.3:8686"`, "set api.allow_remote = true"},
		{"listen = \"0.0.0.0:8686\"\nallow_remote = true", ""},
		{`unready_after = "0s"`, "api.unready_after: must be above 0"},
		{`enable_reload = "yes"`, "api.enable_reload"},
	} {
		_, err := load(t, "[api]\n"+tc.api+"\n"+good, nil)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.api, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.api, err, tc.wantErr)
		}
	}
	cfg, err := load(t, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.Listen != "127.0.0.1:8686" || cfg.API.UnreadyAfter.D().String() != "1m0s" || cfg.API.EnableReload || cfg.API.AllowRemote {
		t.Errorf("api defaults = %+v", cfg.API)
	}
}
