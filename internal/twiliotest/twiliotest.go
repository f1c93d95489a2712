// Package twiliotest is a local fake of Twilio's Messages API for tests (twilio-go's base URL
// is pointed at it) and signs status callbacks the way Twilio does.
package twiliotest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fake credentials: twilio-go refuses anything but letters and digits.
const (
	AccountSID = "ACtest123"
	AuthToken  = "authtoken123"
	From       = "+15005550006"
)

// Request is one message Twilio was asked to send.
type Request struct {
	SID            string
	To, From, Body string
	ServiceSID     string
	StatusCallback string
	At             time.Time
}

// Failure is an error Twilio answers with.
type Failure struct {
	Status  int
	Code    int
	Message string
}

// Server is the fake.
type Server struct {
	URL string

	mu       sync.Mutex
	requests []Request
	// failures scripted per recipient: each send to the number takes the next one; nil accepts.
	failures map[string][]*Failure
	attempts map[string]int
	srv      *httptest.Server
}

// Start runs the fake until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{failures: map[string][]*Failure{}, attempts: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Fail scripts the answers to the next sends to a number (nil accepts that one).
func (s *Server) Fail(to string, answers ...*Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[to] = answers
}

// Requests returns the accepted messages in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Attempts is how many sends to a number were tried, accepted or not.
func (s *Server) Attempts(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[to]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	want := "/2010-04-01/Accounts/" + AccountSID + "/Messages.json"
	user, pass, ok := r.BasicAuth()
	w.Header().Set("Content-Type", "application/json")
	if !ok || user != AccountSID || pass != AuthToken {
		writeError(w, &Failure{Status: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != want {
		writeError(w, &Failure{Status: 404, Code: 20404, Message: "The requested resource was not found"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, &Failure{Status: 400, Code: 21602, Message: err.Error()})
		return
	}
	to := r.PostForm.Get("To")
	s.mu.Lock()
	s.attempts[to]++
	var f *Failure
	if q := s.failures[to]; len(q) > 0 {
		f, s.failures[to] = q[0], q[1:]
	}
	if f != nil {
		s.mu.Unlock()
		writeError(w, f)
		return
	}
	req := Request{
		SID: fmt.Sprintf("SM%032d", len(s.requests)+1), To: to, From: r.PostForm.Get("From"),
		Body: r.PostForm.Get("Body"), ServiceSID: r.PostForm.Get("MessagingServiceSid"),
		StatusCallback: r.PostForm.Get("StatusCallback"), At: time.Now(),
	}
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid": req.SID, "account_sid": AccountSID, "to": req.To, "from": req.From, "body": req.Body,
		"status": "queued", "num_segments": "1", "direction": "outbound-api",
		"messaging_service_sid": nilIfEmpty(req.ServiceSID),
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeError(w http.ResponseWriter, f *Failure) {
	w.WriteHeader(f.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"code": f.Code, "message": f.Message, "status": f.Status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", f.Code),
	})
}

// Sign computes X-Twilio-Signature for a POST of params to fullURL: base64 of HMAC-SHA1, keyed
// with the auth token, over the URL followed by each parameter name and value in name order.
func Sign(authToken, fullURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params.Get(k))
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// StatusCallback posts a signed status callback for req to its StatusCallback URL, the way
// Twilio does, and returns the HTTP status. A non-empty badSignature replaces the signature.
func StatusCallback(req Request, status string, errorCode int, badSignature string) (int, error) {
	form := url.Values{
		"MessageSid": {req.SID}, "SmsSid": {req.SID}, "AccountSid": {AccountSID},
		"MessageStatus": {status}, "SmsStatus": {status}, "To": {req.To}, "From": {req.From},
		"ApiVersion": {"2010-04-01"},
	}
	if errorCode != 0 {
		form.Set("ErrorCode", fmt.Sprint(errorCode))
	}
	sig := Sign(AuthToken, req.StatusCallback, form)
	if badSignature != "" {
		sig = badSignature
	}
	hr, err := http.NewRequest(http.MethodPost, req.StatusCallback, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("X-Twilio-Signature", sig)
	hr.Header.Set("User-Agent", "TwilioProxy/1.1")
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}
