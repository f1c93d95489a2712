package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// Limits of digests.
const (
	// MinDigestWindow and MaxDigestWindow bound a category's digest window.
	MinDigestWindow = time.Second
	MaxDigestWindow = 7 * 24 * time.Hour
	// MaxDigestListed is how many notifications a digest lists; the rest are counted.
	MaxDigestListed = 100
	// maxDigestItemBody bounds each notification's text in the default digest.
	maxDigestItemBody = 2000
)

// HoldDigest is the held_reason of a delivery held for its subscriber's digest.
const HoldDigest = store.HoldDigest

// DigestRule is how a delivery to a subscriber is digested: held in a window that closes
// WindowSeconds after the first notification held, or at the next Until (HH:MM or HH:MM:SS) in
// TimeZone (the subscriber's, else the tenant's default zone, else UTC), then sent as one
// message rendered with TemplateID (an email template) when set. It is fixed when the
// notification is asked for.
type DigestRule struct {
	WindowSeconds int    `json:"window_seconds,omitempty"`
	Until         string `json:"until,omitempty"`
	TimeZone      string `json:"time_zone,omitempty"`
	TemplateID    string `json:"template_id,omitempty"`
}

// ClosesAt is when a window of r opened at now closes.
func (r DigestRule) ClosesAt(now time.Time) time.Time {
	if r.Until == "" {
		return now.Add(time.Duration(r.WindowSeconds) * time.Second).UTC()
	}
	at, err := parseClock(r.Until)
	if err != nil {
		return now.UTC()
	}
	loc := time.UTC
	if r.TimeZone != "" {
		if l, err := time.LoadLocation(r.TimeZone); err == nil {
			loc = l
		}
	}
	local := now.In(loc)
	y, mo, d := local.Date()
	next := time.Date(y, mo, d, at/3600, at%3600/60, at%60, 0, loc)
	if !next.After(local) {
		next = time.Date(y, mo, d+1, at/3600, at%3600/60, at%60, 0, loc)
	}
	return next.UTC()
}

// DigestInput sets a category's digest (POST and PUT /api/v1/notification-categories): window
// (a duration, "1h", "15m"; or window_seconds) or until (a daily time, "09:00", in each
// subscriber's time zone), and the email template that renders it (optional).
type DigestInput struct {
	Window        string `json:"window"`
	WindowSeconds int    `json:"window_seconds"`
	Until         string `json:"until"`
	TemplateID    string `json:"template_id"`
}

// digest validates in as category's digest settings.
func (in *DigestInput) digest(p *validation.Problems, transactional bool) store.CategoryDigest {
	if in == nil {
		return store.CategoryDigest{}
	}
	out := store.CategoryDigest{Until: strings.TrimSpace(in.Until), TemplateID: strings.TrimSpace(in.TemplateID),
		WindowSeconds: in.WindowSeconds}
	if in.Window != "" {
		d, err := time.ParseDuration(in.Window)
		switch {
		case err != nil:
			p.Add("digest.window", "%q is not a duration (1h, 15m, 90s)", in.Window)
		case d%time.Second != 0:
			p.Add("digest.window", "must be whole seconds, got %s", in.Window)
		case in.WindowSeconds != 0 && int(d/time.Second) != in.WindowSeconds:
			p.Add("digest.window_seconds", "disagrees with window")
		default:
			out.WindowSeconds = int(d / time.Second)
		}
	}
	w := time.Duration(out.WindowSeconds) * time.Second
	switch {
	case out.Until != "" && out.WindowSeconds != 0:
		p.Add("digest", "give window or until, not both")
	case out.Until != "":
		if _, err := parseClock(out.Until); err != nil {
			p.Add("digest.until", "%s", err.Error())
		}
	case out.WindowSeconds == 0:
		if in.Window == "" {
			p.Add("digest", "window or until is required")
		}
	case w < MinDigestWindow || w > MaxDigestWindow:
		p.Add("digest.window", "must be between %s and %d days, got %s", MinDigestWindow, int(MaxDigestWindow.Hours()/24), w)
	}
	if out.TemplateID != "" && !templateID.MatchString(out.TemplateID) {
		p.Add("digest.template_id", "%q is not a template id", out.TemplateID)
	}
	if transactional {
		p.Add("digest", "a transactional category is sent at once, never digested")
	}
	return out
}

