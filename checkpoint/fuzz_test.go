package checkpoint

import (
	"encoding/json"
	"maps"
	"testing"
)

// FuzzDecode: any bytes either decode to entries that survive a write and
// a second read unchanged, or are rejected (the store then starts empty);
// decode never panics.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"version":1,"entries":{"app/1:2":{"offset":42,"path":"/x.log","fp":7,"fp_len":100,"updated":"2026-12-02T05:00:00Z"}}}`,
		`{"version":1,"entries":{}}`,
		`{"version":1,"entries":null}`,
		`{"version":1,"entries":{"a":{"offset":-1}}}`,
		`{"version":2,"entries":{}}`,
		`{"version":1,"entries":{"a":{"offset":`,
		"\x00\x01not json",
		"",
		"null",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decode(b)
		if err != nil {
			if entries != nil {
				t.Fatal("entries returned with an error")
			}
			return
		}
		for k, e := range entries {
			if e.Offset < 0 || e.FPLen < 0 || e.TailLen < 0 || e.Size < 0 {
				t.Fatalf("accepted entry %q with a negative value: %+v", k, e)
			}
		}
		out, err := json.Marshal(fileFormat{Version: version, Entries: entries})
		if err != nil {
			t.Fatalf("accepted entries do not encode: %v", err)
		}
		again, err := decode(out)
		if err != nil {
			t.Fatalf("re-read of written entries failed: %v", err)
		}
		if !maps.EqualFunc(entries, again, func(a, b Entry) bool { return a.Updated.Equal(b.Updated) && sameExceptTime(a, b) }) {
			t.Fatalf("entries changed through a write: %+v -> %+v", entries, again)
		}
	})
}

func sameExceptTime(a, b Entry) bool {
	a.Updated = b.Updated
	return a == b
}
