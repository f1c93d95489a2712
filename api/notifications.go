package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Notification routes: sends (POST /notifications/email, /sms) start the SendNotification
// workflow through the notify service; reads come from the notifications tables; providers post
// delivery reports to /notifications/providers/{provider}/status.

const headerIdempotencyKey = "Idempotency-Key"

type emailBody struct {
	notify.EmailRequest
	SendAt *string `json:"send_at"`
}

type smsBody struct {
	notify.SMSRequest
	SendAt *string `json:"send_at"`
}

// sendEmail: POST /api/v1/notifications/email → 202 with the queued notification.
func (s *Server) sendEmail(c echo.Context) error {
	var body emailBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req := body.EmailRequest
	var problems validation.Problems
	req.SendAt = parseTime(&problems, "send_at", body.SendAt)
	req.IdempotencyKey = idempotencyKey(c, &problems)
	if err := problems.Err(); err != nil {
		return err
	}
	n, err := s.notify.SendEmail(c.Request().Context(), req)
	return s.notificationAccepted(c, n, err)
}

// sendSMS: POST /api/v1/notifications/sms → 202 with the queued notification.
func (s *Server) sendSMS(c echo.Context) error {
	var body smsBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req := body.SMSRequest
	var problems validation.Problems
	req.SendAt = parseTime(&problems, "send_at", body.SendAt)
	req.IdempotencyKey = idempotencyKey(c, &problems)
	if err := problems.Err(); err != nil {
		return err
	}
	n, err := s.notify.SendSMS(c.Request().Context(), req)
	return s.notificationAccepted(c, n, err)
}

func (s *Server) notificationAccepted(c echo.Context, n notify.Notification, err error) error {
	if err != nil {
		return notifyError(err)
	}
	c.Response().Header().Set("Location", "/api/v1/notifications/"+n.ID)
	if n.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	if n.Deliveries == nil {
		n.Deliveries = []store.NotificationDelivery{}
	}
	return c.JSON(http.StatusAccepted, n)
}

// idempotencyKey reads the Idempotency-Key header, scoped to the caller so that two clients'
// keys never meet.
func idempotencyKey(c echo.Context, problems *validation.Problems) string {
	key := c.Request().Header.Get(headerIdempotencyKey)
	if key == "" {
		return ""
	}
	if len(key) > 255 || !validRequestID(key) {
		problems.Add("Idempotency-Key", "must be 1–255 printable ASCII characters without spaces")
		return ""
	}
	p := principal(c)
	return p.Kind + ":" + p.Subject + ":" + key
}

// parseTime reads an optional RFC 3339 time.
func parseTime(problems *validation.Problems, field string, raw *string) *time.Time {
	if raw == nil || *raw == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, *raw)
	if err != nil {
		problems.Add(field, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", *raw)
		return nil
	}
	return &t
}

