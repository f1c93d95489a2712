package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/catalog"
	"github.com/pyairtable/automation-domain/store"
)

// The event catalog: POST/GET/PATCH/DELETE /api/v1/event-types → catalog.Service; its settings
// at /api/v1/event-catalog/settings; the catalog as an AsyncAPI 3 document at
// /api/v1/asyncapi.json.
func (s *Server) catalogRoutes(v1 *echo.Group) {
	v1.POST("/event-types", s.createEventType)
	v1.GET("/event-types", s.listEventTypes)
	v1.GET("/event-types/:name", s.getEventType)
	v1.PATCH("/event-types/:name", s.updateEventType)
	v1.DELETE("/event-types/:name", s.deleteEventType)
	v1.GET("/event-catalog/settings", s.getCatalogSettings)
	v1.PATCH("/event-catalog/settings", s.updateCatalogSettings)
	v1.GET("/asyncapi.json", s.asyncAPI)
}

func catalogError(err error, name string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NotFound("event type", name)
	case errors.Is(err, store.ErrConflict):
		return Conflict("event type %q exists already", name)
	}
	return err
}

// createEventType: POST /api/v1/event-types → 201 with the type.
func (s *Server) createEventType(c echo.Context) error {
	var in catalog.Input
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t, err := s.catalog.Create(c.Request().Context(), in)
	if err != nil {
		return catalogError(err, in.Name)
	}
	return c.JSON(http.StatusCreated, t)
}

// listEventTypes: GET /api/v1/event-types?limit=&cursor=
func (s *Server) listEventTypes(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	items, next, err := s.catalog.List(c.Request().Context(), page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// getEventType: GET /api/v1/event-types/{name}
func (s *Server) getEventType(c echo.Context) error {
	t, err := s.catalog.Get(c.Request().Context(), c.Param("name"))
	if err != nil {
		return catalogError(err, c.Param("name"))
	}
	return c.JSON(http.StatusOK, t)
}

// updateEventType: PATCH /api/v1/event-types/{name}; a new schema or example adds a version.
func (s *Server) updateEventType(c echo.Context) error {
	var in catalog.Patch
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t, err := s.catalog.Update(c.Request().Context(), c.Param("name"), in)
	if err != nil {
		return catalogError(err, c.Param("name"))
	}
	return c.JSON(http.StatusOK, t)
}

// deleteEventType: DELETE /api/v1/event-types/{name} → 204.
func (s *Server) deleteEventType(c echo.Context) error {
	if err := s.catalog.Delete(c.Request().Context(), c.Param("name")); err != nil {
		return catalogError(err, c.Param("name"))
	}
	return c.NoContent(http.StatusNoContent)
}

// getCatalogSettings: GET /api/v1/event-catalog/settings
func (s *Server) getCatalogSettings(c echo.Context) error {
	set, err := s.catalog.GetSettings(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, set)
}

// updateCatalogSettings: PATCH /api/v1/event-catalog/settings {"reject_unknown_types"}
func (s *Server) updateCatalogSettings(c echo.Context) error {
	var in catalog.SettingsPatch
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	set, err := s.catalog.UpdateSettings(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, set)
}

// asyncAPI: GET /api/v1/asyncapi.json, the tenant's catalog as an AsyncAPI 3 document.
func (s *Server) asyncAPI(c echo.Context) error {
	doc, err := s.catalog.Document(c.Request().Context(), s.opts.Version)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, doc)
}
