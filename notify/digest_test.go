package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

func TestDigestClosesAt(t *testing.T) {
	at := func(s string) time.Time { return rfc3339(t, s) }
	for _, c := range []struct {
		name string
		now  string
		rule DigestRule
		want string
	}{
		{"a window from now", "2026-03-10T10:00:00Z", DigestRule{WindowSeconds: 3600}, "2026-03-10T11:00:00Z"},
		{"until later today, UTC", "2026-03-10T07:30:00Z", DigestRule{Until: "09:00"}, "2026-03-10T09:00:00Z"},
		{"until tomorrow once passed", "2026-03-10T09:00:00Z", DigestRule{Until: "09:00"}, "2026-03-11T09:00:00Z"},
		{"in the subscriber's zone", "2026-03-10T08:30:00Z", DigestRule{Until: "09:00", TimeZone: "Europe/Berlin"}, "2026-03-11T08:00:00Z"},
		// New York moves to daylight time on 2026-03-08: 09:00 is 14:00Z before it, 13:00Z after.
		{"across a daylight-saving change", "2026-03-07T15:00:00Z", DigestRule{Until: "09:00", TimeZone: "America/New_York"}, "2026-03-08T13:00:00Z"},
	} {
		if got := c.rule.ClosesAt(at(c.now)); !got.Equal(at(c.want)) {
			t.Errorf("%s: closes at %s, want %s", c.name, got.Format(time.RFC3339), c.want)
		}
	}
}

func TestDigestInput(t *testing.T) {
	for _, c := range []struct {
		name          string
		in            DigestInput
		transactional bool
		want          store.CategoryDigest
		problems      []string // paths
	}{
		{"window", DigestInput{Window: "1h", TemplateID: "daily"}, false, store.CategoryDigest{WindowSeconds: 3600, TemplateID: "daily"}, nil},
		{"window_seconds", DigestInput{WindowSeconds: 90}, false, store.CategoryDigest{WindowSeconds: 90}, nil},
		{"until", DigestInput{Until: "09:00"}, false, store.CategoryDigest{Until: "09:00"}, nil},
		{"neither", DigestInput{}, false, store.CategoryDigest{}, []string{"digest"}},
		{"both", DigestInput{Window: "1h", Until: "09:00"}, false, store.CategoryDigest{}, []string{"digest"}},
		{"not a duration", DigestInput{Window: "soon"}, false, store.CategoryDigest{}, []string{"digest.window"}},
		{"too long", DigestInput{Window: "200h"}, false, store.CategoryDigest{}, []string{"digest.window"}},
		{"fractional", DigestInput{Window: "1500ms"}, false, store.CategoryDigest{}, []string{"digest.window"}},
		{"not a time", DigestInput{Until: "25:00"}, false, store.CategoryDigest{}, []string{"digest.until"}},
		{"transactional", DigestInput{Window: "1h"}, true, store.CategoryDigest{}, []string{"digest"}},
		{"bad template id", DigestInput{Window: "1h", TemplateID: "No Such!"}, false, store.CategoryDigest{}, []string{"digest.template_id"}},
	} {
		var p validation.Problems
		in := c.in
		got := in.digest(&p, c.transactional)
		paths := map[string]bool{}
		for _, pr := range p {
			paths[pr.Field] = true
		}
		if len(paths) != len(c.problems) {
			t.Errorf("%s: problems %v, want at %v", c.name, p, c.problems)
		}
		for _, path := range c.problems {
			if !paths[path] {
				t.Errorf("%s: no problem at %s: %v", c.name, path, p)
			}
		}
		if c.problems == nil && got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestDefaultDigestContent(t *testing.T) {
	items := []store.DigestItem{
		{Subject: "Build passed", Body: "main is green"},
		{Subject: "Deploy <done>", Body: "v2 is live", HTMLBody: "<p>v2 is <b>live</b></p>"},
		{Body: "a note\nwith two lines"},
	}
	out := emailDigest(items)
	if out.Subject != "Build passed (and 2 more)" {
		t.Errorf("subject %q", out.Subject)
	}
	for _, want := range []string{"3 notifications", "• Build passed\n  main is green", "• Deploy <done>", "• a note\n  a note\n  with two lines"} {
		if !strings.Contains(out.Body, want) {
			t.Errorf("text lacks %q:\n%s", want, out.Body)
		}
	}
	if !strings.Contains(out.HTMLBody, "<strong>Deploy &lt;done&gt;</strong><div><p>v2 is <b>live</b></p></div>") ||
		!strings.Contains(out.HTMLBody, "a note<br>with two lines") {
		t.Errorf("html:\n%s", out.HTMLBody)
	}
	if one := emailDigest(items[:1]); one.Subject != "Build passed" || one.HTMLBody != "" {
		t.Errorf("one item: %+v", one)
	}
	many := make([]store.DigestItem, MaxDigestListed+5)
	for i := range many {
		many[i] = store.DigestItem{Subject: "s", Body: strings.Repeat("x", 5000)}
	}
	big := emailDigest(many)
	if !strings.Contains(big.Body, "…and 5 more.") || strings.Count(big.Body, "• s") != MaxDigestListed || len(big.Body) > MaxDigestListed*(maxDigestItemBody*3+20) {
		t.Errorf("a long digest lists %d items in %d bytes", strings.Count(big.Body, "• s"), len(big.Body))
	}
	if s := smsDigest(many); len([]rune(s)) > 1600 || !strings.HasPrefix(s, "105 notifications:\n- s") {
		t.Errorf("sms digest: %d characters, %q…", len([]rune(s)), s[:30])
	}
}