// checkDigestTemplate makes sure a category's digest template is an email template of the tenant.
func (s *Service) checkDigestTemplate(ctx context.Context, d store.CategoryDigest) error {
	if d.TemplateID == "" {
		return nil
	}
	t, _, err := s.store.GetNotificationTemplate(ctx, d.TemplateID, 0)
	var p validation.Problems
	switch {
	case isNotFound(err):
		p.Add("digest.template_id", "no template %q", d.TemplateID)
	case err != nil:
		return err
	case t.Channel != store.ChannelEmail:
		p.Add("digest.template_id", "%q is an %s template; digests are rendered with email templates", d.TemplateID, t.Channel)
	}
	return p.Err()
}

// applyDigest marks the subscriber deliveries of spec for the digest of its category when the
// category is digested; critical notifications are never held.
func (s *Service) applyDigest(ctx context.Context, spec *Spec, targets []target) error {
	if spec.Category == "" || spec.Priority == PriorityCritical {
		return nil
	}
	cat, err := s.store.GetCategory(ctx, spec.Category)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read category %s: %w", spec.Category, err)
	}
	if !cat.Digest.Enabled() || cat.Transactional {
		return nil
	}
	for i := range spec.Deliveries {
		if spec.Deliveries[i].SubscriberID == "" || i >= len(targets) {
			continue
		}
		spec.Deliveries[i].Digest = &DigestRule{WindowSeconds: cat.Digest.WindowSeconds, Until: cat.Digest.Until,
			TimeZone: targets[i].zone, TemplateID: cat.Digest.TemplateID}
	}
	return nil
}

// ErrDigestUndeliverable: a digest whose subscriber was deleted or has no address on its channel
// any more; its notifications are failed with the reason.
var ErrDigestUndeliverable = errors.New("digest cannot be delivered")

// ComposeDigest builds the notification that carries closed digest c to its subscriber: its
// notifications listed in the order they were asked for, rendered with the digest's template
// (an email template, given the items as `items` and their number as `count`) or as a plain
// list. Its ids are the ones the digest chose when it opened, so composing it again gives the
// same notification. Errors: ErrDigestUndeliverable, or the store's.
func ComposeDigest(ctx context.Context, st *store.Store, eng *templating.Engine, c store.ClosedDigest) (Spec, error) {
	dg := c.Digest
	sub, err := st.GetSubscriber(ctx, dg.SubscriberID)
	if isNotFound(err) {
		return Spec{}, fmt.Errorf("%w: the subscriber was deleted", ErrDigestUndeliverable)
	}
	if err != nil {
		return Spec{}, err
	}
	addr, key := sub.Email, recipientKey(sub.Email)
	if dg.Channel == store.ChannelSMS {
		addr, key = sub.Phone, sub.Phone
	}
	if addr == "" {
		return Spec{}, fmt.Errorf("%w: the subscriber has no %s address", ErrDigestUndeliverable, dg.Channel)
	}
	settings, err := st.GetNotificationSettings(ctx)
	if err != nil {
		return Spec{}, fmt.Errorf("read notification settings: %w", err)
	}
	created := dg.CreatedAt
	if dg.ClosedAt != nil {
		created = *dg.ClosedAt
	}
	spec := Spec{
		ID: dg.NotificationID, Channel: dg.Channel, Category: dg.Category, Priority: "normal",
		WorkflowID: workflowID(dg.NotificationID, ""), CreatedAt: created.UTC(),
		Metadata: map[string]any{"digest_id": dg.ID, "digest_items": len(c.Items)},
		Deliveries: []DeliverySpec{{ID: dg.DeliveryID, Recipient: addr, RecipientKey: key, SubscriberID: sub.ID,
			QuietHours: quietHoursFor(sub, settings)}},
	}
	content, usedTemplate := digestContent(ctx, st, eng, dg, sub, c.Items)
	spec.Subject, spec.Body, spec.HTMLBody = content.Subject, content.Body, content.HTMLBody
	if usedTemplate {
		spec.TemplateID = dg.TemplateID
	}
	return spec, nil
}

