package api

import (
	"errors"
	"html/template"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Subscriber routes (/api/v1/subscribers, their preferences), the tenant's notification
// categories, the suppression list, provider bounce reports, the tenant's notification
// settings (default quiet hours) and one-click unsubscribe links.

func (s *Server) subscriberRoutes(e *echo.Echo, v1 *echo.Group) {
	v1.POST("/subscribers", s.createSubscriber)
	v1.GET("/subscribers", s.listSubscribers)
	v1.GET("/subscribers/:id", s.getSubscriber)
	v1.PATCH("/subscribers/:id", s.updateSubscriber)
	v1.DELETE("/subscribers/:id", s.deleteSubscriber)
	v1.PUT("/subscribers/:id/preferences", s.setPreferences)
	v1.GET("/notification-categories", s.listCategories)
	v1.POST("/notification-categories", s.createCategory)
	v1.PUT("/notification-categories/:id", s.updateCategory)
	v1.DELETE("/notification-categories/:id", s.deleteCategory)
	v1.GET("/suppressions", s.listSuppressions)
	v1.DELETE("/suppressions/:channel/:address", s.deleteSuppression)
	v1.POST("/notifications/providers/bounces", s.postBounces)
	v1.GET("/notifications/settings", s.getNotificationSettings)
	v1.PUT("/notifications/settings", s.putNotificationSettings)
	// An unsubscribe link carries no API key: its signature authenticates it.
	e.GET(notify.UnsubscribePathPrefix+":token", s.unsubscribePage, s.rateLimit)
	e.POST(notify.UnsubscribePathPrefix+":token", s.unsubscribe, s.rateLimit)
}

func subscriberError(err error, id string) error {
	switch {
	case errors.Is(err, notify.ErrSubscriberNotFound):
		return NotFound("subscriber", id)
	case errors.Is(err, store.ErrConflict):
		return Conflict("a subscriber with that external_id exists already")
	}
	return err
}

// createSubscriber: POST /api/v1/subscribers → 201.
func (s *Server) createSubscriber(c echo.Context) error {
	var in notify.SubscriberInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sub, err := s.notify.CreateSubscriber(c.Request().Context(), in)
	if err != nil {
		return subscriberError(err, "")
	}
	c.Response().Header().Set("Location", "/api/v1/subscribers/"+sub.ID)
	return c.JSON(http.StatusCreated, sub)
}

func (s *Server) listSubscribers(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	items, next, err := s.notify.ListSubscribers(c.Request().Context(), page)
	if err != nil {
		return err
	}
	for i := range items {
		items[i].Preferences = nil
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) getSubscriber(c echo.Context) error {
	sub, err := s.notify.GetSubscriber(c.Request().Context(), c.Param("id"))
	if err != nil {
		return subscriberError(err, c.Param("id"))
	}
	return c.JSON(http.StatusOK, sub)
}

func (s *Server) updateSubscriber(c echo.Context) error {
	var in notify.SubscriberInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sub, err := s.notify.UpdateSubscriber(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return subscriberError(err, c.Param("id"))
	}
	return c.JSON(http.StatusOK, sub)
}

func (s *Server) deleteSubscriber(c echo.Context) error {
	if err := s.notify.DeleteSubscriber(c.Request().Context(), c.Param("id")); err != nil {
		return subscriberError(err, c.Param("id"))
	}
	return c.NoContent(http.StatusNoContent)
}

type preferencesBody struct {
	Preferences []notify.PreferenceInput `json:"preferences"`
}

// setPreferences: PUT /api/v1/subscribers/{id}/preferences records each preference listed.
func (s *Server) setPreferences(c echo.Context) error {
	var in preferencesBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sub, err := s.notify.SetPreferences(c.Request().Context(), c.Param("id"), in.Preferences)
	if err != nil {
		return subscriberError(err, c.Param("id"))
	}
	return c.JSON(http.StatusOK, sub)
}

func (s *Server) listCategories(c echo.Context) error {
	items, err := s.notify.ListCategories(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}

// createCategory: POST /api/v1/notification-categories → 201.
func (s *Server) createCategory(c echo.Context) error {
	var in notify.CategoryInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	cat, err := s.notify.CreateCategory(c.Request().Context(), in)
	if errors.Is(err, store.ErrConflict) {
		return Conflict("category %q exists already; PUT /api/v1/notification-categories/%s replaces it", in.ID, in.ID)
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/api/v1/notification-categories/"+cat.ID)
	return c.JSON(http.StatusCreated, cat)
}

// updateCategory: PUT /api/v1/notification-categories/{id} replaces its settings.
func (s *Server) updateCategory(c echo.Context) error {
	var in notify.CategoryInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	cat, err := s.notify.UpdateCategory(c.Request().Context(), c.Param("id"), in)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("category", c.Param("id"))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cat)
}

func (s *Server) deleteCategory(c echo.Context) error {
	err := s.notify.DeleteCategory(c.Request().Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("category", c.Param("id"))
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listSuppressions: GET /api/v1/suppressions?channel=&address=
func (s *Server) listSuppressions(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	f := store.SuppressionFilter{Channel: c.QueryParam("channel"), Address: c.QueryParam("address")}
	oneOf(&problems, "channel", f.Channel, store.ChannelEmail, store.ChannelSMS)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.notify.ListSuppressions(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// deleteSuppression: DELETE /api/v1/suppressions/{channel}/{address}.
func (s *Server) deleteSuppression(c echo.Context) error {
	var problems validation.Problems
	oneOf(&problems, "channel", c.Param("channel"), store.ChannelEmail, store.ChannelSMS)
	if err := problems.Err(); err != nil {
		return err
	}
	err := s.notify.DeleteSuppression(c.Request().Context(), c.Param("channel"), c.Param("address"))
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("suppression", c.Param("address"))
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// postBounces: POST /api/v1/notifications/providers/bounces takes a bounce or complaint report
// (SNS/SES JSON or the generic shape) and suppresses its addresses. SNS posts text/plain.
func (s *Server) postBounces(c echo.Context) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 || !strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
		return BadRequest("expected a JSON object")
	}
	rep, err := s.notify.HandleBounceReport(c.Request().Context(), body)
	if err != nil {
		var problems validation.Problems
		if errors.As(err, &problems) && len(problems) == 1 && problems[0].Message == "expected a JSON object" {
			return BadRequest("invalid JSON")
		}
		return err
	}
	return c.JSON(http.StatusOK, rep)
}

var unsubscribeTmpl = template.Must(template.New("unsubscribe").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{{.Title}}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>{{.Title}}</h1><p>{{.Text}}</p>
{{if .Form}}<form method="post"><button type="submit">Unsubscribe</button></form>{{end}}
</body></html>
`))

type unsubscribeView struct {
	Title, Text string
	Form        bool
}

func (s *Server) unsubscribeHTML(c echo.Context, status int, v unsubscribeView) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return unsubscribeTmpl.Execute(c.Response(), v)
}

func describeUnsubscribe(u notify.Unsubscribe) string {
	what := "these emails"
	if u.Category != "" {
		what = "emails in the category “" + u.Category + "”"
	}
	return u.Address + " will no longer receive " + what + "."
}

// unsubscribePage: GET of an unsubscribe link shows what it would do and a button that POSTs;
// a GET never unsubscribes (mail scanners follow links).
func (s *Server) unsubscribePage(c echo.Context) error {
	u, err := s.notify.CheckUnsubscribe(c.Param("token"))
	if err != nil {
		return s.unsubscribeHTML(c, http.StatusNotFound, unsubscribeView{Title: "Link not valid",
			Text: "This unsubscribe link is invalid or has expired."})
	}
	return s.unsubscribeHTML(c, http.StatusOK, unsubscribeView{Title: "Unsubscribe?", Text: describeUnsubscribe(u), Form: true})
}

// unsubscribe: POST of an unsubscribe link (RFC 8058 one-click, body List-Unsubscribe=One-Click,
// or the confirmation page's form) opts the recipient out.
func (s *Server) unsubscribe(c echo.Context) error {
	res, err := s.notify.ApplyUnsubscribe(c.Request().Context(), c.Param("token"))
	if errors.Is(err, notify.ErrInvalidUnsubscribe) {
		if wantsJSON(c) {
			return NotFound("unsubscribe link", "")
		}
		return s.unsubscribeHTML(c, http.StatusNotFound, unsubscribeView{Title: "Link not valid",
			Text: "This unsubscribe link is invalid or has expired."})
	}
	if err != nil {
		return err
	}
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, res)
	}
	return s.unsubscribeHTML(c, http.StatusOK, unsubscribeView{Title: "Unsubscribed",
		Text: describeUnsubscribe(notify.Unsubscribe{Address: res.Address, Category: res.Category})})
}

func wantsJSON(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "application/json")
}

// getNotificationSettings: GET /api/v1/notifications/settings → the tenant's defaults.
func (s *Server) getNotificationSettings(c echo.Context) error {
	ns, err := s.notify.GetSettings(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ns)
}

// putNotificationSettings: PUT /api/v1/notifications/settings replaces the tenant's defaults.
func (s *Server) putNotificationSettings(c echo.Context) error {
	var in notify.SettingsInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ns, err := s.notify.PutSettings(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ns)
}
