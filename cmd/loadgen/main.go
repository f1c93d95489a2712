// Command loadgen drives a running Automation Domain Service over HTTP the way its callers do
// and prints what they would see: throughput, latency from the POST (and from its 202) to the
// receiver's receipt, the API's own latency, and the CPU time and memory of the service's
// processes read from /proc (CPU per delivery). `make load` runs it against `make run`.
//
// Scenarios (-scenario):
//
//   - webhooks: POST /api/v1/webhooks/deliver; -endpoints local receivers (started here,
//     registered through the API, removed at the end) each get every message.
//   - events: POST /api/v1/events; -rules rules each match one event in -rules and deliver it
//     to the receivers through a webhook action (-rules 0: ingest only; with -endpoints too the
//     receivers get each event directly as a webhook subscriber).
//   - workflows: POST /api/v1/workflows/{id}/execute of a three-step data_transform definition;
//     completion is read back from GET /api/v1/executions.
//
// Modes (-mode): burst posts -count requests from -concurrency clients as fast as the API takes
// them; steady posts -rate requests per second (-count of them, or for -duration).
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	URL, Key, Tenant string
	Scenario, Mode   string
	Count            int
	Concurrency      int
	Rate             float64
	Duration         time.Duration
	Endpoints        int
	Failing          int
	Rules            int
	Verify           bool
	Warmup           int
	Wait             time.Duration
	PIDs             []int
	ProcNames        []string
	Keep             bool
	RetryErrors      bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.URL, "url", envOr("LOAD_URL", "http://127.0.0.1:8090"), "base URL of the API (LOAD_URL)")
	fs.StringVar(&o.Key, "key", firstOf(os.Getenv("LOAD_API_KEY"), os.Getenv("INTERNAL_API_KEY")),
		"X-API-Key: the internal key or a tenant key (LOAD_API_KEY, INTERNAL_API_KEY; default: the development key in $DATA_DIR/dev-secrets.json)")
	fs.StringVar(&o.Tenant, "tenant", "", "X-Tenant-ID for the internal key (default: the default tenant)")
	fs.StringVar(&o.Scenario, "scenario", "webhooks", "webhooks, events or workflows")
	fs.StringVar(&o.Mode, "mode", "burst", "burst (as fast as the API takes them) or steady (-rate per second)")
	fs.IntVar(&o.Count, "count", 0, "requests to post (default: 1500 in burst mode, rate × duration in steady mode)")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "clients posting at once (connections)")
	fs.Float64Var(&o.Rate, "rate", 20, "steady mode: requests per second")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "steady mode without -count: how long to post")
	fs.IntVar(&o.Endpoints, "endpoints", 10, "local receivers registered as webhook endpoints")
	fs.IntVar(&o.Failing, "failing", 0, "how many of the receivers answer 500 to everything (their receipts are not counted)")
	fs.IntVar(&o.Rules, "rules", 10, "events scenario: rules on the event type, each matching one event in this many")
	fs.BoolVar(&o.Verify, "verify", true, "check each receipt's Standard Webhooks signature (HMAC-SHA256)")
	fs.IntVar(&o.Warmup, "warmup", 5, "requests sent and waited for before measuring (dispatchers started, connections open)")
	fs.DurationVar(&o.Wait, "wait", 5*time.Minute, "how long to wait for the receipts (or completions) after the last post")
	pids := fs.String("pids", "", "comma-separated ids of the service's processes (CPU and RSS); default: found by -procs on every sample, which follows a process restarted during the run")
	procs := fs.String("procs", "automation,api,worker,temporal-server", "command names of the service's processes when -pids is unset")
	fs.BoolVar(&o.Keep, "keep", false, "leave the endpoints, rules and definition in place afterwards")
	fs.BoolVar(&o.RetryErrors, "retry-errors", false,
		"retry a request that failed to connect or was answered 5xx every 200 ms (with the same idempotency key), "+
			"as a client riding out a restart does; the report counts the retries and the accepted requests whose "+
			"deliveries never arrived (lost), and the exit status is 1 if any were lost")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.PIDs, err = parsePIDs(*pids); err != nil {
		return o, err
	}
	for n := range strings.SplitSeq(*procs, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.ProcNames = append(o.ProcNames, n)
		}
	}
	switch {
	case o.Scenario != "webhooks" && o.Scenario != "events" && o.Scenario != "workflows":
		return o, fmt.Errorf("-scenario must be webhooks, events or workflows, got %q", o.Scenario)
	case o.Mode != "burst" && o.Mode != "steady":
		return o, fmt.Errorf("-mode must be burst or steady, got %q", o.Mode)
	case o.Concurrency < 1:
		return o, errors.New("-concurrency must be at least 1")
	case o.Mode == "steady" && o.Rate <= 0:
		return o, errors.New("-rate must be positive")
	case o.Endpoints < 0 || o.Failing < 0 || o.Failing > o.Endpoints:
		return o, errors.New("-endpoints must be ≥ 0 and -failing between 0 and -endpoints")
	case o.Rules < 0 || o.Warmup < 0 || o.Count < 0:
		return o, errors.New("-rules, -warmup and -count must be ≥ 0")
	}
	if o.Key == "" {
		o.Key = devKey(filepath.Join(envOr("DATA_DIR", "data"), "dev-secrets.json"))
	}
	if o.Key == "" {
		return o, errors.New("-key (or LOAD_API_KEY) is required: the INTERNAL_API_KEY the service printed, or a tenant key")
	}
	if o.Count == 0 {
		o.Count = 1500
		if o.Mode == "steady" {
			o.Count = max(1, int(o.Rate*o.Duration.Seconds()))
		}
	}
	o.URL = strings.TrimRight(o.URL, "/")
	return o, nil
}