// digestContent renders a digest: with its email template when it has one that renders, else as
// a list (an SMS digest is always the short list).
func digestContent(ctx context.Context, st *store.Store, eng *templating.Engine, dg store.NotificationDigest, sub store.Subscriber, items []store.DigestItem) (Rendered, bool) {
	if dg.Channel == store.ChannelSMS {
		return Rendered{Body: smsDigest(items)}, false
	}
	if dg.TemplateID != "" {
		if t, v, err := st.GetNotificationTemplate(ctx, dg.TemplateID, 0); err == nil && t.Channel == store.ChannelEmail {
			out, err := renderWith(ctx, eng, Rendered{Subject: v.Subject, Body: v.Body, HTMLBody: v.HTMLBody},
				digestData(dg, sub, items), dg.TemplateID)
			if err == nil && out.Subject != "" && len(out.Subject) <= MaxSubject && !strings.ContainsAny(out.Subject, "\r\n") &&
				(out.Body != "" || out.HTMLBody != "") {
				return out, true
			}
		}
	}
	return emailDigest(items), false
}

// digestData is what a digest template renders: items (subject, body, html_body,
// notification_id, template_id, metadata, created_at), count, category and subscriber.
func digestData(dg store.NotificationDigest, sub store.Subscriber, items []store.DigestItem) map[string]any {
	list := make([]any, 0, min(len(items), MaxDigestListed))
	for i, it := range items {
		if i == MaxDigestListed {
			break
		}
		var meta any = map[string]any{}
		if len(it.Metadata) > 0 {
			_ = json.Unmarshal(it.Metadata, &meta)
		}
		list = append(list, map[string]any{
			"subject": it.Subject, "body": it.Body, "html_body": it.HTMLBody, "notification_id": it.NotificationID,
			"template_id": it.TemplateID, "metadata": meta, "created_at": it.CreatedAt.UTC().Format(time.RFC3339),
		})
	}
	var data any = map[string]any{}
	if len(sub.Data) > 0 {
		_ = json.Unmarshal(sub.Data, &data)
	}
	return map[string]any{
		"items": list, "count": len(items), "more": len(items) - len(list), "category": dg.Category,
		"subscriber": map[string]any{"id": sub.ID, "external_id": sub.ExternalID, "email": sub.Email,
			"phone": sub.Phone, "locale": sub.Locale, "data": data},
	}
}

// emailDigest is the default email of a digest: a subject naming the first notification and how
// many more there are, and a text (and, when any item has one, HTML) list of them.
func emailDigest(items []store.DigestItem) Rendered {
	title := func(it store.DigestItem) string {
		if it.Subject != "" {
			return it.Subject
		}
		return firstLine(it.Body)
	}
	var out Rendered
	switch len(items) {
	case 0:
		out.Subject = "Your digest"
	case 1:
		out.Subject = title(items[0])
	default:
		out.Subject = fmt.Sprintf("%s (and %d more)", title(items[0]), len(items)-1)
	}
	out.Subject = cut(out.Subject, 200)
	var text, page strings.Builder
	anyHTML := false
	for _, it := range items {
		anyHTML = anyHTML || it.HTMLBody != ""
	}
	fmt.Fprintf(&text, "%d notifications:\n\n", len(items))
	page.WriteString("<ul>\n")
	for i, it := range items {
		if i == MaxDigestListed {
			fmt.Fprintf(&text, "…and %d more.\n", len(items)-i)
			fmt.Fprintf(&page, "<li>…and %d more.</li>\n", len(items)-i)
			break
		}
		fmt.Fprintf(&text, "• %s\n", title(it))
		if it.Body != "" {
			text.WriteString(indent(cut(it.Body, maxDigestItemBody)) + "\n")
		}
		text.WriteString("\n")
		fmt.Fprintf(&page, "<li><strong>%s</strong>", html.EscapeString(title(it)))
		switch {
		case it.HTMLBody != "":
			page.WriteString("<div>" + it.HTMLBody + "</div>")
		case it.Body != "":
			page.WriteString("<div>" + strings.ReplaceAll(html.EscapeString(cut(it.Body, maxDigestItemBody)), "\n", "<br>") + "</div>")
		}
		page.WriteString("</li>\n")
	}
	page.WriteString("</ul>\n")
	out.Body = strings.TrimRight(text.String(), "\n")
	if anyHTML {
		out.HTMLBody = page.String()
	}
	return out
}

// smsDigest is an SMS digest: how many notifications, then each one's subject or first line,
// cut to the provider's limit.
func smsDigest(items []store.DigestItem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d notifications:", len(items))
	for _, it := range items {
		line := it.Subject
		if line == "" {
			line = firstLine(it.Body)
		}
		b.WriteString("\n- " + cut(line, 160))
	}
	return cut(b.String(), sms.MaxBody)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// cut shortens s to at most n characters, ending it with "…" when it was longer.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ")
}
