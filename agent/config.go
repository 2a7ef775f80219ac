package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// AgentConfig is the [agent] table.
type AgentConfig struct {
	DataDir     string      `toml:"data_dir"`
	Workers     int         `toml:"workers"`
	MemoryLimit config.Size `toml:"memory_limit"`
	LogLevel    string      `toml:"log_level"`
	LogFormat   string      `toml:"log_format"`
	// LogFile, when set, receives the agent's own logs instead of stderr;
	// file inputs never read it, even when their globs match it.
	LogFile            string          `toml:"log_file"`
	ShutdownTimeout    config.Duration `toml:"shutdown_timeout"`
	CheckpointInterval config.Duration `toml:"checkpoint_interval"`
}

// APIConfig is the [api] table.
type APIConfig struct {
	Listen string `toml:"listen"`
	// AllowRemote must be set to listen on anything but loopback: the API
	// shows file paths and error texts and can trigger reloads.
	AllowRemote bool `toml:"allow_remote"`
	// UnreadyAfter is how long an output may fail without a success before
	// /readyz reports the agent unready.
	UnreadyAfter config.Duration `toml:"unready_after"`
	// EnableReload turns on POST /reload.
	EnableReload bool `toml:"enable_reload"`
}

// Config is a loaded and validated configuration.
type Config struct {
	Path     string
	Agent    AgentConfig
	API      APIConfig
	Inputs   map[string]pipeline.InputConfig
	Outputs  map[string]pipeline.OutputConfig
	Warnings []Problem
}

func defaultConfig() document {
	return document{
		Agent: AgentConfig{
			DataDir: "./data", MemoryLimit: 8 << 20, LogLevel: "info", LogFormat: "json",
			ShutdownTimeout: config.Dur(10 * time.Second), CheckpointInterval: config.Dur(time.Second),
		},
		API: APIConfig{Listen: "127.0.0.1:8686", UnreadyAfter: config.Dur(time.Minute)},
	}
}

type document struct {
	Agent   AgentConfig               `toml:"agent"`
	API     APIConfig                 `toml:"api"`
	Inputs  map[string]map[string]any `toml:"inputs"`
	Outputs map[string]map[string]any `toml:"outputs"`
}

// Problem is one thing wrong with a config, located by file, line and key.
type Problem struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Key != "" {
		b.WriteString(": " + p.Key)
	}
	b.WriteString(": " + p.Msg)
	return b.String()
}

// ConfigError lists every problem found in a config file.
type ConfigError struct{ Problems []Problem }

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// loader collects problems while it reads one file.
type loader struct {
	file     string
	data     []byte
	pos      positions
	problems []Problem
	warnings []Problem
	// noDisk skips the data_dir write check, for the fuzz target, which
	// must not create directories wherever its input points.
	noDisk bool
}