// getNotification: GET /api/v1/notifications/{id} with every delivery and attempt.
func (s *Server) getNotification(c echo.Context) error {
	id := c.Param("id")
	n, err := s.notify.Get(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("notification", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, n)
}

// listNotifications: GET /api/v1/notifications?channel=&status=&recipient=&since=&until=
func (s *Server) listNotifications(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	f := notify.Filter{Channel: c.QueryParam("channel"), Status: c.QueryParam("status"), Recipient: c.QueryParam("recipient")}
	oneOf(&problems, "channel", f.Channel, store.ChannelEmail, store.ChannelSMS)
	oneOf(&problems, "status", f.Status, store.StatusQueued, store.StatusSending, store.StatusSent,
		store.StatusDelivered, store.StatusFailed, store.StatusPartiallyFailed, store.StatusSkipped, store.StatusDigested)
	since, until := c.QueryParam("since"), c.QueryParam("until")
	f.Since = parseTime(&problems, "since", &since)
	f.Until = parseTime(&problems, "until", &until)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.notify.List(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	for i := range items {
		if items[i].Deliveries == nil {
			items[i].Deliveries = []store.NotificationDelivery{}
		}
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// twilioStatus: POST /api/v1/notifications/providers/twilio/status, Twilio's status callback.
// It carries no API key: X-Twilio-Signature, checked against TWILIO_AUTH_TOKEN over the URL
// Twilio was given (PUBLIC_URL + path + query) and the form fields, authenticates it.
func (s *Server) twilioStatus(c echo.Context) error {
	// Only the body's fields are signed (the query is part of the URL): PostForm, not Form.
	if err := c.Request().ParseForm(); err != nil {
		return BadRequest("expected a form-encoded body: %s", err.Error())
	}
	form := c.Request().PostForm
	params := make(map[string]string, len(form))
	for k, v := range form {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	d, err := s.notify.HandleProviderCallback(c.Request().Context(), notify.ProviderCallback{
		Provider: "twilio", URL: s.cfg.PublicURL + c.Request().URL.RequestURI(), Params: params,
		Signature: c.Request().Header.Get("X-Twilio-Signature"),
	})
	if errors.Is(err, store.ErrNotFound) {
		if id := c.QueryParam("delivery_id"); id != "" {
			return NotFound("delivery", id)
		}
		return NotFound("message", params["MessageSid"])
	}
	if err != nil {
		return notifyError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"delivery_id": d.ID, "status": d.Status})
}

// Templates.

func (s *Server) listTemplates(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	channel := c.QueryParam("channel")
	oneOf(&problems, "channel", channel, store.ChannelEmail, store.ChannelSMS)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.notify.ListTemplates(c.Request().Context(), channel, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) createTemplate(c echo.Context) error {
	var in notify.TemplateInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t, err := s.notify.CreateTemplate(c.Request().Context(), in)
	if errors.Is(err, store.ErrConflict) {
		return Conflict("template %q exists already; PUT /api/v1/notifications/templates/%s adds a version", in.ID, in.ID)
	}
	if err != nil {
		return notifyError(err)
	}
	c.Response().Header().Set("Location", "/api/v1/notifications/templates/"+t.ID)
	return c.JSON(http.StatusCreated, t)
}

func (s *Server) getTemplate(c echo.Context) error {
	var problems validation.Problems
	version := intParam(c, "version", &problems)
	if err := problems.Err(); err != nil {
		return err
	}
	t, err := s.notify.GetTemplate(c.Request().Context(), c.Param("id"), version)
	if err != nil {
		return notifyError(err)
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) updateTemplate(c echo.Context) error {
	var in notify.TemplateInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t, err := s.notify.UpdateTemplate(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return notifyError(err)
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) deleteTemplate(c echo.Context) error {
	if err := s.notify.DeleteTemplate(c.Request().Context(), c.Param("id")); err != nil {
		return notifyError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

type renderBody struct {
	Data    map[string]any `json:"data"`
	Version int            `json:"version"`
}

// renderTemplate: POST /api/v1/notifications/templates/{id}/render previews a template.
func (s *Server) renderTemplate(c echo.Context) error {
	var in renderBody
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	out, version, err := s.notify.RenderTemplate(c.Request().Context(), c.Param("id"), in.Version, in.Data)
	if err != nil {
		return notifyError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"template_id": c.Param("id"), "version": version, "subject": out.Subject, "body": out.Body, "html_body": out.HTMLBody,
	})
}

// intParam reads an optional positive integer query parameter.
func intParam(c echo.Context, name string, problems *validation.Problems) int {
	raw := c.QueryParam(name)
	if raw == "" {
		return 0
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		problems.Add(name, "must be a positive integer, got %q", raw)
		return 0
	}
	return n
}

// notifyError maps the notify service's errors onto API errors.
func notifyError(err error) error {
	switch {
	case errors.Is(err, notify.ErrTemplateNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, notify.ErrChannelNotConfigured):
		return &Error{Status: http.StatusServiceUnavailable, Code: "channel_not_configured", Message: unwrapMessage(err)}
	case errors.Is(err, notify.ErrIdempotencyMismatch):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused",
			Message: "this Idempotency-Key was used with a different request; use a new key for a new notification"}
	case errors.Is(err, notify.ErrInvalidSignature):
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "invalid X-Twilio-Signature"}
	}
	return err
}

// unwrapMessage is the innermost message of err (the channel's own explanation).
func unwrapMessage(err error) string {
	for {
		var next error
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			errs := u.Unwrap()
			if len(errs) > 0 {
				next = errs[len(errs)-1]
			}
		} else {
			next = errors.Unwrap(err)
		}
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
