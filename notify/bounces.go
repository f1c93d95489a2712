package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Suppression reasons.
const (
	SuppressHardBounce    = "hard_bounce"
	SuppressComplaint     = "complaint"
	SuppressUnsubscribed  = "unsubscribed"
	SuppressInvalidNumber = "invalid_number"
)

// BounceReport is the answer to a posted bounce or complaint report.
type BounceReport struct {
	// Format is the shape recognised: sns, ses or generic.
	Format string `json:"format"`
	// Suppressed lists the addresses added to the suppression list (or on it already).
	Suppressed []Suppression `json:"suppressed"`
	// Ignored counts recipients of reports that do not suppress (transient bounces).
	Ignored int `json:"ignored"`
	// SubscribeURL is set for an SNS subscription confirmation: visiting it confirms the topic's
	// subscription (this service does not call out to it).
	SubscribeURL string `json:"subscribe_url,omitempty"`
}

// sesNotification is an Amazon SES bounce or complaint notification (SNS message or event
// destination), in both its notificationType and eventType spellings.
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			DiagnosticCode string `json:"diagnosticCode"`
			Status         string `json:"status"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ComplainedRecipients  []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
}

// genericReport is the provider-neutral shape: {"type": "bounce"|"complaint", "email": "…" or
// "recipients": […], "permanent": true, "reason": "…"}.
type genericReport struct {
	Type       string   `json:"type"`
	Email      string   `json:"email"`
	Recipients []string `json:"recipients"`
	Permanent  *bool    `json:"permanent"`
	Reason     string   `json:"reason"`
}

type bounce struct {
	address, reason, detail string
}

// HandleBounceReport suppresses the addresses of a bounce or complaint report: an SNS envelope
// carrying an SES notification, an SES notification itself, or the generic shape. Permanent
// bounces and complaints suppress; transient bounces do not. Errors: validation.Problems.
func (s *Service) HandleBounceReport(ctx context.Context, body []byte) (BounceReport, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return BounceReport{}, validation.Problems{{Field: "", Message: "expected a JSON object"}}
	}
	rep := BounceReport{Suppressed: []Suppression{}}
	var found []bounce
	source := "webhook"
	var p validation.Problems
	switch {
	case probe["Type"] != nil && (probe["Message"] != nil || probe["SubscribeURL"] != nil):
		var env struct {
			Type         string `json:"Type"`
			Message      string `json:"Message"`
			SubscribeURL string `json:"SubscribeURL"`
		}
		_ = json.Unmarshal(body, &env)
		rep.Format, source = "sns", "ses"
		switch env.Type {
		case "SubscriptionConfirmation", "UnsubscribeConfirmation":
			rep.SubscribeURL = env.SubscribeURL
			return rep, nil
		case "Notification":
			var n sesNotification
			if err := json.Unmarshal([]byte(env.Message), &n); err != nil {
				p.Add("Message", "is not an SES notification (JSON): %v", err)
				break
			}
			found, rep.Ignored = sesBounces(&p, "Message", n)
		default:
			p.Add("Type", "must be Notification or SubscriptionConfirmation, got %q", env.Type)
		}
	case probe["notificationType"] != nil || probe["eventType"] != nil:
		var n sesNotification
		if err := json.Unmarshal(body, &n); err != nil {
			p.Add("", "is not an SES notification: %v", err)
			break
		}
		rep.Format, source = "ses", "ses"
		found, rep.Ignored = sesBounces(&p, "", n)
	default:
		var g genericReport
		if err := json.Unmarshal(body, &g); err != nil {
			p.Add("", "is not a bounce report: %v", err)
			break
		}
		rep.Format = "generic"
		reason := SuppressHardBounce
		switch g.Type {
		case "bounce", "hard_bounce":
		case "complaint", "spam":
			reason = SuppressComplaint
		default:
			p.Add("type", "must be bounce or complaint, got %q", g.Type)
		}
		list := g.Recipients
		if g.Email != "" {
			list = append([]string{g.Email}, list...)
		}
		if len(list) == 0 {
			p.Add("email", "email or recipients is required")
		}
		for i, a := range list {
			if !isAddress(a) {
				p.Add(validation.Index("recipients", i), "%q is not an email address", a)
				continue
			}
			if g.Permanent != nil && !*g.Permanent && reason == SuppressHardBounce {
				rep.Ignored++
				continue
			}
			found = append(found, bounce{address: a, reason: reason, detail: g.Reason})
		}
	}
	if len(found) > MaxRecipients*10 {
		p.Add("", "at most %d recipients in one report", MaxRecipients*10)
	}
	if err := p.Err(); err != nil {
		return rep, err
	}
	now := s.now().UTC()
	for _, b := range found {
		sup := Suppression{Channel: store.ChannelEmail, Address: recipientKey(b.address), Reason: b.reason,
			Source: source, Detail: truncate(b.detail, 500), CreatedAt: now}
		if _, err := s.store.Suppress(ctx, &sup); err != nil {
			return rep, fmt.Errorf("suppress %s: %w", sup.Address, err)
		}
		rep.Suppressed = append(rep.Suppressed, sup)
	}
	return rep, nil
}

func sesBounces(p *validation.Problems, field string, n sesNotification) (found []bounce, ignored int) {
	kind := n.NotificationType
	if kind == "" {
		kind = n.EventType
	}
	switch {
	case kind == "Bounce" && n.Bounce != nil:
		for _, r := range n.Bounce.BouncedRecipients {
			if n.Bounce.BounceType != "Permanent" {
				ignored++
				continue
			}
			detail := strings.TrimSpace(n.Bounce.BounceSubType + " " + r.DiagnosticCode)
			found = append(found, bounce{address: r.EmailAddress, reason: SuppressHardBounce, detail: detail})
		}
	case kind == "Complaint" && n.Complaint != nil:
		for _, r := range n.Complaint.ComplainedRecipients {
			found = append(found, bounce{address: r.EmailAddress, reason: SuppressComplaint, detail: n.Complaint.ComplaintFeedbackType})
		}
	case kind == "Delivery" || kind == "Send" || kind == "Open" || kind == "Click":
		// Not a bounce: nothing to suppress.
	default:
		p.Add(validation.Join(field, "notificationType"), "must be Bounce or Complaint with its details, got %q", kind)
	}
	for i, b := range found {
		if !isAddress(b.address) {
			p.Add(validation.Join(field, fmt.Sprintf("recipients[%d]", i)), "%q is not an email address", b.address)
		}
	}
	return found, ignored
}

func isAddress(a string) bool {
	m, err := mail.ParseAddress(strings.TrimSpace(a))
	return err == nil && strings.Contains(m.Address, "@")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
