package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Every HTTP call the e2e suite makes to a stack goes through contractTransport, which checks
// the request and the response against the stack's own /openapi.json and fails the test on a
// mismatch: the spec is the contract, checked on every run.
//
// A test that sends a deliberately invalid request (hostile bodies, validation errors) marks it
// with the skipRequestValidation header: the request is then not checked (the header is removed
// before it is sent), but the response still is.
const skipRequestValidation = "X-E2e-Invalid-Request"

// Specs are loaded once per stack address (a restarted stack serves the same document).
var (
	contractMu    sync.Mutex
	contractSpecs = map[string]routers.Router{}
)

// The pages the spec documents as text (the API reference and its assets) are checked as
// strings; kin-openapi knows only text/plain among them.
func init() {
	for _, ct := range []string{"text/html", "text/css", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

// contractClient is an http.Client whose every exchange is checked against the served spec.
// inner is the transport to send with (nil: http.DefaultTransport).
func contractClient(t testing.TB, inner http.RoundTripper) *http.Client {
	return &http.Client{Transport: contractTransport{t: t, inner: inner}}
}

// contractGet is http.Get through contractClient.
func contractGet(t testing.TB, url string) (*http.Response, error) {
	return contractClient(t, nil).Get(url)
}

type contractTransport struct {
	t     testing.TB
	inner http.RoundTripper
}

func (c contractTransport) next() http.RoundTripper {
	if c.inner == nil {
		return http.DefaultTransport
	}
	return c.inner
}

// RoundTrip sends req and validates both sides of the exchange.
func (c contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	checkRequest := req.Header.Get(skipRequestValidation) == ""
	if !checkRequest {
		req = req.Clone(req.Context())
		req.Header.Del(skipRequestValidation)
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("contract: read request body: %w", err)
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	res, err := c.next().RoundTrip(req)
	if err != nil {
		return res, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if err != nil {
		return res, nil // the caller sees the short body; nothing to validate
	}
	router, err := c.spec(req.URL)
	var unreachable unreachableError
	if errors.As(err, &unreachable) {
		c.t.Logf("contract: no spec for %s %s: %v (not validated)", req.Method, req.URL.Path, err)
		return res, nil
	}
	if err != nil {
		c.t.Errorf("contract: %s %s: %v", req.Method, req.URL.Path, err)
		return res, nil
	}
	// Validate against a copy of the request as the server received it.
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := router.FindRoute(vreq)
	if err != nil {
		// Paths and methods the spec does not document (a 404 or 405 asked for on purpose, the
		// /docs assets) have no contract to check.
		return res, nil
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	if checkRequest && !rejectedAsInvalid(res.StatusCode) {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.t.Errorf("contract: request %s %s does not match the spec: %v\nbody: %s",
				req.Method, req.URL.RequestURI(), err, clip(reqBody))
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode,
		Header: res.Header, Options: opts}
	out.SetBodyBytes(resBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("contract: response %d to %s %s does not match the spec: %v\nbody: %s",
			res.StatusCode, req.Method, req.URL.RequestURI(), err, clip(resBody))
	}
	return res, nil
}

// spec returns the router of the spec served at u's host, loading it on first use.
func (c contractTransport) spec(u *url.URL) (routers.Router, error) {
	base := u.Scheme + "://" + u.Host
	contractMu.Lock()
	defer contractMu.Unlock()
	if r, ok := contractSpecs[base]; ok {
		return r, nil
	}
	res, err := c.next().RoundTrip(mustRequest(base + "/openapi.json"))
	if err != nil {
		return nil, unreachableError{err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, unreachableError{err}
	}
	if res.StatusCode != http.StatusOK {
		// A stack draining or not ready yet; the next call loads it.
		return nil, unreachableError{fmt.Errorf("GET /openapi.json: %d", res.StatusCode)}
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("load /openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("/openapi.json is invalid: %w", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route /openapi.json: %w", err)
	}
	contractSpecs[base] = r
	return r, nil
}

// unreachableError is a spec that could not be fetched (the stack stopping or starting): the
// exchange is not validated, and the next one tries again.
type unreachableError struct{ err error }

func (e unreachableError) Error() string { return e.err.Error() }

// rejectedAsInvalid reports a status with which the server refuses a request before or for
// judging it (no credential, a missing scope, bad body, unsupported media type, too large,
// unknown id): such a request may break the spec too, so only the response is checked.
func rejectedAsInvalid(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden,
		http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

func mustRequest(u string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		panic(errors.Join(errors.New("contract: request"), err))
	}
	return req
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}
