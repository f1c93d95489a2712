package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pyairtable/automation-domain/notify/email"
	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// EmailRequest is an email to send: the seed's body (to, subject, body, template_id,
// template_data) plus cc, bcc, html_body, reply_to, send_at and priority.
//
// With template_id the template's subject, text and HTML bodies are rendered with template_data
// (in which the request's own subject, body and html_body are available as variables too), and
// the request's fields fill in what the template lacks. Without it, subject and body (or
// html_body) are the content, rendered with template_data when that is given.
type EmailRequest struct {
	To []string `json:"to"`
	// SubscriberIDs address subscribers (by id or external id) besides the raw addresses in to:
	// each gets a delivery to their email, checked against their preferences.
	SubscriberIDs []string `json:"subscriber_ids,omitempty"`
	// Category names the kind of notification, which subscribers' preferences refer to.
	Category string `json:"category,omitempty"`
	// Channels, when set, lists the channels to try in order, starting with "email"
	// (["email", "sms"]): a delivery to a subscriber that fails for good, is suppressed or
	// opted out is tried again on the next channel, at the subscriber's address there.
	Channels        []string       `json:"channels,omitempty"`
	Cc              []string       `json:"cc,omitempty"`
	Bcc             []string       `json:"bcc,omitempty"`
	ReplyTo         string         `json:"reply_to,omitempty"`
	Subject         string         `json:"subject,omitempty"`
	Body            string         `json:"body,omitempty"`
	HTMLBody        string         `json:"html_body,omitempty"`
	TemplateID      string         `json:"template_id,omitempty"`
	TemplateVersion int            `json:"template_version,omitempty"`
	TemplateData    map[string]any `json:"template_data,omitempty"`
	SendAt          *time.Time     `json:"send_at,omitempty"`
	// Priority is low, normal (default), high or critical: the order of sends waiting in the
	// channel's queue, and the Importance header; critical (as high) also ignores quiet hours.
	Priority string `json:"priority,omitempty"`
	// Metadata is kept with the notification and copied into its events.
	Metadata map[string]any `json:"metadata,omitempty"`

	// IdempotencyKey, when set, makes the send happen once: a repeated key returns the first
	// notification (Replayed set). Callers scope it themselves (the API prefixes the client).
	IdempotencyKey string `json:"-"`
	// Cause is the event whose handling asked for this notification (an automation rule's
	// trigger); the notification's events continue its chain.
	Cause *store.Event `json:"-"`
}

// SMSRequest is an SMS to send: the seed's body (to, message, template_id, template_data) plus
// send_at. With template_id the template's body is rendered with template_data (message is
// available to it as a variable); without, message is the text.
type SMSRequest struct {
	To              []string       `json:"to"`
	SubscriberIDs   []string       `json:"subscriber_ids,omitempty"`
	Category        string         `json:"category,omitempty"`
	Message         string         `json:"message,omitempty"`
	TemplateID      string         `json:"template_id,omitempty"`
	TemplateVersion int            `json:"template_version,omitempty"`
	TemplateData    map[string]any `json:"template_data,omitempty"`
	SendAt          *time.Time     `json:"send_at,omitempty"`
	Priority        string         `json:"priority,omitempty"`
	Metadata        map[string]any `json:"metadata,omitempty"`

	IdempotencyKey string       `json:"-"`
	Cause          *store.Event `json:"-"`
}