// devKey reads the internal key `make run` generated in development.
func devKey(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var s struct {
		Key string `json:"internal_api_key"`
	}
	_ = json.Unmarshal(b, &s)
	return s.Key
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// loader is one run: its receivers, what it created through the API and what it measured.
type loader struct {
	o     options
	out   io.Writer
	hc    *http.Client
	runID string
	meter *Meter

	receivers []*receiver
	cleanup   []string // paths to DELETE at the end
	defID     string

	// phase is the seq offset of the phase being measured: receipts of other phases are ignored.
	phase     atomic.Int64
	sent      []atomic.Int64 // unix nanos of each POST's start, by seq within the phase
	accepted  []atomic.Int64 // unix nanos of each 202
	execIDs   []string       // workflows: the execution of each seq
	e2e       Sample         // POST start → receipt (or completion)
	fromAck   Sample         // 202 → receipt
	api       Sample         // POST → response
	got       atomic.Int64   // counted receipts
	dupes     atomic.Int64   // repeated receipts of one (endpoint, seq)
	badSig    atomic.Int64
	lastRecv  atomic.Int64
	throttled atomic.Int64 // 429 answers (retried)
	retried   atomic.Int64 // connection errors and 5xx answers retried (-retry-errors)
	failed    atomic.Int64 // requests that did not end in 202
	firstErr  atomic.Value
}

func run(ctx context.Context, o options, out io.Writer) error {
	l := &loader{o: o, out: out, runID: randomHex(4)}
	l.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: o.Concurrency * 2, MaxIdleConnsPerHost: o.Concurrency * 2, IdleConnTimeout: time.Minute,
	}}
	l.meter = NewMeter(o.PIDs, o.ProcNames)
	defer l.teardown()
	if err := l.setup(ctx); err != nil {
		return err
	}
	idle := readUsage(l.meter.PIDs())
	fmt.Fprintf(out, "loadgen %s %s: %s, %d requests, %d clients", o.Scenario, o.Mode, o.URL, o.Count, o.Concurrency)
	if o.Mode == "steady" {
		fmt.Fprintf(out, ", %.1f/s", o.Rate)
	}
	fmt.Fprintf(out, ", %d endpoints (%d failing)", o.Endpoints, o.Failing)
	if o.Scenario == "events" {
		fmt.Fprintf(out, ", %d rules", o.Rules)
	}
	fmt.Fprintf(out, "\nservice processes: %s; RSS before warm-up %s (%s anonymous); load average %s\n", describePIDs(l.meter.PIDs()), mb(idle.RSS), mb(idle.Anon), loadAverage())

	if o.Warmup > 0 {
		if err := l.phaseRun(ctx, 1_000_000_000, o.Warmup, "burst"); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		l.resetCounters()
	}
	before := l.meter.Start()
	var peak atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if u := l.meter.Sample(); u.RSS > peak.Load() {
				peak.Store(u.RSS)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	err := l.phaseRun(ctx, 0, o.Count, o.Mode)
	stopSampling()
	after := l.meter.Sample()
	l.report(start, before, after, peak.Load())
	if err == nil && l.o.RetryErrors {
		if lost := l.lost(); lost > 0 {
			err = fmt.Errorf("%d accepted requests were lost", lost)
		}
	}
	return err
}

