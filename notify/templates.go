package notify

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// Template is a notification template at one version.
type Template struct {
	ID          string `json:"id"`
	Channel     string `json:"channel"`
	Description string `json:"description"`
	Version     int    `json:"version"`
	// CurrentVersion is the version sends use by default.
	CurrentVersion int       `json:"current_version"`
	Subject        string    `json:"subject,omitempty"`
	Body           string    `json:"body"`
	HTMLBody       string    `json:"html_body,omitempty"`
	Versions       []int     `json:"versions,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// TemplateInput creates a template (POST) or replaces its content with a new version (PUT).
type TemplateInput struct {
	ID          string  `json:"id"`
	Channel     string  `json:"channel"`
	Description *string `json:"description,omitempty"`
	Subject     string  `json:"subject,omitempty"`
	Body        string  `json:"body,omitempty"`
	HTMLBody    string  `json:"html_body,omitempty"`
}

// Rendered is a template's output.
type Rendered struct {
	Subject  string `json:"subject,omitempty"`
	Body     string `json:"body"`
	HTMLBody string `json:"html_body,omitempty"`
}

var templateID = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,99}$`)

// validateContent checks a template's fields and that each compiles.
func (s *Service) validateContent(p *validation.Problems, channel string, in TemplateInput) {
	switch channel {
	case store.ChannelEmail:
		if in.Body == "" && in.HTMLBody == "" {
			p.Add("body", "body or html_body is required")
		}
		if len(in.Subject) > MaxSubject || strings.ContainsAny(in.Subject, "\r\n") {
			p.Add("subject", "must be one line of at most %d characters", MaxSubject)
		}
	case store.ChannelSMS:
		if in.Body == "" {
			p.Add("body", "is required")
		}
		if in.Subject != "" || in.HTMLBody != "" {
			p.Add("channel", "an sms template has a body only (no subject or html_body)")
		}
	}
	for _, f := range []struct {
		field, src string
		html       bool
	}{{"subject", in.Subject, false}, {"body", in.Body, false}, {"html_body", in.HTMLBody, true}} {
		if err := s.templates.Compile(f.src, f.html); err != nil {
			p.Add(f.field, "does not compile: %s", err.Error())
		}
	}
	if in.Description != nil && len(*in.Description) > 1000 {
		p.Add("description", "must be at most 1000 characters")
	}
}

// CreateTemplate stores a new template as version 1. Errors: validation.Problems,
// store.ErrConflict when the id is taken.
func (s *Service) CreateTemplate(ctx context.Context, in TemplateInput) (Template, error) {
	var p validation.Problems
	if !templateID.MatchString(in.ID) {
		p.Add("id", "must be 1–100 lower-case letters, digits, '_', '.' or '-' (like welcome_email), got %q", in.ID)
	}
	switch in.Channel {
	case store.ChannelEmail, store.ChannelSMS:
	default:
		p.Add("channel", "must be email or sms, got %q", in.Channel)
	}
	s.validateContent(&p, in.Channel, in)
	if err := p.Err(); err != nil {
		return Template{}, err
	}
	now := s.now().UTC()
	t := &store.NotificationTemplate{ID: in.ID, Channel: in.Channel, CreatedAt: now, UpdatedAt: now}
	if in.Description != nil {
		t.Description = *in.Description
	}
	v := &store.NotificationTemplateVersion{Subject: in.Subject, Body: in.Body, HTMLBody: in.HTMLBody, CreatedAt: now}
	if err := s.store.CreateNotificationTemplate(ctx, t, v); err != nil {
		return Template{}, fmt.Errorf("create template %s: %w", in.ID, err)
	}
	return s.GetTemplate(ctx, in.ID, 0)
}

// UpdateTemplate stores in's content as the next version of template id and makes it current.
// The channel cannot change. Errors: validation.Problems, ErrTemplateNotFound.
func (s *Service) UpdateTemplate(ctx context.Context, id string, in TemplateInput) (Template, error) {
	cur, _, err := s.store.GetNotificationTemplate(ctx, id, 0)
	if isNotFound(err) {
		return Template{}, fmt.Errorf("%w: %q", ErrTemplateNotFound, id)
	}
	if err != nil {
		return Template{}, err
	}
	var p validation.Problems
	if in.ID != "" && in.ID != id {
		p.Add("id", "cannot change (it is %q)", id)
	}
	if in.Channel != "" && in.Channel != cur.Channel {
		p.Add("channel", "cannot change (it is %s)", cur.Channel)
	}
	s.validateContent(&p, cur.Channel, in)
	if err := p.Err(); err != nil {
		return Template{}, err
	}
	v := &store.NotificationTemplateVersion{Subject: in.Subject, Body: in.Body, HTMLBody: in.HTMLBody}
	if _, err := s.store.UpdateNotificationTemplate(ctx, id, in.Description, v, s.now().UTC()); err != nil {
		if isNotFound(err) {
			return Template{}, fmt.Errorf("%w: %q", ErrTemplateNotFound, id)
		}
		return Template{}, err
	}
	return s.GetTemplate(ctx, id, 0)
}

