package stdout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/pelletier/go-toml/v2"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

func newConfig(t *testing.T, w io.Writer) *Config {
	t.Helper()
	c, ok := pipeline.NewOutputConfig("stdout")
	if !ok {
		t.Fatal("stdout output not registered")
	}
	cfg := c.(*Config)
	cfg.Inputs = []string{"app"}
	cfg.w = w
	return cfg
}

func build(t *testing.T, cfg *Config) pipeline.Output {
	t.Helper()
	if err := errors.Join(cfg.Common().Validate(), cfg.Validate()); err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Build(pipeline.BuildContext{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRaw(t *testing.T) {
	var buf bytes.Buffer
	o := build(t, newConfig(t, &buf))
	ctx := context.Background()
	for _, b := range []*pipeline.Batch{pipeline.NewTestBatch(nil, "a", "b"), pipeline.NewTestBatch(nil), pipeline.NewTestBatch(nil, "c")} {
		if err := o.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "a\nb\nc\n" {
		t.Errorf("got %q", buf.String())
	}
}

func TestJSONGzip(t *testing.T) {
	var buf bytes.Buffer
	cfg := newConfig(t, &buf)
	cfg.Format, cfg.Compression = "json", "gzip"
	o := build(t, cfg)
	src := &pipeline.Source{Name: "x", Fields: []pipeline.Field{{Key: "service", Value: "app"}}}
	for _, l := range []string{"one", "two"} {
		if err := o.Write(context.Background(), pipeline.NewTestBatch(src, l)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"message":"one","service":"app"}` + "\n" + `{"message":"two","service":"app"}` + "\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteError(t *testing.T) {
	o := build(t, newConfig(t, failWriter{}))
	err := o.Write(context.Background(), pipeline.NewTestBatch(nil, "a"))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "stdout") {
		t.Errorf("got %v, want a retryable error naming stdout", err)
	}
}

func TestDefaultsToStdout(t *testing.T) {
	c, _ := pipeline.NewOutputConfig("stdout")
	cfg := c.(*Config)
	if cfg.Format != "raw" || cfg.Compression != "none" {
		t.Errorf("defaults %+v", cfg.Settings)
	}
	out, err := cfg.Build(pipeline.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	if out.(*output).w != os.Stdout {
		t.Error("does not write to os.Stdout")
	}
}

func TestValidateAndTOML(t *testing.T) {
	c, _ := pipeline.NewOutputConfig("stdout")
	err := toml.NewDecoder(strings.NewReader(`type = "stdout"
inputs = ["app"]
format = "yaml"
compression = "zstd"
`)).DisallowUnknownFields().Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range config.Flatten(c.Validate()) {
		var ce *config.Error
		if errors.As(e, &ce) {
			keys = append(keys, ce.Key)
		}
	}
	if strings.Join(keys, ",") != "format" {
		t.Errorf("error keys %v, want [format]", keys)
	}
	if c.(*Config).Compression != "zstd" {
		t.Errorf("compression not decoded: %+v", c)
	}
}