// lost counts the accepted webhook messages that some healthy receiver never got: with
// -retry-errors, what a restart of the service under load dropped despite its 202.
func (l *loader) lost() int {
	if l.o.Scenario != "webhooks" {
		return 0
	}
	n := 0
	for seq := range l.accepted {
		if l.accepted[seq].Load() == 0 {
			continue
		}
		for _, r := range l.receivers {
			if !r.failing && seq < len(r.seen) && r.seen[seq].Load() == 0 {
				n++
				break
			}
		}
	}
	return n
}

func describePIDs(pids []int) string {
	if len(pids) == 0 {
		return "none found (pass -pids or -procs)"
	}
	var parts []string
	for _, pid := range pids {
		if p, err := readProc(pid); err == nil {
			parts = append(parts, fmt.Sprintf("%s[%d]", p.Comm, pid))
		}
	}
	return strings.Join(parts, " ")
}

func (l *loader) resetCounters() {
	l.e2e, l.fromAck, l.api = Sample{}, Sample{}, Sample{}
	l.got.Store(0)
	l.dupes.Store(0)
	l.badSig.Store(0)
	l.throttled.Store(0)
	l.failed.Store(0)
	l.lastRecv.Store(0)
}

// expected is how many receipts a phase of n requests should produce.
func (l *loader) expected(n int) int64 {
	healthy := int64(l.o.Endpoints - l.o.Failing)
	switch l.o.Scenario {
	case "webhooks":
		return int64(n) * healthy
	case "events":
		if l.o.Rules == 0 {
			return 0 // ingest only
		}
		return int64(n) * healthy // each event matches one rule, whose webhook action reaches every endpoint
	}
	return int64(n)
}

// phaseRun posts n requests (seqs offset…offset+n-1) in mode and waits for their receipts.
func (l *loader) phaseRun(ctx context.Context, offset int64, n int, mode string) error {
	l.sent = make([]atomic.Int64, n)
	l.accepted = make([]atomic.Int64, n)
	l.execIDs = make([]string, n)
	for _, r := range l.receivers {
		r.reset(n)
	}
	l.phase.Store(offset)
	switch mode {
	case "burst":
		var next atomic.Int64
		var wg sync.WaitGroup
		for range l.o.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					seq := int(next.Add(1) - 1)
					if seq >= n || ctx.Err() != nil {
						return
					}
					l.post(ctx, offset, seq)
				}
			}()
		}
		wg.Wait()
	case "steady":
		sem := make(chan struct{}, l.o.Concurrency)
		var wg sync.WaitGroup
		interval := time.Duration(float64(time.Second) / l.o.Rate)
		begin := time.Now()
		for seq := range n {
			// Open loop: request seq goes out at begin + seq×interval whatever the earlier ones do.
			if d := time.Until(begin.Add(time.Duration(seq) * interval)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				l.post(ctx, offset, seq)
			}()
		}
		wg.Wait()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if l.o.Scenario == "workflows" {
		return l.awaitExecutions(ctx, n)
	}
	want := l.expected(n) - l.failed.Load()*(l.expected(1))
	deadline := time.Now().Add(l.o.Wait)
	for l.got.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d receipts within %s of the last post", l.got.Load(), want, l.o.Wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// post sends request seq of the phase, retrying 429s after their Retry-After.