func (l *loader) add(key, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: l.pos.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) warn(key, format string, args ...any) {
	l.warnings = append(l.warnings, Problem{File: l.file, Line: l.pos.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// LoadFile reads, interpolates, decodes and validates a config file. A
// *ConfigError lists every problem with file, line and key.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{[]Problem{{File: path, Msg: err.Error()}}}
	}
	return Load(path, data, os.LookupEnv)
}

// Load is LoadFile on bytes already read; lookup resolves ${VAR}.
func Load(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return load(&loader{file: file}, data, lookup)
}

func load(l *loader, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	file := l.file
	data, envProblems := interpolate(data, lookup)
	l.data = data
	l.pos = indexPositions(data)
	for _, p := range envProblems {
		p.File = file
		if k := l.pos.keyAt(p.Line); k != "" {
			p.Key = k
		}
		l.problems = append(l.problems, p)
	}

	doc := defaultConfig()
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&doc); err != nil {
		l.decodeProblems(err, "")
		var de *toml.DecodeError
		if errors.As(err, &de) && !isStrict(err) {
			// A syntax or type error stops decoding; nothing after it is
			// trustworthy enough to check.
			return nil, &ConfigError{l.problems}
		}
	}
	cfg := &Config{Path: file, Agent: doc.Agent, API: doc.API,
		Inputs: map[string]pipeline.InputConfig{}, Outputs: map[string]pipeline.OutputConfig{}}
	l.checkAgent(cfg)

	inNames, outNames := sortedKeys(doc.Inputs), sortedKeys(doc.Outputs)
	for _, name := range inNames {
		key := "inputs." + name
		if !l.checkName(key, name) {
			continue
		}
		typ, ok := l.pluginType(key, doc.Inputs[name], pipeline.InputTypes())
		if !ok {
			continue
		}
		pc, _ := pipeline.NewInputConfig(typ)
		if l.decodePlugin("inputs", name, inNames, outNames, pc) {
			l.validated(key, errors.Join(pc.Common().Validate(), pc.Validate()))
			pc.Common().ProcessorConfigs = l.decodeProcessors(key, pc.Common().Processors)
		}
		cfg.Inputs[name] = pc
	}
	for _, name := range outNames {
		key := "outputs." + name
		if !l.checkName(key, name) {
			continue
		}
		typ, ok := l.pluginType(key, doc.Outputs[name], pipeline.OutputTypes())
		if !ok {
			continue
		}
		pc, _ := pipeline.NewOutputConfig(typ)
		if l.decodePlugin("outputs", name, inNames, outNames, pc) {
			l.validated(key, errors.Join(pc.Common().Validate(), pc.Validate()))
			pc.Common().ProcessorConfigs = l.decodeProcessors(key, pc.Common().Processors)
		}
		cfg.Outputs[name] = pc
	}
	for _, name := range inNames {
		if pc, ok := cfg.Inputs[name]; ok {
			l.warnInsecure("inputs."+name, pc)
		}
	}
	for _, name := range outNames {
		if pc, ok := cfg.Outputs[name]; ok {
			l.warnInsecure("outputs."+name, pc)
		}
	}
	l.checkRoutes(cfg, inNames, outNames)
	if len(l.problems) == 0 && !l.noDisk {
		l.checkDataDir(cfg.Agent.DataDir)
	}
	cfg.Warnings = l.warnings
	if len(l.problems) > 0 {
		sort.SliceStable(l.problems, func(i, j int) bool { return l.problems[i].Line < l.problems[j].Line })
		return nil, &ConfigError{l.problems}
	}
	return cfg, nil
}

func isStrict(err error) bool {
	var se *toml.StrictMissingError
	return errors.As(err, &se)
}

func (l *loader) checkName(key, name string) bool {
	if nameRE.MatchString(name) {
		return true
	}
	l.add(key, "name %q may only contain letters, digits, '_' and '-'", name)
	return false
}

func (l *loader) pluginType(key string, table map[string]any, known []string) (string, bool) {
	raw, ok := table["type"]
	if !ok {
		l.add(key+".type", "missing; one of %s", strings.Join(known, ", "))
		return "", false
	}
	typ, ok := raw.(string)
	if !ok {
		l.add(key+".type", "must be a string")
		return "", false
	}
	for _, k := range known {
		if k == typ {
			return typ, true
		}
	}
	l.add(key+".type", "unknown type %q; one of %s", typ, strings.Join(known, ", "))
	return "", false
}

// decodePlugin decodes one plugin table strictly into target. It decodes the
// whole document into a struct built for the purpose, with target placed at
// [section.name] and every other table typed as "anything", so the decoder's
// own line numbers and key paths stay those of the file.
func (l *loader) decodePlugin(section, name string, inNames, outNames []string, target any) bool {
	anyT := reflect.TypeOf((*any)(nil)).Elem()
	sectionType := func(names []string, withTarget bool) reflect.Type {
		fields := make([]reflect.StructField, len(names))
		for i, n := range names {
			t := anyT
			if withTarget && n == name {
				t = reflect.TypeOf(target)
			}
			fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: t, Tag: reflect.StructTag(fmt.Sprintf(`toml:"%s"`, n))}
		}
		return reflect.StructOf(fields)
	}
	wt := reflect.StructOf([]reflect.StructField{
		{Name: "Agent", Type: anyT, Tag: `toml:"agent"`},
		{Name: "API", Type: anyT, Tag: `toml:"api"`},
		{Name: "Inputs", Type: sectionType(inNames, section == "inputs"), Tag: `toml:"inputs"`},
		{Name: "Outputs", Type: sectionType(outNames, section == "outputs"), Tag: `toml:"outputs"`},
	})
	w := reflect.New(wt)
	names := inNames
	sf := w.Elem().FieldByName("Inputs")
	if section == "outputs" {
		names, sf = outNames, w.Elem().FieldByName("Outputs")
	}
	for i, n := range names {
		if n == name {
			sf.Field(i).Set(reflect.ValueOf(target))
		}
	}
	err := toml.NewDecoder(bytes.NewReader(l.data)).DisallowUnknownFields().Decode(w.Interface())
	if err == nil {
		return true
	}
	before := len(l.problems)
	l.decodeProblems(err, section+"."+name)
	return len(l.problems) == before
}