// SendEmail validates and renders r and queues one delivery per `to` recipient (each gets its
// own message; cc and bcc receive a copy of each). It returns the queued notification, or the
// first one for a repeated idempotency key. Errors: validation.Problems (invalid input or a
// template that does not render), ErrTemplateNotFound, ErrChannelNotConfigured,
// ErrIdempotencyMismatch, or a Temporal/database error.
func (s *Service) SendEmail(ctx context.Context, r EmailRequest) (Notification, error) {
	if !s.EmailConfigured() {
		return Notification{}, fmt.Errorf("%w: %w", ErrChannelNotConfigured, email.ErrNotConfigured)
	}
	var p validation.Problems
	to := emailList(&p, "to", r.To, len(r.SubscriberIDs) == 0)
	cc := emailList(&p, "cc", r.Cc, false)
	bcc := emailList(&p, "bcc", r.Bcc, false)
	if len(cc)+len(bcc) > MaxRecipients {
		p.Add("cc", "cc and bcc together take at most %d addresses, got %d", MaxRecipients, len(cc)+len(bcc))
	}
	if r.ReplyTo != "" {
		if _, err := mail.ParseAddress(r.ReplyTo); err != nil {
			p.Add("reply_to", "is not an email address: %q", r.ReplyTo)
		}
	}
	s.checkCommon(&p, r.Priority, r.SendAt, r.Metadata)
	checkCategory(&p, r.Category)
	s.checkChannels(&p, store.ChannelEmail, r.Channels)
	targets, err := s.addressed(ctx, &p, store.ChannelEmail, to, r.SubscriberIDs)
	if err != nil {
		return Notification{}, err
	}
	if r.TemplateID == "" && r.Body == "" && r.HTMLBody == "" {
		p.Add("body", "body, html_body or template_id is required")
	}
	if err := p.Err(); err != nil {
		return Notification{}, err
	}

	subject, body, html := r.Subject, r.Body, r.HTMLBody
	var tplVersion int
	if r.TemplateID != "" {
		data := withFallbacks(r.TemplateData, map[string]string{"subject": r.Subject, "body": r.Body, "html_body": r.HTMLBody})
		out, version, err := s.renderTemplate(ctx, r.TemplateID, r.TemplateVersion, store.ChannelEmail, data)
		if err != nil {
			return Notification{}, err
		}
		tplVersion = version
		subject, body, html = orElse(out.Subject, subject), orElse(out.Body, body), orElse(out.HTMLBody, html)
	} else if r.TemplateData != nil {
		out, err := s.render(ctx, Rendered{Subject: subject, Body: body, HTMLBody: html}, r.TemplateData, "")
		if err != nil {
			return Notification{}, err
		}
		subject, body, html = out.Subject, out.Body, out.HTMLBody
	}
	if subject == "" {
		p.Add("subject", "is required (the template has none)")
	}
	if len(subject) > MaxSubject || strings.ContainsAny(subject, "\r\n") {
		p.Add("subject", "must be one line of at most %d characters", MaxSubject)
	}
	if body == "" && html == "" {
		p.Add("body", "the message is empty")
	}
	if err := p.Err(); err != nil {
		return Notification{}, err
	}

	spec := s.newSpec(store.ChannelEmail, r.IdempotencyKey, r.Cause, targets)
	spec.Category = r.Category
	if len(r.Channels) > 1 {
		spec.Channels = r.Channels
	}
	spec.Subject, spec.Body, spec.HTMLBody = subject, body, html
	spec.Cc, spec.Bcc, spec.ReplyTo = cc, bcc, r.ReplyTo
	spec.TemplateID, spec.TemplateVersion = r.TemplateID, tplVersion
	spec.Priority, spec.SendAt, spec.Metadata = orElse(r.Priority, "normal"), utc(r.SendAt), r.Metadata
	spec.RequestHash = requestHash(r)
	if err := s.applyDigest(ctx, &spec, targets); err != nil {
		return Notification{}, err
	}
	return s.submit(ctx, spec)
}

