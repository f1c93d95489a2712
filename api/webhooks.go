package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/webhooks"
)

// webhookRoutes registers the webhook module: endpoints, delivery, the delivery log, inbound
// sources under the authenticated /api/v1 group, and the inbound receiver, which senders call
// without an API key (their signature authenticates them).
func (s *Server) webhookRoutes(root *echo.Echo, v1 *echo.Group) {
	g := v1.Group("/webhooks")
	g.POST("/endpoints", s.createWebhookEndpoint)
	g.GET("/endpoints", s.listWebhookEndpoints)
	g.GET("/endpoints/:id", s.getWebhookEndpoint)
	g.PATCH("/endpoints/:id", s.updateWebhookEndpoint)
	g.DELETE("/endpoints/:id", s.deleteWebhookEndpoint)
	g.GET("/endpoints/:id/secret", s.getWebhookSecret)
	g.POST("/endpoints/:id/secret/rotate", s.rotateWebhookSecret)
	g.POST("/endpoints/:id/recover", s.recoverWebhookEndpoint)
	g.POST("/endpoints/:id/transform/test", s.testWebhookTransform)
	g.POST("/endpoints/:id/test", s.testWebhookEndpoint)
	g.GET("/endpoints/:id/stats", s.webhookEndpointStats)
	g.POST("/deliver", s.deliverWebhook)
	g.GET("/messages/:id", s.getWebhookMessage)
	g.GET("/deliveries", s.listWebhookDeliveries)
	g.GET("/deliveries/:id", s.getWebhookDelivery)
	g.POST("/deliveries/:id/retry", s.retryWebhookDelivery)
	g.POST("/sources", s.createWebhookSource)
	g.GET("/sources", s.listWebhookSources)
	g.GET("/sources/:id", s.getWebhookSource)
	g.DELETE("/sources/:id", s.deleteWebhookSource)
	root.POST("/api/v1/webhooks/inbound/:source", s.receiveWebhook, s.rateLimit)
}

// webhookError maps the module's errors onto the API's; kind and id name a missing resource.
func webhookError(err error, kind, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NotFound(kind, id)
	case errors.Is(err, webhooks.ErrPayloadTooLarge):
		return TooLarge(webhooks.MaxPayloadBytes)
	case errors.Is(err, webhooks.ErrEndpointDisabled), errors.Is(err, webhooks.ErrDeliveryPending):
		return Conflict("%s", err.Error())
	case errors.Is(err, webhooks.ErrReplay):
		return &Error{Status: http.StatusConflict, Code: "replayed", Message: err.Error()}
	case errors.Is(err, webhooks.ErrBadSignature), errors.Is(err, webhooks.ErrMissingHeaders),
		errors.Is(err, webhooks.ErrStaleTimestamp):
		return &Error{Status: http.StatusUnauthorized, Code: "invalid_signature", Message: err.Error()}
	}
	return err
}

// createWebhookEndpoint: POST /api/v1/webhooks/endpoints → 201 with the endpoint.
func (s *Server) createWebhookEndpoint(c echo.Context) error {
	var in webhooks.EndpointInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	e, err := s.webhooks.CreateEndpoint(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, e)
}

// listWebhookEndpoints: GET /api/v1/webhooks/endpoints?enabled=&limit=&cursor=
func (s *Server) listWebhookEndpoints(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	f := store.WebhookEndpointFilter{Enabled: boolParam(c, "enabled", &problems)}
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.webhooks.ListEndpoints(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// getWebhookEndpoint: GET /api/v1/webhooks/endpoints/{id}
func (s *Server) getWebhookEndpoint(c echo.Context) error {
	e, err := s.webhooks.GetEndpoint(c.Request().Context(), c.Param("id"))
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusOK, e)
}

// updateWebhookEndpoint: PATCH /api/v1/webhooks/endpoints/{id} changes the fields given;
// "enabled": true re-enables a disabled endpoint.
func (s *Server) updateWebhookEndpoint(c echo.Context) error {
	var in webhooks.EndpointPatch
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	e, err := s.webhooks.UpdateEndpoint(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusOK, e)
}

// deleteWebhookEndpoint: DELETE /api/v1/webhooks/endpoints/{id} → 204.
func (s *Server) deleteWebhookEndpoint(c echo.Context) error {
	if err := s.webhooks.DeleteEndpoint(c.Request().Context(), c.Param("id")); err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.NoContent(http.StatusNoContent)
}

// getWebhookSecret: GET /api/v1/webhooks/endpoints/{id}/secret
func (s *Server) getWebhookSecret(c echo.Context) error {
	sec, err := s.webhooks.Secret(c.Request().Context(), c.Param("id"))
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusOK, sec)
}