// decodeProblems turns decoder errors into problems, keeping only those
// under prefix (each plugin's decode sees the whole file).
func (l *loader) decodeProblems(err error, prefix string) {
	under := func(key string) bool {
		return prefix == "" || key == prefix || strings.HasPrefix(key, prefix+".")
	}
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		for _, e := range se.Errors {
			key := strings.Join(e.Key(), ".")
			if prefix == "" && (strings.HasPrefix(key, "inputs.") || strings.HasPrefix(key, "outputs.")) {
				continue
			}
			line, _ := e.Position()
			key = l.pos.resolve(key, line)
			if under(key) {
				l.problems = append(l.problems, Problem{File: l.file, Line: line, Key: key, Msg: "unknown key"})
			}
		}
		return
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		key := l.pos.resolve(strings.Join(de.Key(), "."), line)
		if !under(key) && key != "" {
			return
		}
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		l.problems = append(l.problems, Problem{File: l.file, Line: line, Key: key, Msg: msg})
		return
	}
	var ve *config.ValueError
	if errors.As(err, &ve) {
		if key, ok := l.pos.findRaw(prefix, ve.Raw); ok {
			l.add(key, "%s", ve.Msg)
			return
		}
		if prefix == "" {
			l.add("", "%s", ve.Msg)
		}
		return
	}
	l.add(prefix, "%v", err)
}

// decodeProcessors turns the processors tables of the plugin table at key
// into their types' configs, strictly (unknown keys are errors), and
// validates them; problems are named key.processors[i].KEY.
func (l *loader) decodeProcessors(key string, tables []map[string]any) []pipeline.ProcessorConfig {
	var out []pipeline.ProcessorConfig
	for i, t := range tables {
		pkey := fmt.Sprintf("%s.processors[%d]", key, i)
		typ, ok := l.pluginType(pkey, t, pipeline.ProcessorTypes())
		if !ok {
			continue
		}
		pc, _ := pipeline.NewProcessorConfig(typ)
		// The table was decoded as plain values; written back out, it
		// decodes into the typed struct with the decoder's own checks.
		data, err := toml.Marshal(t)
		if err == nil {
			err = toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(pc)
		}
		if err != nil {
			l.processorProblems(pkey, err)
			continue
		}
		l.validated(pkey, pc.Validate())
		out = append(out, pc)
	}
	return out
}

// processorProblems reports a processor table's decode errors. Their
// positions are of the re-encoded table, so lines come from the file's
// index by key instead.
func (l *loader) processorProblems(pkey string, err error) {
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		for _, e := range se.Errors {
			l.add(pkey+"."+strings.Join(e.Key(), "."), "unknown key")
		}
		return
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		k := pkey
		if len(de.Key()) > 0 {
			k += "." + strings.Join(de.Key(), ".")
		}
		l.add(k, "%s", strings.TrimPrefix(de.Error(), "toml: "))
		return
	}
	var ve *config.ValueError
	if errors.As(err, &ve) {
		if k, ok := l.pos.findRaw(pkey+".", ve.Raw); ok {
			l.add(k, "%s", ve.Msg)
			return
		}
		l.add(pkey, "%s", ve.Msg)
		return
	}
	l.add(pkey, "%v", err)
}