// SendSMS validates and renders r and queues one delivery per recipient. Errors as SendEmail.
func (s *Service) SendSMS(ctx context.Context, r SMSRequest) (Notification, error) {
	if !s.SMSConfigured() {
		return Notification{}, fmt.Errorf("%w: %w", ErrChannelNotConfigured, sms.ErrNotConfigured)
	}
	var p validation.Problems
	if len(r.To) == 0 && len(r.SubscriberIDs) == 0 {
		p.Add("to", "at least one phone number is required")
	} else if len(r.To) > MaxRecipients {
		p.Add("to", "at most %d recipients, got %d", MaxRecipients, len(r.To))
	}
	seen := map[string]bool{}
	for i, n := range r.To {
		switch {
		case !validation.IsE164(n):
			p.Add(validation.Index("to", i), "%q is not an E.164 phone number (+14155550100)", n)
		case seen[n]:
			p.Add(validation.Index("to", i), "%q is listed twice", n)
		}
		seen[n] = true
	}
	s.checkCommon(&p, r.Priority, r.SendAt, r.Metadata)
	checkCategory(&p, r.Category)
	targets, err := s.addressed(ctx, &p, store.ChannelSMS, r.To, r.SubscriberIDs)
	if err != nil {
		return Notification{}, err
	}
	if r.TemplateID == "" && r.Message == "" {
		p.Add("message", "message or template_id is required")
	}
	if err := p.Err(); err != nil {
		return Notification{}, err
	}
	text := r.Message
	var tplVersion int
	if r.TemplateID != "" {
		data := withFallbacks(r.TemplateData, map[string]string{"message": r.Message})
		out, version, err := s.renderTemplate(ctx, r.TemplateID, r.TemplateVersion, store.ChannelSMS, data)
		if err != nil {
			return Notification{}, err
		}
		text, tplVersion = orElse(out.Body, text), version
	} else if r.TemplateData != nil {
		out, err := s.render(ctx, Rendered{Body: text}, r.TemplateData, "")
		if err != nil {
			return Notification{}, err
		}
		text = out.Body
	}
	text = strings.TrimSpace(text)
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
		p.Add("message", "the message is empty")
	case n > sms.MaxBody:
		p.Add("message", "must be at most %d characters, got %d", sms.MaxBody, n)
	}
	if err := p.Err(); err != nil {
		return Notification{}, err
	}
	spec := s.newSpec(store.ChannelSMS, r.IdempotencyKey, r.Cause, targets)
	spec.Category = r.Category
	spec.Body, spec.TemplateID, spec.TemplateVersion = text, r.TemplateID, tplVersion
	spec.Priority, spec.SendAt, spec.Metadata = orElse(r.Priority, "normal"), utc(r.SendAt), r.Metadata
	spec.RequestHash = requestHash(r)
	if err := s.applyDigest(ctx, &spec, targets); err != nil {
		return Notification{}, err
	}
	return s.submit(ctx, spec)
}

// newSpec starts a notification spec with new ids, its workflow id and its causation chain.
func (s *Service) newSpec(channel, key string, cause *store.Event, targets []target) Spec {
	id := store.NewID()
	hashed := hashKey(key)
	spec := Spec{
		ID: id, Channel: channel, IdempotencyKey: hashed, WorkflowID: workflowID(id, hashed),
		CreatedAt: s.now().UTC(),
	}
	if cause != nil {
		spec.CausationID, spec.CorrelationID, spec.Depth = cause.ID, cause.CorrelationID, cause.Depth+1
		if spec.CorrelationID == "" {
			spec.CorrelationID = cause.ID
		}
	}
	for _, t := range targets {
		spec.Deliveries = append(spec.Deliveries, DeliverySpec{ID: store.NewID(), Recipient: t.recipient,
			RecipientKey: t.key, SubscriberID: t.subscriberID, QuietHours: t.quiet})
	}
	return spec
}

// target is one recipient of a send: a raw address or a subscriber's.
type target struct {
	recipient, key, subscriberID string
	quiet                        *QuietHours
	// zone is the subscriber's time zone, else the tenant's default one (digests' daily times).
	zone string
}

// addressed resolves the recipients of a send: the raw addresses (validated already) and each
// subscriber's address on channel. A subscriber unknown, without an address on the channel, or
// whose address is listed already is a problem at its path; more than MaxRecipients in all too.
func (s *Service) addressed(ctx context.Context, p *validation.Problems, channel string, raw, subscriberIDs []string) ([]target, error) {
	keyOf := func(a string) string { return a }
	if channel == store.ChannelEmail {
		keyOf = recipientKey
	}
	out := make([]target, 0, len(raw)+len(subscriberIDs))
	seen := map[string]bool{}
	for _, r := range raw {
		k := keyOf(r)
		seen[k] = true
		out = append(out, target{recipient: r, key: k})
	}
	if len(raw)+len(subscriberIDs) > MaxRecipients {
		p.Add("subscriber_ids", "to and subscriber_ids together take at most %d recipients, got %d", MaxRecipients, len(raw)+len(subscriberIDs))
		return out, nil
	}
	// The tenant's default quiet hours, read once for the subscribers without their own.
	var defaults *Settings
	for i, id := range subscriberIDs {
		path := validation.Index("subscriber_ids", i)
		sub, err := s.store.GetSubscriber(ctx, id)
		if isNotFound(err) {
			p.Add(path, "no subscriber %q", id)
			continue
		}
		if err != nil {
			return nil, err
		}
		addr := sub.Email
		if channel == store.ChannelSMS {
			addr = sub.Phone
		}
		if addr == "" {
			p.Add(path, "subscriber %q has no %s address", id, channel)
			continue
		}
		k := keyOf(addr)
		if seen[k] {
			p.Add(path, "subscriber %q's address %q is listed already", id, addr)
			continue
		}
		seen[k] = true
		if defaults == nil && (sub.QuietHoursStart == "" || sub.QuietHoursEnd == "" || sub.TimeZone == "") {
			ns, err := s.store.GetNotificationSettings(ctx)
			if err != nil {
				return nil, fmt.Errorf("read notification settings: %w", err)
			}
			defaults = &ns
		}
		var tenantDefaults Settings
		if defaults != nil {
			tenantDefaults = *defaults
		}
		t := target{recipient: addr, key: k, subscriberID: sub.ID, quiet: quietHoursFor(sub, tenantDefaults),
			zone: orElse(sub.TimeZone, tenantDefaults.TimeZone)}
		out = append(out, t)
	}
	return out, nil
}

