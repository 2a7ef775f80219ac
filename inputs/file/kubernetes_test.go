package file

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

const podUID = "3c1b2a9e-5f6d-4e7a-8b9c-0d1e2f3a4b5c"

func encodedKubernetes(path string) string {
	src := &pipeline.Source{Fields: kubernetesFields(path)}
	return string(codec.AppendJSON(nil, src, &pipeline.Event{Raw: []byte("x")}))
}

// TestKubernetesPaths: kubelet's two path forms give the pod's metadata;
// anything else gives none.
func TestKubernetesPaths(t *testing.T) {
	cases := []struct{ path, want string }{
		{"/var/log/pods/shop_web-7d4b9c-x2x9z_" + podUID + "/nginx/0.log",
			`{"message":"x","kubernetes":{"pod_namespace":"shop","pod_name":"web-7d4b9c-x2x9z","pod_uid":"` + podUID + `","container_name":"nginx","restart_count":0}}`},
		// Rotated by kubelet: the base name's restart count.
		{"/host/var/log/pods/kube-system_coredns-5d78c9869d-abcde_" + podUID + "/coredns/3.log.20240501-120000",
			`{"message":"x","kubernetes":{"pod_namespace":"kube-system","pod_name":"coredns-5d78c9869d-abcde","pod_uid":"` + podUID + `","container_name":"coredns","restart_count":3}}`},
		{"/var/log/containers/web-7d4b9c-x2x9z_shop_nginx-" + strings.Repeat("ab", 32) + ".log",
			`{"message":"x","kubernetes":{"pod_namespace":"shop","pod_name":"web-7d4b9c-x2x9z","container_name":"nginx","container_id":"` + strings.Repeat("ab", 32) + `"}}`},
		// Container names may hold "-": the id is after the last one.
		{"/var/log/containers/api-0_prod_istio-proxy-0123abcd.log",
			`{"message":"x","kubernetes":{"pod_namespace":"prod","pod_name":"api-0","container_name":"istio-proxy","container_id":"0123abcd"}}`},
	}
	for _, tc := range cases {
		if got := encodedKubernetes(tc.path); got != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.path, got, tc.want)
		}
	}
	for _, path := range []string{
		"/var/log/app.log",
		"/var/log/pods/shop_web/nginx/0.log",                // no uid
		"/var/log/pods/shop_web_uid_extra/nginx/0.log",      // too many parts
		"/var/log/pods/shop_web_" + podUID + "/nginx/x.log", // no restart count
		"/var/log/pods/shop_web_" + podUID + "/nginx/0.logx",
		"/var/log/pods/shop_web_" + podUID + "/nginx/-1.log",
		"/var/log/containers/web_shop_nginx.log",  // no container id
		"/var/log/containers/web_shop_nginx-.log", // empty id
		"/var/log/containers/web_shop.log",
		"/var/log/containers/web_shop_nginx-abc.txt",
	} {
		if f := kubernetesFields(path); f != nil {
			t.Errorf("%s: got %v, want none", path, f)
		}
	}
}

// TestKubernetesSymlink: a /var/log/containers link also gets the uid and
// restart count of the /var/log/pods file it points to, relative or not.
func TestKubernetesSymlink(t *testing.T) {
	root := t.TempDir()
	podDir := filepath.Join(root, "var/log/pods", "shop_web-0_"+podUID, "nginx")
	cont := filepath.Join(root, "var/log/containers")
	for _, d := range []string{podDir, cont} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(podDir, "2.log")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(cont, "web-0_shop_nginx-abc123.log")
	rel := filepath.Join(cont, "web-0_shop_nginx-def456.log")
	if err := os.Symlink(target, abs); err != nil {
		t.Fatal(err)
	}
	r, _ := filepath.Rel(cont, target)
	if err := os.Symlink(r, rel); err != nil {
		t.Fatal(err)
	}
	for path, id := range map[string]string{abs: "abc123", rel: "def456"} {
		want := `{"message":"x","kubernetes":{"pod_namespace":"shop","pod_name":"web-0","pod_uid":"` + podUID + `","container_name":"nginx","restart_count":2,"container_id":"` + id + `"}}`
		if got := encodedKubernetes(path); got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", path, got, want)
		}
	}
}

// TestKubernetesInput: with kubernetes = true the file input gives every
// event of a pod's log file the pod's fields, from the source (no
// per-line work), and leaves the input's own fields in place.
func TestKubernetesInput(t *testing.T) {
	dir := t.TempDir()
	podDir := filepath.Join(dir, "pods", "shop_web-0_"+podUID, "nginx")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, dir, func(c *Config) {
		c.Include = []string{filepath.Join(dir, "pods/**/*.log")}
		c.Kubernetes = true
	})
	h.out.Render = func(src *pipeline.Source, ev *pipeline.Event) string {
		return string(codec.AppendJSON(nil, src, ev))
	}
	appendLines(t, filepath.Join(podDir, "1.log"), "k", 0, 50)
	h.start()
	got := h.waitLines(50)
	h.stop()
	if len(got) != 50 {
		t.Fatalf("%d lines, want 50", len(got))
	}
	for i, l := range got {
		msg := strings.TrimSuffix(pipelinetest.Line("k", i), "\n")
		if !strings.HasPrefix(l, `{"message":"`+msg+`",`) {
			t.Fatalf("line %d: %s, want message %q", i, l, msg)
		}
		if !strings.Contains(l, `"kubernetes":{"pod_namespace":"shop","pod_name":"web-0","pod_uid":"`+podUID+`","container_name":"nginx","restart_count":1}`) {
			t.Fatalf("line %d: %s", i, l)
		}
	}
}
