// Package packaging_test checks the files in packaging/: the Kubernetes
// manifests decode as Kubernetes objects with the fields that matter, their
// embedded configs load, the systemd unit is hardened and reloads with
// SIGHUP, and the Dockerfile builds the static binary CI builds.
package packaging_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/tailship/tailship/agent"
	_ "github.com/tailship/tailship/inputs/amqp"
	"github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/inputs/kafka"
	_ "github.com/tailship/tailship/outputs/file"
	_ "github.com/tailship/tailship/outputs/http"
	_ "github.com/tailship/tailship/parse"
)

// The parts of Kubernetes objects the tests look at. Decoding is strict
// about types (a probe port written as a list fails), loose about fields
// not listed here.
type object struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   meta              `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
}

type meta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	Tolerations                   []struct {
		Operator string `yaml:"operator"`
		Key      string `yaml:"key"`
		Effect   string `yaml:"effect"`
	} `yaml:"tolerations"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name     string `yaml:"name"`
		HostPath *struct {
			Path string `yaml:"path"`
			Type string `yaml:"type"`
		} `yaml:"hostPath"`
		EmptyDir  *map[string]any `yaml:"emptyDir"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool `yaml:"privileged"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

func decodeAll(t *testing.T, path string) []object {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(out)+1, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("%s: document %d lacks apiVersion, kind or metadata.name: %+v", path, len(out)+1, o)
		}
		out = append(out, o)
	}
	return out
}

func byKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func one(t *testing.T, objs []object, kind string) object {
	t.Helper()
	got := byKind(objs, kind)
	if len(got) != 1 {
		t.Fatalf("want one %s, have %d", kind, len(got))
	}
	return got[0]
}

func containerNamed(t *testing.T, spec podSpec, name string) container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return container{}
}

// checkTailshipContainer checks what both manifests share: the agent's
// probes on its API port, resources, and a locked-down security context.
func checkTailshipContainer(t *testing.T, c container) {
	t.Helper()
	if !strings.Contains(strings.Join(c.Args, " "), "run --config /etc/tailship/tailship.toml") {
		t.Errorf("args %v do not run the mounted config", c.Args)
	}
	apiPort := ""
	for _, p := range c.Ports {
		if p.ContainerPort == 8686 {
			apiPort = p.Name
		}
	}
	if apiPort == "" {
		t.Errorf("no container port 8686 (the API)")
	}
	for name, p := range map[string]*probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("probe for %s missing", name)
			continue
		}
		if p.HTTPGet.Path != name {
			t.Errorf("probe path %q, want %q", p.HTTPGet.Path, name)
		}
		if p.HTTPGet.Port != apiPort && p.HTTPGet.Port != 8686 {
			t.Errorf("probe %s on port %v, want the API port", name, p.HTTPGet.Port)
		}
	}
	for _, k := range []string{"cpu", "memory"} {
		if c.Resources.Requests[k] == "" {
			t.Errorf("resources.requests.%s missing", k)
		}
	}
	for _, k := range []string{"cpu", "memory"} {
		if c.Resources.Limits[k] == "" {
			t.Errorf("resources.limits.%s missing", k)
		}
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("no securityContext")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation is not false")
	}
	if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities drop %v add %v, want drop [ALL] and none added", sc.Capabilities.Drop, sc.Capabilities.Add)
	}
}

// loadEmbedded loads a config from a ConfigMap the way the agent would,
// with data_dir moved to a temporary directory (loading creates it).
// Every key must be known: a manifest that the agent would reject fails.
func loadEmbedded(t *testing.T, doc string) *agent.Config {
	t.Helper()
	doc = strings.Replace(doc, `data_dir = "/var/lib/tailship"`, `data_dir = "`+t.TempDir()+`"`, 1)
	env := func(string) (string, bool) { return "", false }
	cfg, err := agent.Load("configmap.toml", []byte(doc), env)
	if err != nil {
		t.Fatalf("embedded config does not load:\n%v", err)
	}
	return cfg
}