type rotateRequest struct {
	Key         string `json:"key"`
	GracePeriod string `json:"grace_period"`
}

// rotateWebhookSecret: POST /api/v1/webhooks/endpoints/{id}/secret/rotate with an optional
// {"key", "grace_period"}; the old secret keeps signing beside the new one for the grace period.
func (s *Server) rotateWebhookSecret(c echo.Context) error {
	var req rotateRequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	in := webhooks.RotateInput{Key: req.Key}
	if req.GracePeriod != "" {
		d, err := time.ParseDuration(req.GracePeriod)
		if err != nil {
			return Unprocessable("grace_period", "must be a duration such as \"24h\", got %q", req.GracePeriod)
		}
		in.Grace = &d
	}
	sec, err := s.webhooks.RotateSecret(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusOK, sec)
}

// testWebhookTransform: POST /api/v1/webhooks/endpoints/{id}/transform/test {"event_type",
// "payload", "filter"?, "transform"?} → what the endpoint would receive for that event.
func (s *Server) testWebhookTransform(c echo.Context) error {
	var in webhooks.TransformTest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	out, err := s.webhooks.TestTransform(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusOK, out)
}

// testWebhookEndpoint: POST /api/v1/webhooks/endpoints/{id}/test {"event_type", "payload"?}
// sends a test message to this endpoint only → 202 with the message.
func (s *Server) testWebhookEndpoint(c echo.Context) error {
	var in webhooks.TestSend
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	m, err := s.webhooks.SendTest(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusAccepted, m)
}

// webhookEndpointStats: GET /api/v1/webhooks/endpoints/{id}/stats?window=1h
func (s *Server) webhookEndpointStats(c echo.Context) error {
	window := time.Hour
	if w := c.QueryParam("window"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			return Unprocessable("window", "must be a duration such as \"1h\", got %q", w)
		}
		window = d
	}
	st, err := s.webhooks.Stats(c.Request().Context(), c.Param("id"), window)
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusOK, st)
}

type recoverRequest struct {
	Since *time.Time `json:"since"`
	Until *time.Time `json:"until"`
}

// recoverWebhookEndpoint: POST /api/v1/webhooks/endpoints/{id}/recover {"since", "until"?}
// re-sends every delivery to the endpoint that failed, created in that window → 202.
func (s *Server) recoverWebhookEndpoint(c echo.Context) error {
	var req recoverRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems validation.Problems
	if req.Since == nil {
		problems.Add("since", "is required (RFC 3339 time)")
	}
	if req.Since != nil && req.Until != nil && !req.Until.After(*req.Since) {
		problems.Add("until", "must be after since")
	}
	if err := problems.Err(); err != nil {
		return err
	}
	var until time.Time
	if req.Until != nil {
		until = *req.Until
	}
	n, err := s.webhooks.Recover(c.Request().Context(), c.Param("id"), *req.Since, until)
	if err != nil {
		return webhookError(err, "endpoint", c.Param("id"))
	}
	return c.JSON(http.StatusAccepted, map[string]any{"endpoint_id": c.Param("id"), "recovered": n})
}

type deliverRequest struct {
	EventType      string          `json:"event_type"`
	Payload        json.RawMessage `json:"payload"`
	IdempotencyKey string          `json:"idempotency_key"`
	EndpointIDs    []string        `json:"endpoint_ids"`
}

// deliverWebhook: POST /api/v1/webhooks/deliver {"event_type", "payload", "idempotency_key"?,
// "endpoint_ids"?} → 202 with the message id and its deliveries. The Idempotency-Key header
// works as idempotency_key.
func (s *Server) deliverWebhook(c echo.Context) error {
	var req deliverRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = c.Request().Header.Get("Idempotency-Key")
	}
	m, err := s.webhooks.Deliver(c.Request().Context(), webhooks.DeliverRequest{
		EventType: req.EventType, Payload: req.Payload, IdempotencyKey: req.IdempotencyKey,
		EndpointIDs: req.EndpointIDs, Source: "api",
	})
	if err != nil {
		return webhookError(err, "message", "")
	}
	return c.JSON(http.StatusAccepted, m)
}

