package file

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// Config is [inputs.NAME] with type = "file".
type Config struct {
	pipeline.InputSettings
	Include      []string        `toml:"include"`
	Exclude      []string        `toml:"exclude"`
	StartAt      string          `toml:"start_at"` // beginning | end, for files without a checkpoint
	ScanInterval config.Duration `toml:"scan_interval"`
	PollInterval config.Duration `toml:"poll_interval"`
	// CloseRemoved is how long a file that was renamed away or deleted is
	// kept open at its end, for writers that still append to the old name.
	CloseRemoved config.Duration `toml:"close_removed_after"`
	// MaxHold bounds how long a deleted file with unread data is kept open
	// (its disk space is not freed while it is); the rest is given up and
	// counted.
	MaxHold config.Duration `toml:"max_hold"`
	// MaxOpenFiles bounds the descriptors the input holds; 0 derives it
	// from the process limit.
	MaxOpenFiles int `toml:"max_open_files"`
	// CloseInactive closes a file that has not grown for this long; it is
	// reopened by identity when it grows.
	CloseInactive config.Duration `toml:"close_inactive"`
	// IgnoreOlder skips files not modified for this long that have no
	// checkpoint; 0 reads every file.
	IgnoreOlder config.Duration `toml:"ignore_older"`
	// CheckpointTTL forgets the checkpoint of a file that has been gone
	// this long.
	CheckpointTTL config.Duration `toml:"checkpoint_ttl"`
	// Kubernetes adds a "kubernetes" field (namespace, pod, uid,
	// container, restart count) read from kubelet's log paths to every
	// event of such a file.
	Kubernetes bool `toml:"kubernetes"`
	// DetectCopies takes a new file whose content begins like a file being
	// read (or like a checkpointed one) for a copytruncate copy and reads it
	// from where the original was read. Off, every new file is read from
	// its start: for inputs whose distinct files may hold the same content.
	DetectCopies bool `toml:"detect_copies"`
}

func init() {
	pipeline.RegisterInput("file", func() pipeline.InputConfig { return defaults() })
}

func defaults() *Config {
	return &Config{
		InputSettings: pipeline.DefaultInputSettings(),
		StartAt:       "beginning",
		ScanInterval:  config.Dur(10 * time.Second),
		PollInterval:  config.Dur(250 * time.Millisecond),
		CloseRemoved:  config.Dur(5 * time.Second),
		MaxHold:       config.Dur(5 * time.Minute),
		CloseInactive: config.Dur(5 * time.Minute),
		CheckpointTTL: config.Dur(24 * time.Hour),
		DetectCopies:  true,
	}
}

// Validate checks the file input's own keys.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Include) == 0 {
		errs = append(errs, config.Errorf("include", "at least one glob is required"))
	}
	for _, p := range c.Include {
		if !doublestar.ValidatePattern(filepath.ToSlash(p)) {
			errs = append(errs, config.Errorf("include", "invalid glob %q", p))
		}
	}
	for _, p := range c.Exclude {
		if !doublestar.ValidatePattern(filepath.ToSlash(p)) {
			errs = append(errs, config.Errorf("exclude", "invalid glob %q", p))
		}
	}
	switch c.StartAt {
	case "beginning", "end":
	default:
		errs = append(errs, config.Errorf("start_at", "must be \"beginning\" or \"end\", got %q", c.StartAt))
	}
	if c.ScanInterval.D() < 10*time.Millisecond {
		errs = append(errs, config.Errorf("scan_interval", "must be at least 10ms"))
	}
	if c.PollInterval.D() < time.Millisecond {
		errs = append(errs, config.Errorf("poll_interval", "must be at least 1ms"))
	}
	if c.MaxHold.D() <= 0 {
		errs = append(errs, config.Errorf("max_hold", "must be above 0"))
	}
	if c.MaxOpenFiles < 0 || c.MaxOpenFiles == 1 {
		errs = append(errs, config.Errorf("max_open_files", "must be 0 (derived from the process limit) or at least 2, got %d", c.MaxOpenFiles))
	}
	if c.CloseInactive.D() <= 0 {
		errs = append(errs, config.Errorf("close_inactive", "must be above 0"))
	}
	if c.IgnoreOlder.D() < 0 {
		errs = append(errs, config.Errorf("ignore_older", "must not be negative"))
	}
	if c.CheckpointTTL.D() <= 0 {
		errs = append(errs, config.Errorf("checkpoint_ttl", "must be above 0"))
	}
	return errors.Join(errs...)
}

// Build implements pipeline.InputConfig.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Input, error) {
	abs := func(ps []string) ([]string, error) {
		out := make([]string, len(ps))
		for i, p := range ps {
			a, err := filepath.Abs(p)
			if err != nil {
				return nil, err
			}
			out[i] = filepath.ToSlash(a)
		}
		return out, nil
	}
	inc, err := abs(c.Include)
	if err != nil {
		return nil, err
	}
	exc, err := abs(c.Exclude)
	if err != nil {
		return nil, err
	}
	skip, err := abs(bc.SkipPaths)
	if err != nil {
		return nil, err
	}
	for _, p := range skip {
		exc = append(exc, globQuote(p))
	}
	if bc.Checkpoints == nil {
		return nil, errors.New("file input needs a checkpoint store")
	}
	maxOpen := c.MaxOpenFiles
	if maxOpen == 0 {
		maxOpen = defaultMaxOpen()
	}
	return &Input{cfg: *c, name: bc.Name, include: inc, exclude: exc, store: bc.Checkpoints, log: bc.Logger, stats: bc.Stats, maxOpen: maxOpen, resumed: bc.Restarted}, nil
}

// globQuote makes a path match itself only, as an exclude glob.
func globQuote(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]{}\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// defaultMaxOpen leaves half the process's descriptor limit to the rest of
// the agent (sockets, output files) and to other inputs.
func defaultMaxOpen() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 512
	}
	return int(max(16, min(rl.Cur/2, 16384)))
}