func TestDaemonSetManifest(t *testing.T) {
	objs := decodeAll(t, "kubernetes/daemonset.yaml")
	ns := one(t, objs, "Namespace")
	sa := one(t, objs, "ServiceAccount")
	cm := one(t, objs, "ConfigMap")
	ds := one(t, objs, "DaemonSet")
	for _, o := range []object{sa, cm, ds} {
		if o.Metadata.Namespace != ns.Metadata.Name {
			t.Errorf("%s %s is in namespace %q, want %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace, ns.Metadata.Name)
		}
	}
	if ds.APIVersion != "apps/v1" {
		t.Errorf("DaemonSet apiVersion %q", ds.APIVersion)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template's labels", k, v)
		}
	}
	pod := ds.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, sa.Metadata.Name)
	}
	everyNode := false
	for _, tol := range pod.Tolerations {
		if tol.Operator == "Exists" && tol.Key == "" && tol.Effect == "" {
			everyNode = true
		}
	}
	if !everyNode {
		t.Errorf("no toleration of every taint (operator: Exists): %+v", pod.Tolerations)
	}
	c := containerNamed(t, pod, "tailship")
	checkTailshipContainer(t, c)

	volumes := map[string]string{} // name -> host path or configmap
	for _, v := range pod.Volumes {
		switch {
		case v.HostPath != nil:
			volumes[v.Name] = "host:" + v.HostPath.Path
		case v.ConfigMap != nil:
			volumes[v.Name] = "cm:" + v.ConfigMap.Name
		}
	}
	mounts := map[string]bool{} // mount path -> read-only
	for _, m := range c.VolumeMounts {
		src := volumes[m.Name]
		switch m.MountPath {
		case "/var/log/pods":
			if src != "host:/var/log/pods" || !m.ReadOnly {
				t.Errorf("/var/log/pods: from %q read-only %v, want the host's, read-only", src, m.ReadOnly)
			}
		case "/var/lib/tailship":
			if src != "host:/var/lib/tailship" || m.ReadOnly {
				t.Errorf("/var/lib/tailship: from %q read-only %v, want the host's, writable", src, m.ReadOnly)
			}
		case "/etc/tailship":
			if src != "cm:"+cm.Metadata.Name {
				t.Errorf("/etc/tailship from %q, want ConfigMap %s", src, cm.Metadata.Name)
			}
		}
		mounts[m.MountPath] = m.ReadOnly
	}
	for _, p := range []string{"/var/log/pods", "/var/lib/tailship", "/etc/tailship"} {
		if _, ok := mounts[p]; !ok {
			t.Errorf("no mount at %s", p)
		}
	}

	doc := cm.Data["tailship.toml"]
	for _, want := range []string{`include = ["/var/log/pods/**/*.log"]`, `parser = "cri"`, `kubernetes = true`, `data_dir = "/var/lib/tailship"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("ConfigMap config lacks %s", want)
		}
	}
	cfg := loadEmbedded(t, doc)
	if cfg.API.Listen != "0.0.0.0:8686" || !cfg.API.AllowRemote {
		t.Errorf("api = %+v: the probes reach the pod IP, so the API must listen on it", cfg.API)
	}
	if got := cfg.Agent.ShutdownTimeout.D().Seconds(); int(got) >= pod.TerminationGracePeriodSeconds {
		t.Errorf("shutdown_timeout %vs is not below terminationGracePeriodSeconds %d", got, pod.TerminationGracePeriodSeconds)
	}
	in, ok := cfg.Inputs["pods"].(*file.Config)
	if !ok || in.Common().Parser != "cri" || !in.Kubernetes {
		t.Fatalf("input pods: want a file input with parser cri and kubernetes = true, have %#v", cfg.Inputs["pods"])
	}

	// The agent never tails its own log: its container's stderr, as the
	// kubelet writes it for this namespace and container, is excluded,
	// while other pods' logs (a container named tailship elsewhere
	// included) are read. The matching is the file input's: a path is read
	// when an include glob matches and no exclude glob does.
	selected := func(p string) bool {
		for _, ex := range in.Exclude {
			if ok, _ := doublestar.Match(ex, p); ok {
				return false
			}
		}
		for _, inc := range in.Include {
			if ok, _ := doublestar.Match(inc, p); ok {
				return true
			}
		}
		return false
	}
	uid := "0b8e6c7e-1f2a-4c3d-9e8f-123456789abc"
	own := "/var/log/pods/" + ns.Metadata.Name + "_" + ds.Metadata.Name + "-x7k2p_" + uid + "/" + c.Name + "/0.log"
	for p, want := range map[string]bool{
		own: false,
		strings.Replace(own, "/0.log", "/3.log", 1):                        false, // after restarts
		"/var/log/pods/default_web-5d9f_" + uid + "/nginx/0.log":           true,
		"/var/log/pods/default_app-7c4b_" + uid + "/tailship/0.log":        true, // a sidecar's agent, not this one
		"/var/log/pods/tailship-demo_web-1_" + uid + "/tailship/0.log":     true, // another namespace that shares the prefix
		"/var/log/pods/kube-system_coredns-abc_" + uid + "/coredns/12.log": true,
	} {
		if got := selected(p); got != want {
			t.Errorf("%s: read %v, want %v", p, got, want)
		}
	}
}

func TestSidecarManifest(t *testing.T) {
	objs := decodeAll(t, "kubernetes/sidecar.yaml")
	cm := one(t, objs, "ConfigMap")
	dep := one(t, objs, "Deployment")
	pod := dep.Spec.Template.Spec
	app := containerNamed(t, pod, "app")
	ts := containerNamed(t, pod, "tailship")
	checkTailshipContainer(t, ts)

	emptyDirs := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.EmptyDir != nil {
			emptyDirs[v.Name] = true
		}
	}
	mountOf := func(c container, path string) (name string, ro bool) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == path {
				return m.Name, m.ReadOnly
			}
		}
		return "", false
	}
	appVol, appRO := mountOf(app, "/var/log/app")
	tsVol, tsRO := mountOf(ts, "/var/log/app")
	if appVol == "" || appVol != tsVol || !emptyDirs[appVol] {
		t.Errorf("app and tailship do not share an emptyDir at /var/log/app (app %q, tailship %q)", appVol, tsVol)
	}
	if appRO || !tsRO {
		t.Errorf("log volume: app read-only %v (want writable), tailship read-only %v (want read-only)", appRO, tsRO)
	}
	if v, ro := mountOf(ts, "/var/lib/tailship"); v == "" || ro {
		t.Errorf("tailship's data_dir is not a writable volume")
	}
	cfg := loadEmbedded(t, cm.Data["tailship.toml"])
	in, ok := cfg.Inputs["app"]
	if !ok {
		t.Fatalf("no input app")
	}
	fc, ok := in.(*file.Config)
	if !ok || len(fc.Include) == 0 {
		t.Fatalf("input app is not a file input with include globs: %#v", in)
	}
	// Every glob must select files on the shared volume (the only place
	// the app's logs are), and the app's own file must be read.
	for _, g := range fc.Include {
		if !strings.HasPrefix(g, "/var/log/app/") {
			t.Errorf("include %q is not on the shared volume /var/log/app", g)
		}
	}
	appLog := ""
	for _, a := range app.Args {
		if m := regexp.MustCompile(`>> (/[^\s;]+)`).FindStringSubmatch(a); m != nil {
			appLog = m[1]
		}
	}
	if appLog == "" {
		t.Fatalf("cannot find the file the app writes in its args %v", app.Args)
	}
	read := false
	for _, g := range fc.Include {
		if ok, _ := doublestar.Match(g, appLog); ok {
			read = true
		}
	}
	if !read {
		t.Errorf("the app writes %s, which no include glob %v selects", appLog, fc.Include)
	}
}

// unitKeys parses a systemd unit into section.key -> values.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: line %q is not key=value", path, l)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	u := unitKeys(t, "systemd/tailship.service")
	want := map[string]string{
		"Service.NoNewPrivileges": "true",
		"Service.ProtectSystem":   "strict",
		"Service.StateDirectory":  "tailship",
		"Service.ProtectHome":     "true",
		"Service.KillSignal":      "SIGTERM",
	}
	for k, v := range want {
		if got := u[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want %s", k, got, v)
		}
	}
	reload := u["Service.ExecReload"]
	if len(reload) == 0 || reload[len(reload)-1] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload = %v, want SIGHUP to $MAINPID last", reload)
	}
	if s := u["Service.ExecStart"]; len(s) != 1 || !strings.Contains(s[0], "tailship run --config /etc/tailship/tailship.toml") {
		t.Errorf("ExecStart = %v", s)
	}
	if u["Service.User"] == nil || u["Service.User"][0] == "root" {
		t.Errorf("User = %v, want an unprivileged user", u["Service.User"])
	}
}

// dockerBuildLine returns the Dockerfile's go build command.
func dockerBuildLine(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			return strings.TrimPrefix(l, "RUN ")
		}
	}
	t.Fatal("Dockerfile has no RUN ... go build line")
	return ""
}

// TestDockerfile: multi-stage, a static build of ./cmd/tailship (the same
// CGO_ENABLED=0 build .ci/run makes), a distroless or scratch base, a
// non-root user, and the default config path. The build line itself is
// run here, and the binary it makes is checked to be static.
func TestDockerfile(t *testing.T) {
	b, _ := os.ReadFile("Dockerfile")
	df := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 || !strings.Contains(df, "COPY --from=build") {
		t.Errorf("Dockerfile is not multi-stage: %d FROM lines, want a build stage copied from", n)
	}
	if !regexp.MustCompile(`(?m)^FROM (gcr\.io/distroless/static\S*|scratch)\s*$`).MatchString(df) {
		t.Errorf("the final stage is not distroless/static or scratch")
	}
	if m := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(df); m == nil || strings.HasPrefix(m[1], "root") || strings.HasPrefix(m[1], "0") {
		t.Errorf("Dockerfile does not switch to a non-root user")
	}
	if !strings.Contains(df, `CMD ["run", "--config", "/etc/tailship/tailship.toml"]`) {
		t.Errorf("Dockerfile's CMD does not run the default config path")
	}
	line := dockerBuildLine(t)
	if !strings.HasPrefix(line, "CGO_ENABLED=0 go build") || !strings.HasSuffix(line, "./cmd/tailship") {
		t.Errorf("build line %q is not a CGO_ENABLED=0 build of ./cmd/tailship", line)
	}
	ci, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "CGO_ENABLED=0 go build") || !strings.Contains(string(ci), "./cmd/tailship") {
		t.Errorf(".ci/run no longer makes the static build the Dockerfile ships")
	}

	if testing.Short() {
		t.Skip("-short: not running the build")
	}
	// Run the Dockerfile's own build line (its flags, its package) from the
	// repository root, as the build stage does, and inspect the result.
	out := filepath.Join(t.TempDir(), "tailship")
	args := strings.Fields(strings.NewReplacer(`"-s -w -X main.version=${VERSION}"`, "-s§-w§-X§main.version=test").Replace(line))
	var cmdArgs []string
	for i := 2; i < len(args); i++ { // skip CGO_ENABLED=0 go
		a := strings.ReplaceAll(args[i], "§", " ")
		if a == "/out/tailship" {
			a = out
		}
		cmdArgs = append(cmdArgs, a)
	}
	cmd := exec.Command("go", cmdArgs...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", cmdArgs, err, o)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the Dockerfile's build makes a dynamically linked binary")
		}
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "tailship test" {
		t.Errorf("built binary: version %q, %v", v, err)
	}
}

// TestAggregatorConfigLoads: packaging/aggregator.toml is valid as shipped
// and does what its header says: an amqp and a kafka input, each routed to
// both the elasticsearch output and the zstd archive. An input no output
// names would be consumed and acknowledged into nothing.
func TestAggregatorConfigLoads(t *testing.T) {
	t.Setenv("KAFKA_BROKER", "")
	cfg, err := agent.LoadFile("aggregator.toml")
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]string{"rabbit": "amqp", "kafka": "kafka"} {
		if ic, ok := cfg.Inputs[name]; !ok || ic.Common().Type != typ {
			t.Fatalf("input %s: want type %s, got %v", name, typ, cfg.Inputs)
		}
	}
	kc, ok := cfg.Inputs["kafka"].(*kafka.Config)
	if !ok {
		t.Fatalf("kafka input decoded as %T", cfg.Inputs["kafka"])
	}
	// The default stands in for an unset KAFKA_BROKER, so check works
	// on a laptop; the group is what makes offsets survive a restart.
	if len(kc.Brokers) != 1 || kc.Brokers[0] != "127.0.0.1:9092" || kc.Group == "" || len(kc.Topics) == 0 || kc.Parser != "json" {
		t.Errorf("kafka input: brokers %q topics %q group %q parser %q", kc.Brokers, kc.Topics, kc.Group, kc.Parser)
	}
	for name, typ := range map[string]string{"search": "http", "archive": "file"} {
		oc, ok := cfg.Outputs[name]
		if !ok || oc.Common().Type != typ {
			t.Fatalf("output %s: want type %s, got %v", name, typ, cfg.Outputs)
		}
		routed := map[string]bool{}
		for _, in := range oc.Common().Inputs {
			routed[in] = true
		}
		if !routed["rabbit"] || !routed["kafka"] {
			t.Errorf("output %s reads inputs %q, want both rabbit and kafka", name, oc.Common().Inputs)
		}
	}
	t.Setenv("KAFKA_BROKER", "kafka-0.kafka:9092")
	cfg, err = agent.LoadFile("aggregator.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Inputs["kafka"].(*kafka.Config).Brokers; len(got) != 1 || got[0] != "kafka-0.kafka:9092" {
		t.Errorf("KAFKA_BROKER=kafka-0.kafka:9092: brokers %q", got)
	}
}