// getWebhookMessage: GET /api/v1/webhooks/messages/{id} with the state of each delivery.
func (s *Server) getWebhookMessage(c echo.Context) error {
	m, err := s.webhooks.GetMessage(c.Request().Context(), c.Param("id"))
	if err != nil {
		return webhookError(err, "message", c.Param("id"))
	}
	return c.JSON(http.StatusOK, m)
}

// listWebhookDeliveries: GET /api/v1/webhooks/deliveries?endpoint_id=&message_id=&event_type=
// &status=&since=&until=&limit=&cursor=
func (s *Server) listWebhookDeliveries(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	f := store.WebhookDeliveryFilter{
		EndpointID: c.QueryParam("endpoint_id"), MessageID: c.QueryParam("message_id"),
		EventType: c.QueryParam("event_type"), Status: c.QueryParam("status"),
		Since: timeParam(c, "since", &problems), Until: timeParam(c, "until", &problems),
	}
	oneOf(&problems, "status", f.Status, store.DeliveryPending, store.DeliverySucceeded, store.DeliveryFailed)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.webhooks.ListDeliveries(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// getWebhookDelivery: GET /api/v1/webhooks/deliveries/{id} with the payload and every attempt.
func (s *Server) getWebhookDelivery(c echo.Context) error {
	d, err := s.webhooks.GetDelivery(c.Request().Context(), c.Param("id"))
	if err != nil {
		return webhookError(err, "delivery", c.Param("id"))
	}
	return c.JSON(http.StatusOK, d)
}

// retryWebhookDelivery: POST /api/v1/webhooks/deliveries/{id}/retry sends a finished delivery
// again → 202.
func (s *Server) retryWebhookDelivery(c echo.Context) error {
	d, err := s.webhooks.RetryDelivery(c.Request().Context(), c.Param("id"))
	if err != nil {
		return webhookError(err, "delivery", c.Param("id"))
	}
	return c.JSON(http.StatusAccepted, d)
}

// createWebhookSource: POST /api/v1/webhooks/sources → 201 with the secret (shown once).
func (s *Server) createWebhookSource(c echo.Context) error {
	var in webhooks.SourceInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	src, err := s.webhooks.CreateSource(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, src)
}

// listWebhookSources: GET /api/v1/webhooks/sources
func (s *Server) listWebhookSources(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	items, next, err := s.webhooks.ListSources(c.Request().Context(), page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// getWebhookSource: GET /api/v1/webhooks/sources/{id} (id or name)
func (s *Server) getWebhookSource(c echo.Context) error {
	src, err := s.webhooks.GetSource(c.Request().Context(), c.Param("id"))
	if err != nil {
		return webhookError(err, "source", c.Param("id"))
	}
	return c.JSON(http.StatusOK, src)
}

// deleteWebhookSource: DELETE /api/v1/webhooks/sources/{id} (id or name) → 204.
func (s *Server) deleteWebhookSource(c echo.Context) error {
	if err := s.webhooks.DeleteSource(c.Request().Context(), c.Param("id")); err != nil {
		return webhookError(err, "source", c.Param("id"))
	}
	return c.NoContent(http.StatusNoContent)
}

// receiveWebhook: POST /api/v1/webhooks/inbound/{source}, called by the source itself: the
// signature is verified over the raw body, then the body is recorded as an event → 202. A bad
// signature or a stale timestamp is 401, a replayed webhook id 409; nothing is recorded then.
func (s *Server) receiveWebhook(c echo.Context) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return TooLarge(maxBytes.Limit)
		}
		return BadRequest("cannot read the body: %v", err)
	}
	in, err := s.webhooks.Receive(c.Request().Context(), c.Param("source"), c.Request().Header, body)
	if err != nil {
		return webhookError(err, "source", c.Param("source"))
	}
	return c.JSON(http.StatusAccepted, in)
}
