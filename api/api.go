// Package api serves tailship's HTTP API on api.listen: Prometheus metrics
// (/metrics), liveness (/healthz), readiness (/readyz), a JSON snapshot of
// inputs, files and outputs (/status), and, when api.enable_reload is set,
// POST /reload. It only reads the state of an agent.Supervisor (and asks it
// to reload); it owns the listener, the metrics registry and the output
// latency histograms, nothing of the pipeline.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/tailship/tailship/agent"
)

// Server is the API of one process.
type Server struct {
	cfg     agent.APIConfig
	log     *zap.Logger
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec

	mu  sync.Mutex
	sup *agent.Supervisor

	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// latencyBuckets span a local file write (well under a millisecond) to a
// slow remote receiver (tens of seconds).
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// New returns a server for cfg; Attach gives it the supervisor to show, and
// Start listens.
func New(cfg agent.APIConfig, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "tailship", Name: "output_latency_seconds",
		Help:    "Duration of each write of a batch to the output, failed attempts included.",
		Buckets: latencyBuckets,
	}, []string{"output"})
	s.reg.MustRegister(s.latency, &collector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// ObserveLatency is the agent.SupervisorOptions hook: the histogram of one
// output's write durations.
func (s *Server) ObserveLatency(output string) func(time.Duration) {
	o := s.latency.WithLabelValues(output)
	return func(d time.Duration) { o.Observe(d.Seconds()) }
}

// Attach sets the supervisor whose state the API shows.
func (s *Server) Attach(sup *agent.Supervisor) {
	s.mu.Lock()
	s.sup = sup
	s.mu.Unlock()
}

func (s *Server) supervisor() *agent.Supervisor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sup
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(s.log)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", s.readyz)
	mux.HandleFunc("/status", s.status)
	mux.HandleFunc("/reload", s.reload)
	return mux
}

// Start listens on api.listen and serves until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server failed", zap.Error(err))
		}
	}()
	s.log.Info("api listening", zap.String("address", ln.Addr().String()))
	return nil
}

// Addr returns the address listened on (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops serving, waiting for requests in progress until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	return err
}

// Readiness says whether the agent should receive traffic and, if not, why.
type Readiness struct {
	Ready  bool     `json:"ready"`
	Reason []string `json:"reason,omitempty"`
}

// readiness: a config is loaded and running, and no output has failed
// without a success for longer than api.unready_after.
func (s *Server) readiness(st *agent.Status, ok bool) Readiness {
	if !ok {
		return Readiness{Reason: []string{"no config loaded"}}
	}
	var r Readiness
	if !st.Running {
		r.Reason = append(r.Reason, "pipeline not running (starting, reloading or stopping)")
	}
	for _, o := range st.Outputs {
		if o.FailingSince == nil {
			continue
		}
		if d := time.Since(*o.FailingSince); d >= s.cfg.UnreadyAfter.D() {
			r.Reason = append(r.Reason, fmt.Sprintf("output %s failing for %s: %s", o.Name, d.Round(time.Second), o.LastError))
		}
	}
	r.Ready = len(r.Reason) == 0
	return r
}

func (s *Server) snapshot() (agent.Status, bool) {
	sup := s.supervisor()
	if sup == nil {
		return agent.Status{}, false
	}
	return sup.Status(), true
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	st, ok := s.snapshot()
	rd := s.readiness(&st, ok)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready")
		for _, why := range rd.Reason {
			fmt.Fprintln(w, why)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}

// StatusDoc is the /status document.
type StatusDoc struct {
	agent.Status
	Readiness Readiness `json:"readiness"`
	Time      time.Time `json:"time"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, ok := s.snapshot()
	if !ok {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	doc := StatusDoc{Status: st, Readiness: s.readiness(&st, ok), Time: time.Now()}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		s.log.Debug("writing /status failed", zap.Error(err))
	}
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.EnableReload {
		http.Error(w, "reload over HTTP is disabled; set api.enable_reload = true", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST /reload", http.StatusMethodNotAllowed)
		return
	}
	sup := s.supervisor()
	if sup == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	s.log.Info("reload requested over the API", zap.String("remote", r.RemoteAddr))
	if err := sup.Reload(r.Context()); err != nil {
		var ce *agent.ConfigError
		code := http.StatusInternalServerError
		if errors.As(err, &ce) {
			code = http.StatusBadRequest
		}
		http.Error(w, agent.MaskSecrets(err.Error()), code)
		return
	}
	fmt.Fprintln(w, "reloaded")
}