// checkChannels validates a fallback channel list: it starts with first, names each channel
// once, and every channel in it is configured.
func (s *Service) checkChannels(p *validation.Problems, first string, channels []string) {
	if channels == nil {
		return
	}
	if len(channels) == 0 || channels[0] != first {
		p.Add("channels", "must start with %q", first)
		return
	}
	seen := map[string]bool{}
	for i, c := range channels {
		path := validation.Index("channels", i)
		switch {
		case c != store.ChannelEmail && c != store.ChannelSMS:
			p.Add(path, "must be email or sms, got %q", c)
		case seen[c]:
			p.Add(path, "%q is listed twice", c)
		case c == store.ChannelSMS && !s.SMSConfigured():
			p.Add(path, "the sms channel is not configured")
		}
		seen[c] = true
	}
}

// checkCategory validates a notification's category name.
func checkCategory(p *validation.Problems, category string) {
	if category != "" && !validName(category) {
		p.Add("category", "must be 1–64 characters of a-z, 0-9, '.', '_' or '-', got %q", category)
	}
}

// validName reports whether s is a short identifier (categories, preference keys).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkCommon validates priority, send_at and metadata.
func (s *Service) checkCommon(p *validation.Problems, priority string, sendAt *time.Time, metadata map[string]any) {
	switch priority {
	case "", "low", "normal", "high", PriorityCritical:
	default:
		p.Add("priority", "must be low, normal, high or critical, got %q", priority)
	}
	if sendAt != nil && sendAt.After(s.now().Add(MaxScheduleAhead)) {
		p.Add("send_at", "must be within %d days", int(MaxScheduleAhead.Hours()/24))
	}
	if metadata != nil {
		if b, err := json.Marshal(metadata); err != nil || len(b) > MaxMetadata {
			p.Add("metadata", "must be a JSON object of at most %d bytes", MaxMetadata)
		}
	}
}

// emailList validates a list of addresses: each parseable, none twice, at most MaxRecipients.
func emailList(p *validation.Problems, field string, list []string, required bool) []string {
	if required && len(list) == 0 {
		p.Add(field, "at least one recipient is required")
	}
	if len(list) > MaxRecipients {
		p.Add(field, "at most %d recipients, got %d", MaxRecipients, len(list))
		return nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(list))
	for i, raw := range list {
		a, err := mail.ParseAddress(strings.TrimSpace(raw))
		if err != nil || !strings.Contains(a.Address, "@") {
			p.Add(validation.Index(field, i), "%q is not an email address", raw)
			continue
		}
		k := strings.ToLower(a.Address)
		if seen[k] {
			p.Add(validation.Index(field, i), "%q is listed twice", raw)
			continue
		}
		seen[k] = true
		out = append(out, strings.TrimSpace(raw))
	}
	return out
}

// recipientKey normalizes a recipient for the throttle and filters: the lower-case address of
// an email recipient ("Ada <Ada@X.io>" → "ada@x.io"), a phone number as it is.
func recipientKey(r string) string {
	if a, err := mail.ParseAddress(r); err == nil {
		return strings.ToLower(a.Address)
	}
	return strings.ToLower(strings.TrimSpace(r))
}

// withFallbacks copies data and adds each fallback that is set and not in data already.
func withFallbacks(data map[string]any, fallbacks map[string]string) map[string]any {
	out := make(map[string]any, len(data)+len(fallbacks))
	for k, v := range data {
		out[k] = v
	}
	for k, v := range fallbacks {
		if _, ok := out[k]; !ok && v != "" {
			out[k] = v
		}
	}
	return out
}

func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// isNotFound reports a missing row.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
