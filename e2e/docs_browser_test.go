package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestDocsInBrowser drives the API reference at /docs in Debian's headless Chromium: the page
// renders the operations from /openapi.json (allOf bodies with their properties, Markdown,
// search) loading nothing from another origin, and a try-it call answers 401 without the
// API key and 200 once the key is entered in the Authorize box.
func TestDocsInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if testenv.Required() {
			t.Fatal("chromium is not installed (apt-get install -y chromium) and REQUIRE_SERVICES=1")
		}
		t.Skip("chromium is not installed")
	}
	s := startEmbedded(t, testConfig(t, t.TempDir(), nil))
	createWorkflow(t, s.client(t), `{"name": "docs-browser-check", "trigger_type": "manual", "steps": [
		{"id": "mark", "type": "data_transform", "config": {"mapping": {"seen": "true"}}}]}`)

	b := newBrowser(t, chromium, s.URL)
	const (
		list     = `#operations-workflows-listWorkflows`
		testRule = `#operations-automation-testRule`
	)
	b.run("open /docs",
		chromedp.Navigate(s.URL+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(list)),
	)
	if summary := b.text(list + ` .opblock-summary-description`); !strings.Contains(summary, "List workflow definitions") {
		t.Errorf("listWorkflows summary: %q", summary)
	}
	// The info description is Markdown: its `code` spans are rendered, not shown raw.
	info := b.text(`.information-container .description`)
	codeSpans, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](
		`document.querySelectorAll(".information-container .description code").length`))
	if err != nil || codeSpans == 0 || strings.Contains(info, "`X-API-Key") {
		t.Errorf("the description's Markdown is not rendered (%d code spans, %v): %q", codeSpans, err, info)
	}

	// A request body built from allOf (SampleEvent = EventInput + depth) shows the properties
	// of both parts, with their descriptions.
	b.run("expand testRule",
		chromedp.Click(chromedp.CSS(testRule+` .opblock-summary-control`)),
		chromedp.WaitVisible(chromedp.CSS(testRule+` .opblock-section-request-body`)),
	)
	body := b.text(testRule + ` .opblock-section-request-body`)
	for _, want := range []string{`"event"`, `"type"`, `"depth"`} {
		if !strings.Contains(body, want) {
			t.Errorf("testRule's example body lacks %s: %q", want, body)
		}
	}
	b.run("show testRule's body schema",
		chromedp.Click(chromedp.CSS(testRule+` .opblock-section-request-body button[data-name="model"]`)),
		b.waitText(testRule+` .opblock-section-request-body`, "Causation depth"),
	)

	// Try it without the key: the API answers 401, and the page shows it.
	b.run("try listWorkflows without a key",
		chromedp.Click(chromedp.CSS(list+` .opblock-summary-control`)),
		chromedp.WaitVisible(chromedp.CSS(list+` .try-out__btn`)),
		chromedp.Click(chromedp.CSS(list+` .try-out__btn`)),
		chromedp.WaitVisible(chromedp.CSS(list+` .btn.execute`)),
		chromedp.Click(chromedp.CSS(list+` .btn.execute`)),
		b.waitText(list+` .live-responses-table tbody .response-col_status`, "401"),
	)

	// The internal API key in the Authorize box; try it again: 200 with the workflow.
	b.run("authorize with the API key",
		chromedp.Click(chromedp.CSS(`.auth-wrapper .btn.authorize`)),
		chromedp.WaitVisible(chromedp.CSS(`#api_key_value`)),
		chromedp.SendKeys(chromedp.CSS(`#api_key_value`), s.APIKey),
		chromedp.Click(chromedp.CSS(`.auth-container:has(#api_key_value) button[type="submit"]`)),
		b.waitText(`.modal-ux`, "Authorized"),
		chromedp.Click(chromedp.CSS(`.modal-ux .btn-done`)),
		chromedp.WaitNotPresent(chromedp.CSS(`.modal-ux`)),
	)
	b.run("try listWorkflows with the key",
		chromedp.Click(chromedp.CSS(list+` .btn.execute`)),
		b.waitText(list+` .live-responses-table tbody .response-col_status`, "200"),
		b.waitText(list+` .live-responses-table tbody .response-col_description`, "docs-browser-check"),
	)
	if curl := b.text(list + ` .curl-command`); !strings.Contains(curl, "X-API-Key: "+s.APIKey) {
		t.Errorf("the try-it request does not carry the key: %q", curl)
	}
	// DOCS_SCREENSHOT=file.png keeps a picture of the page at this point (for release notes).
	if path := os.Getenv("DOCS_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Search filters operations by what they do, not only by tag.
	b.run("search for pause",
		chromedp.SendKeys(chromedp.CSS(`.operation-filter-input`), "pause"),
		chromedp.WaitVisible(chromedp.CSS(`#operations-workflows-pauseWorkflow`)),
		chromedp.WaitNotPresent(chromedp.CSS(list)),
	)
	b.check()
}

// browser is one headless Chromium tab; it records script errors, console errors (a
// Content-Security-Policy violation is one) and requests to any origin other than the stack's.
type browser struct {
	t      *testing.T
	ctx    context.Context
	origin string

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T, chromium, origin string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	b := &browser{t: t, origin: origin}
	// Listen starts the browser; the timeout applies to what follows, not to the browser's life.
	err := chromedp.Listen(tab, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.problem("script exception: %s", (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.problem("console error: %s", strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.problem("browser log: %s %s", ev.Entry.Text, ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") {
				b.problem("request to another origin: %s", u)
			}
		}
	})
	if err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(tab, 3*time.Minute)
	b.ctx = ctx
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// run runs the actions, failing the test with the page's text when one fails.
func (b *browser) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fail(step, err)
	}
}

// text is the visible text of the first element matching the CSS selector sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fail("read "+sel, err)
	}
	return s
}

func (b *browser) fail(step string, err error) {
	b.t.Helper()
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(text) > 4000 {
		text = text[:4000] + "…"
	}
	b.check()
	b.t.Fatalf("%s: %v\npage text:\n%s", step, err, text)
}

// waitText waits until an element matching the CSS selector sel contains want.
func (b *browser) waitText(sel, want string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).some(e => e.textContent.includes(%q))`, sel, want)
	return chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))
}

// check fails the test for every problem the page reported. The 401 the first try-it call
// provokes on purpose is the one expected failed request.
func (b *browser) check() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		if strings.Contains(p, "401 (Unauthorized)") {
			continue
		}
		b.t.Error(p)
	}
	b.problems = nil
}
