package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/api"
)

// runTop polls a running agent's /status and shows per-file lag and
// per-output throughput, queue fill and errors: redrawn in place on a
// terminal, one plain snapshot after another otherwise.
func runTop(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the agent's API address, host:port (default: api.listen of --config)")
	path := fs.String("config", "", "config file to read api.listen from")
	interval := fs.Duration("interval", time.Second, "time between polls")
	once := fs.Bool("once", false, "print one snapshot and exit")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *addr == "" {
		if *path == "" {
			*path = defaultConfigPath()
		}
		cfg, err := agent.LoadFile(*path)
		if err != nil {
			fmt.Fprintf(stderr, "tailship top: no --addr, and the config does not load:\n%v\n", err)
			return exitConfig
		}
		if cfg.API.Listen == "" {
			fmt.Fprintf(stderr, "tailship top: %s disables the API (api.listen = \"\"); give --addr\n", *path)
			return exitConfig
		}
		*addr = cfg.API.Listen
	}
	if *interval <= 0 {
		*interval = time.Second
	}
	url := "http://" + *addr + "/status"
	client := &http.Client{Timeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var prev *api.StatusDoc
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		width, tty := terminalWidth(stdout)
		doc, err := fetchStatus(ctx, client, url)
		var b bytes.Buffer
		if tty {
			b.WriteString("\x1b[H\x1b[2J") // home, clear: redraw in place
		}
		if err != nil {
			fmt.Fprintf(&b, "tailship top: %s: %v\n", url, err)
		} else {
			renderTop(&b, doc, prev, width)
			prev = doc
		}
		if !tty {
			b.WriteString("\n")
		}
		stdout.Write(b.Bytes())
		if *once {
			if err != nil {
				return exitRuntime
			}
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-t.C:
		}
	}
}

func fetchStatus(ctx context.Context, c *http.Client, url string) (*api.StatusDoc, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	var doc api.StatusDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	return &doc, nil
}

// renderTop writes one screen. Rates come from the previous snapshot;
// width (0: unlimited) cuts long paths and errors so rows stay one line.
func renderTop(w io.Writer, doc, prev *api.StatusDoc, width int) {
	dt := 0.0
	if prev != nil {
		dt = doc.Time.Sub(prev.Time).Seconds()
	}
	rate := func(now, before int64) string {
		if dt <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", float64(now-before)/dt)
	}
	ready := "ready"
	if !doc.Readiness.Ready {
		ready = "NOT READY: " + strings.Join(doc.Readiness.Reason, "; ")
	}
	var prevLines int64
	if prev != nil {
		prevLines = prev.InputLines
	}
	fmt.Fprintf(w, "tailship  %s  %s  %s\n", doc.Config, doc.Time.Format("15:04:05"), clip(ready, width))
	fmt.Fprintf(w, "lines %d (%s/s)  bytes %s  files open %d  memory %s / %s  checkpoint age %.1fs  reloads %d (failed %d)\n",
		doc.InputLines, rate(doc.InputLines, prevLines), human(doc.InputBytes), doc.FilesOpen,
		human(doc.MemoryUsed), human(doc.MemoryLimit), doc.CheckpointAge, doc.Reloads, doc.ReloadFailures)
	if doc.LastReloadErr != "" {
		fmt.Fprintf(w, "last reload error: %s\n", clip(firstLine(doc.LastReloadErr), width))
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INPUT\tFILE\tSIZE\tOFFSET\tLAG")
	pathWidth := 0
	if width > 0 {
		pathWidth = max(width-50, 20)
	}
	for _, in := range doc.Inputs {
		if len(in.Files) == 0 {
			fmt.Fprintf(tw, "%s\t(no open files)\t\t\t\n", in.Name)
		}
		for _, f := range in.Files {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Name, clipLeft(f.Path, pathWidth), human(f.Size), human(f.Offset), human(f.Lag))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)

	prevOut := map[string]agent.OutputStatus{}
	if prev != nil {
		for _, o := range prev.Outputs {
			prevOut[o.Name] = o
		}
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tTYPE\tEVENTS/S\tDELIVERED\tQUEUE\tFILL\tRETRIES\tREJECTED\tDROPPED\tLAST ERROR")
	for _, o := range doc.Outputs {
		p, had := prevOut[o.Name]
		r := "-"
		if had {
			r = rate(o.Delivered, p.Delivered)
		}
		fill := 0.0
		if o.QueueMaxEvents > 0 {
			fill = 100 * float64(o.QueueEvents) / float64(o.QueueMaxEvents)
		}
		if o.QueueMaxBytes > 0 {
			fill = max(fill, 100*float64(o.QueueBytes)/float64(o.QueueMaxBytes))
		}
		lastErr := "-"
		if o.LastError != "" && o.FailingSince != nil {
			lastErr = fmt.Sprintf("failing %s: %s", time.Since(*o.FailingSince).Round(time.Second), firstLine(o.LastError))
		} else if o.LastError != "" {
			lastErr = "ok; last: " + firstLine(o.LastError)
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%d\t%d/%d\t%.0f%%\t%d\t%d\t%d\t", o.Name, o.Type, r, o.Delivered,
			o.QueueEvents, o.QueueMaxEvents, fill, o.Retries, o.Rejected, o.Dropped)
		if width > 0 {
			lastErr = clip(lastErr, max(width-len(strings.ReplaceAll(row, "\t", "  "))-4, 20))
		}
		fmt.Fprintln(tw, row+lastErr)
	}
	tw.Flush()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// clip cuts s to n runes (0: no limit), marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if n <= 0 || len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// clipLeft keeps the end of a path, the part that tells files apart.
func clipLeft(s string, n int) string {
	r := []rune(s)
	if n <= 0 || len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f%s", f, u)
		}
	}
	return fmt.Sprintf("%.1fPiB", f/unit)
}