func (l *loader) post(ctx context.Context, offset int64, seq int) {
	path, body := l.request(offset, seq)
	for {
		start := time.Now()
		l.sent[seq].CompareAndSwap(0, start.UnixNano())
		status, resp, header, err := l.doWith(ctx, "POST", path, body, http.Header{
			"Idempotency-Key": {l.idempotencyKey(offset, seq)}})
		now := time.Now()
		if l.o.RetryErrors && (err != nil || status >= 500) && ctx.Err() == nil {
			l.retried.Add(1)
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		if status == http.StatusTooManyRequests {
			l.throttled.Add(1)
			wait, _ := strconv.Atoi(header.Get("Retry-After"))
			select {
			case <-time.After(max(time.Duration(wait)*time.Second, 50*time.Millisecond)):
			case <-ctx.Done():
				return
			}
			continue
		}
		l.api.Add(now.Sub(start))
		if err == nil && status != http.StatusAccepted {
			err = fmt.Errorf("POST %s: %d %s", path, status, bytes.TrimSpace(resp))
		}
		if err != nil {
			l.failed.Add(1)
			l.firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		l.accepted[seq].Store(now.UnixNano())
		if l.o.Scenario == "workflows" {
			var e struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(resp, &e)
			l.execIDs[seq] = e.ID
		}
		return
	}
}

// request is the path and body of request seq.
func (l *loader) request(offset int64, seq int) (string, []byte) {
	data := map[string]any{"run": l.runID, "seq": offset + int64(seq)}
	var body any
	var path string
	switch l.o.Scenario {
	case "webhooks":
		path, body = "/api/v1/webhooks/deliver", map[string]any{"event_type": l.eventType("message"), "payload": data,
			"idempotency_key": l.idempotencyKey(offset, seq)}
	case "events":
		if l.o.Rules > 0 {
			data["kind"] = fmt.Sprintf("k%d", seq%l.o.Rules)
		}
		path, body = "/api/v1/events", map[string]any{"type": l.eventType("event"), "data": data}
	default:
		path, body = "/api/v1/workflows/"+l.defID+"/execute", map[string]any{"input_data": map[string]any{"n": seq}}
	}
	js, _ := json.Marshal(body)
	return path, js
}

// idempotencyKey names request seq of the phase at offset, so that a request retried after a
// lost answer is the same message to the service, not a second one.
func (l *loader) idempotencyKey(offset int64, seq int) string {
	return fmt.Sprintf("%s-%d", l.runID, offset+int64(seq))
}

// eventType is unique to the run, so that endpoints and rules a stopped run left behind do not
// match this one's traffic.
func (l *loader) eventType(kind string) string { return "load." + l.runID + "." + kind }

func (l *loader) do(ctx context.Context, method, path string, body []byte) (int, []byte, http.Header, error) {
	return l.doWith(ctx, method, path, body, nil)
}

// doWith sends a request with extra headers and reads the whole answer.
func (l *loader) doWith(ctx context.Context, method, path string, body []byte, extra http.Header) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.o.URL+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	req.Header.Set("X-API-Key", l.o.Key)
	if l.o.Tenant != "" {
		req.Header.Set("X-Tenant-ID", l.o.Tenant)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := l.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header, err
}

// create posts a JSON body that must be answered 201 and returns the created resource's id.
func (l *loader) create(ctx context.Context, path string, body any) (string, error) {
	js, _ := json.Marshal(body)
	for {
		status, resp, header, err := l.do(ctx, "POST", path, js)
		if err != nil {
			return "", err
		}
		if status == http.StatusTooManyRequests {
			wait, _ := strconv.Atoi(header.Get("Retry-After"))
			time.Sleep(max(time.Duration(wait)*time.Second, 100*time.Millisecond))
			continue
		}
		if status != http.StatusCreated {
			return "", fmt.Errorf("POST %s: %d %s", path, status, bytes.TrimSpace(resp))
		}
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(resp, &r); err != nil || r.ID == "" {
			return "", fmt.Errorf("POST %s: no id in %s", path, resp)
		}
		return r.ID, nil
	}
}

// setup starts the receivers and creates the endpoints, rules or definition the scenario needs.
func (l *loader) setup(ctx context.Context) error {
	status, body, _, err := l.do(ctx, "GET", "/ready", nil)
	if err != nil {
		return fmt.Errorf("the service at %s does not answer: %w", l.o.URL, err)
	}
	if status != 200 {
		return fmt.Errorf("%s/ready: %d %s", l.o.URL, status, bytes.TrimSpace(body))
	}
	if l.o.Scenario != "workflows" {
		for i := range l.o.Endpoints {
			r, err := l.startReceiver(i < l.o.Failing)
			if err != nil {
				return err
			}
			id, err := l.create(ctx, "/api/v1/webhooks/endpoints", map[string]any{
				"name": fmt.Sprintf("load-%s-%d", l.runID, i), "url": r.url,
				"events":          []string{l.eventType("message"), l.eventType("rule")},
				"secret":          "whsec_" + base64.StdEncoding.EncodeToString(r.key),
				"timeout_seconds": 5,
			})
			if err != nil {
				return fmt.Errorf("register endpoint (is WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8 set?): %w", err)
			}
			l.cleanup = append(l.cleanup, "/api/v1/webhooks/endpoints/"+id)
		}
	}
	switch l.o.Scenario {
	case "events":
		for i := range l.o.Rules {
			id, err := l.create(ctx, "/api/v1/automation/rules", map[string]any{
				"name": fmt.Sprintf("load-%s-%d", l.runID, i), "priority": i,
				"trigger":    map[string]any{"type": "event", "event_type": l.eventType("event")},
				"conditions": []any{map[string]any{"type": "field_check", "field": "kind", "operator": "equals", "value": fmt.Sprintf("k%d", i)}},
				"actions":    []any{map[string]any{"type": "webhook", "event_type": l.eventType("rule")}},
			})
			if err != nil {
				return fmt.Errorf("create rule: %w", err)
			}
			l.cleanup = append(l.cleanup, "/api/v1/automation/rules/"+id)
		}
	case "workflows":
		id, err := l.create(ctx, "/api/v1/workflows", map[string]any{
			"name": "load-" + l.runID, "trigger_type": "manual", "steps": []any{
				map[string]any{"id": "parse", "type": "data_transform", "config": map[string]any{"mapping": map[string]any{"n": "input.n", "doubled": "input.n * 2"}}},
				map[string]any{"id": "enrich", "type": "data_transform", "config": map[string]any{"jq": `{n: .steps.parse.output.n, tag: "x"}`}},
				map[string]any{"id": "total", "type": "data_transform", "config": map[string]any{"mapping": map[string]any{"sum": "steps.parse.output.doubled + steps.enrich.output.n"}}},
			}})
		if err != nil {
			return fmt.Errorf("create workflow: %w", err)
		}
		l.defID = id
		l.cleanup = append(l.cleanup, "/api/v1/workflows/"+id)
	}
	return nil
}

func (l *loader) teardown() {
	if !l.o.Keep {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, p := range l.cleanup {
			_, _, _, _ = l.do(ctx, "DELETE", p, nil)
		}
		cancel()
	}
	for _, r := range l.receivers {
		_ = r.srv.Close()
	}
}

// awaitExecutions waits until none of the run's executions is pending or running, then reads
// when each finished.
func (l *loader) awaitExecutions(ctx context.Context, n int) error {
	deadline := time.Now().Add(l.o.Wait)
	base := "/api/v1/executions?workflow_id=" + l.defID
	for {
		busy := false
		for _, st := range []string{"pending", "running"} {
			status, body, _, err := l.do(ctx, "GET", base+"&limit=1&status="+st, nil)
			if err != nil || status != 200 {
				return fmt.Errorf("list executions: %d %s %v", status, body, err)
			}
			var page struct {
				Items []json.RawMessage `json:"items"`
			}
			_ = json.Unmarshal(body, &page)
			busy = busy || len(page.Items) > 0
		}
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("executions still running %s after the last post", l.o.Wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	bySeq := make(map[string]int, n)
	for seq, id := range l.execIDs {
		if id != "" {
			bySeq[id] = seq
		}
	}
	cursor := ""
	var notCompleted int
	for {
		status, body, _, err := l.do(ctx, "GET", base+"&limit=200&cursor="+cursor, nil)
		if err != nil || status != 200 {
			return fmt.Errorf("list executions: %d %s %v", status, body, err)
		}
		var page struct {
			Items []struct {
				ID         string     `json:"id"`
				Status     string     `json:"status"`
				FinishedAt *time.Time `json:"finished_at"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return err
		}
		for _, e := range page.Items {
			seq, ours := bySeq[e.ID]
			if !ours {
				continue
			}
			if e.Status != "completed" || e.FinishedAt == nil {
				notCompleted++
				continue
			}
			l.got.Add(1)
			fin := e.FinishedAt.UnixNano()
			if fin > l.lastRecv.Load() {
				l.lastRecv.Store(fin)
			}
			l.e2e.Add(time.Duration(fin - l.sent[seq].Load()))
			if a := l.accepted[seq].Load(); a > 0 {
				l.fromAck.Add(time.Duration(max(0, fin-a)))
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if notCompleted > 0 {
		return fmt.Errorf("%d executions did not complete", notCompleted)
	}
	return nil
}

// receiver is one local webhook endpoint.
type receiver struct {
	l       *loader
	srv     *http.Server
	url     string
	key     []byte
	failing bool
	seen    []atomic.Int32
}

func (r *receiver) reset(n int) { r.seen = make([]atomic.Int32, n) }

func (l *loader) startReceiver(failing bool) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r := &receiver{l: l, key: key, failing: failing, url: "http://" + ln.Addr().String() + "/hook"}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	l.receivers = append(l.receivers, r)
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now().UnixNano()
	body, _ := io.ReadAll(req.Body)
	if r.failing {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	var msg struct {
		Data struct {
			Run string `json:"run"`
			Seq int64  `json:"seq"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Data.Run != r.l.runID {
		return
	}
	l := r.l
	seq := msg.Data.Seq - l.phase.Load()
	seen := r.seen
	if seq < 0 || seq >= int64(len(seen)) || seq >= int64(len(l.sent)) {
		return // another phase's
	}
	if l.o.Verify && !verify(r.key, req.Header, body) {
		l.badSig.Add(1)
	}
	if seen[seq].Add(1) > 1 && l.o.Scenario == "webhooks" {
		l.dupes.Add(1)
		return
	}
	l.got.Add(1)
	for {
		last := l.lastRecv.Load()
		if now <= last || l.lastRecv.CompareAndSwap(last, now) {
			break
		}
	}
	if s := l.sent[seq].Load(); s > 0 {
		l.e2e.Add(time.Duration(now - s))
	}
	if a := l.accepted[seq].Load(); a > 0 {
		l.fromAck.Add(time.Duration(max(0, now-a)))
	}
}

// verify checks a Standard Webhooks v1 signature: base64 HMAC-SHA256 of "id.timestamp.body".
func verify(key []byte, h http.Header, body []byte) bool {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for s := range strings.FieldsSeq(sigs) {
		if v, sig, ok := strings.Cut(s, ","); ok && v == "v1" {
			if got, err := base64.StdEncoding.DecodeString(sig); err == nil && hmac.Equal(got, want) {
				return true
			}
		}
	}
	return false
}

func (l *loader) report(start time.Time, before, after Usage, peakRSS int64) {
	out, o := l.out, l.o
	n := o.Count
	accepted := n - int(l.failed.Load())
	var lastAccept int64
	for i := range l.accepted {
		lastAccept = max(lastAccept, l.accepted[i].Load())
	}
	if lastAccept > 0 {
		d := time.Unix(0, lastAccept).Sub(start)
		fmt.Fprintf(out, "accepted   %d of %d requests in %.2f s: %.0f requests/s (429 answers retried: %d, failed: %d)\n",
			accepted, n, d.Seconds(), float64(accepted)/d.Seconds(), l.throttled.Load(), l.failed.Load())
	}
	if e, ok := l.firstErr.Load().(string); ok {
		fmt.Fprintf(out, "first error: %s\n", e)
	}
	fmt.Fprintf(out, "API        %s\n", l.api.Summary())
	if o.RetryErrors {
		fmt.Fprintf(out, "retried    %d requests after a connection error or a 5xx", l.retried.Load())
		if o.Scenario == "webhooks" {
			fmt.Fprintf(out, "; lost %d accepted messages", l.lost())
		}
		fmt.Fprintln(out)
	}
	unit := "deliveries"
	if o.Scenario == "workflows" {
		unit = "executions"
	}
	got := l.got.Load()
	if got > 0 && l.lastRecv.Load() > 0 {
		d := time.Unix(0, l.lastRecv.Load()).Sub(start)
		fmt.Fprintf(out, "%-10s %d in %.2f s: %.0f %s/s\n", unit, got, d.Seconds(), float64(got)/d.Seconds(), unit)
		fmt.Fprintf(out, "post→done  %s\n", l.e2e.Summary())
		fmt.Fprintf(out, "202→done   %s\n", l.fromAck.Summary())
	}
	if o.Scenario == "webhooks" {
		fmt.Fprintf(out, "duplicates %d", l.dupes.Load())
		if o.Verify {
			fmt.Fprintf(out, ", bad signatures %d", l.badSig.Load())
		}
		fmt.Fprintln(out)
	} else if o.Verify && l.badSig.Load() > 0 {
		fmt.Fprintf(out, "bad signatures %d\n", l.badSig.Load())
	}
	if before.N > 0 {
		cpu := after.CPU - before.CPU
		fmt.Fprintf(out, "service    CPU %.2f s", cpu.Seconds())
		if wall := time.Since(start).Seconds(); wall > 0 {
			fmt.Fprintf(out, " (%.2f cores)", cpu.Seconds()/wall)
		}
		per := got
		if per == 0 {
			per, unit = int64(accepted), "requests"
		}
		if per > 0 {
			one := map[string]string{"deliveries": "delivery", "executions": "execution", "requests": "request"}[unit]
			fmt.Fprintf(out, ", %.2f ms per %s (%.2f ms per request)", float64(cpu.Microseconds())/1000/float64(per),
				one, float64(cpu.Microseconds())/1000/float64(max(accepted, 1)))
		}
		fmt.Fprintf(out, "; RSS %s at the end (%s anonymous), %s at most\n", mb(after.RSS), mb(after.Anon), mb(max(peakRSS, after.RSS)))
	}
	fmt.Fprintf(out, "load average %s\n", loadAverage())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