// GetTemplate returns template id at version (0: the current one) with the list of versions.
func (s *Service) GetTemplate(ctx context.Context, id string, version int) (Template, error) {
	t, v, err := s.store.GetNotificationTemplate(ctx, id, version)
	if isNotFound(err) {
		if version != 0 {
			return Template{}, fmt.Errorf("%w: %q version %d", ErrTemplateNotFound, id, version)
		}
		return Template{}, fmt.Errorf("%w: %q", ErrTemplateNotFound, id)
	}
	if err != nil {
		return Template{}, err
	}
	versions, err := s.store.NotificationTemplateVersions(ctx, id)
	if err != nil {
		return Template{}, err
	}
	out := Template{ID: t.ID, Channel: t.Channel, Description: t.Description, Version: v.Version,
		CurrentVersion: t.CurrentVersion, Subject: v.Subject, Body: v.Body, HTMLBody: v.HTMLBody,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	for _, x := range versions {
		out.Versions = append(out.Versions, x.Version)
	}
	return out, nil
}

// ListTemplates returns templates in id order, optionally of one channel (current versions,
// without the version list).
func (s *Service) ListTemplates(ctx context.Context, channel string, p store.Page) ([]Template, string, error) {
	rows, next, err := s.store.ListNotificationTemplates(ctx, channel, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]Template, 0, len(rows))
	for _, t := range rows {
		_, v, err := s.store.GetNotificationTemplate(ctx, t.ID, t.CurrentVersion)
		if err != nil && !isNotFound(err) {
			return nil, "", err
		}
		out = append(out, Template{ID: t.ID, Channel: t.Channel, Description: t.Description,
			Version: t.CurrentVersion, CurrentVersion: t.CurrentVersion, Subject: v.Subject, Body: v.Body,
			HTMLBody: v.HTMLBody, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt})
	}
	return out, next, nil
}

// DeleteTemplate removes a template and every version (ErrTemplateNotFound if unknown).
// Notifications already sent keep their rendered content.
func (s *Service) DeleteTemplate(ctx context.Context, id string) error {
	err := s.store.DeleteNotificationTemplate(ctx, id)
	if isNotFound(err) {
		return fmt.Errorf("%w: %q", ErrTemplateNotFound, id)
	}
	return err
}

// RenderTemplate previews template id (at version, 0: current) with data. A variable missing
// from data is a validation problem naming it.
func (s *Service) RenderTemplate(ctx context.Context, id string, version int, data map[string]any) (Rendered, int, error) {
	return s.renderTemplate(ctx, id, version, "", data)
}

// renderTemplate loads and renders a template; channel, when set, must be the template's.
func (s *Service) renderTemplate(ctx context.Context, id string, version int, channel string, data map[string]any) (Rendered, int, error) {
	t, v, err := s.store.GetNotificationTemplate(ctx, id, version)
	if isNotFound(err) {
		if version != 0 {
			return Rendered{}, 0, fmt.Errorf("%w: %q version %d", ErrTemplateNotFound, id, version)
		}
		return Rendered{}, 0, fmt.Errorf("%w: %q", ErrTemplateNotFound, id)
	}
	if err != nil {
		return Rendered{}, 0, err
	}
	if channel != "" && t.Channel != channel {
		var p validation.Problems
		p.Add("template_id", "%q is an %s template, not %s", id, t.Channel, channel)
		return Rendered{}, 0, p
	}
	out, err := s.render(ctx, Rendered{Subject: v.Subject, Body: v.Body, HTMLBody: v.HTMLBody}, data, id)
	return out, v.Version, err
}

// render renders each part of in with data; the HTML part auto-escapes. Failures are
// validation problems naming the part and the cause: on template_data (an undefined variable
// names it), or on the part itself when it went over a limit of the evaluation budget.
func (s *Service) render(ctx context.Context, in Rendered, data map[string]any, templateName string) (Rendered, error) {
	return renderWith(ctx, s.templates, in, data, templateName)
}

// renderWith is render with the templating engine eng (the digest activity renders with the
// worker's).
func renderWith(ctx context.Context, eng *templating.Engine, in Rendered, data map[string]any, templateName string) (Rendered, error) {
	var (
		out Rendered
		p   validation.Problems
	)
	where := func(part string) string {
		if templateName != "" {
			return fmt.Sprintf("template %s, %s", templateName, part)
		}
		return part
	}
	for _, part := range []struct {
		name string
		src  string
		html bool
		dst  *string
	}{{"subject", in.Subject, false, &out.Subject}, {"body", in.Body, false, &out.Body}, {"html_body", in.HTMLBody, true, &out.HTMLBody}} {
		if part.src == "" {
			continue
		}
		var (
			r   string
			err error
		)
		if part.html {
			r, err = eng.RenderHTML(ctx, part.src, data)
		} else {
			r, err = eng.Render(ctx, part.src, data)
		}
		var te *templating.Error
		switch {
		case errors.As(err, &te) && sandbox.IsBudgetError(err):
			p.Add(part.name, "%s: %s", where(part.name), te.Msg)
		case errors.As(err, &te):
			p.Add("template_data", "%s: %s", where(part.name), te.Msg)
		case err != nil:
			return Rendered{}, err
		}
		*part.dst = r
	}
	out.Subject = strings.TrimSpace(out.Subject)
	return out, p.Err()
}