// validated records the problems of a plugin's Validate under its table.
func (l *loader) validated(table string, err error) {
	for _, e := range config.Flatten(err) {
		var ce *config.Error
		if errors.As(e, &ce) {
			key := table
			if ce.Key != "" {
				key = table + "." + ce.Key
			}
			l.add(key, "%s", ce.Msg)
			continue
		}
		l.add(table, "%v", e)
	}
}

func (l *loader) checkAgent(cfg *Config) {
	a := cfg.Agent
	if a.Workers < 0 {
		l.add("agent.workers", "must be 0 (one per CPU) or more")
	}
	if a.MemoryLimit < 1<<20 {
		l.add("agent.memory_limit", "must be at least 1MiB")
	}
	switch a.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.add("agent.log_level", "must be debug, info, warn or error, got %q", a.LogLevel)
	}
	switch a.LogFormat {
	case "json", "console":
	default:
		l.add("agent.log_format", "must be json or console, got %q", a.LogFormat)
	}
	if a.ShutdownTimeout.D() <= 0 {
		l.add("agent.shutdown_timeout", "must be above 0")
	}
	if a.CheckpointInterval.D() < 10*time.Millisecond {
		l.add("agent.checkpoint_interval", "must be at least 10ms")
	}
	if a.DataDir == "" {
		l.add("agent.data_dir", "must not be empty")
	}
	if cfg.API.Listen != "" {
		host, _, err := net.SplitHostPort(cfg.API.Listen)
		if err != nil {
			l.add("api.listen", "want host:port, got %q", cfg.API.Listen)
		} else if !cfg.API.AllowRemote && !isLoopback(host) {
			l.add("api.listen", "%q is not a loopback address; the API exposes file paths, errors and reload: set api.allow_remote = true to serve it beyond this host", cfg.API.Listen)
		}
	}
	if cfg.API.UnreadyAfter.D() <= 0 {
		l.add("api.unready_after", "must be above 0")
	}
}

// warnInsecure warns about every TLS table of a plugin config that turns
// certificate verification off. It looks for config.TLS values by type, so
// a plugin with a TLS table gets the warning without code of its own.
func (l *loader) warnInsecure(key string, pc any) {
	for _, k := range insecureTLS(reflect.ValueOf(pc), key) {
		l.warn(k, "certificate verification is off: anyone between the agent and the server can read and change what is shipped; use ca_file for a private CA instead")
	}
}

var tlsType = reflect.TypeFor[config.TLS]()

func insecureTLS(v reflect.Value, key string) []string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	if v.Type() == tlsType {
		if v.Interface().(config.TLS).InsecureSkipVerify {
			return []string{key + ".insecure_skip_verify"}
		}
		return nil
	}
	var out []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		k := key
		if !f.Anonymous {
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			k = key + "." + name
		}
		out = append(out, insecureTLS(v.Field(i), k)...)
	}
	return out
}

func (l *loader) checkRoutes(cfg *Config, inNames, outNames []string) {
	read := map[string]bool{}
	for _, on := range outNames {
		oc, ok := cfg.Outputs[on]
		if !ok {
			continue
		}
		for _, in := range oc.Common().Inputs {
			if _, known := cfg.Inputs[in]; !known && !contains(inNames, in) {
				l.add("outputs."+on+".inputs", "names input %q, which is not defined", in)
			}
			read[in] = true
		}
	}
	for _, in := range inNames {
		if !read[in] {
			l.warn("inputs."+in, "no output reads this input; its lines are acknowledged and discarded")
		}
	}
	if len(inNames) == 0 {
		l.warn("inputs", "no inputs are defined")
	}
}

// isLoopback reports whether host (from host:port) can only be reached from
// this machine. An empty host or 0.0.0.0 listens everywhere.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// checkDataDir makes sure checkpoints can be written, creating the directory
// if needed, so a read-only mount fails at check time, not after hours.
func (l *loader) checkDataDir(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.add("agent.data_dir", "cannot create %s: %v", dir, err)
		return
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		l.add("agent.data_dir", "%s is not writable: %v", dir, err)
		return
	}
	f.Close()
	os.Remove(f.Name())
}
