package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

// checkWelcomeEmail renders the seeded welcome_email (version 2, migration 00006) the way the
// notification module does: the seed's request data gives exactly what version 1 gave, the
// data of a user.created event (what the seed's "Welcome Email Automation" rule passes) renders
// too, and data with neither still names the missing user_name.
func checkWelcomeEmail(t *testing.T, s *store.Store, v2 store.NotificationTemplateVersion) {
	t.Helper()
	_, v1, err := s.GetNotificationTemplate(context.Background(), "welcome_email", 1)
	if err != nil || v1.Version != 1 {
		t.Fatalf("welcome_email version 1 is gone: %+v %v", v1, err)
	}
	eng := templating.New(templating.Options{})
	render := func(v store.NotificationTemplateVersion, data map[string]any) (string, error) {
		subject, err := eng.Render(context.Background(), v.Subject, data)
		if err != nil {
			return "", err
		}
		body, err := eng.Render(context.Background(), v.Body, data)
		if err != nil {
			return "", err
		}
		html, err := eng.RenderHTML(context.Background(), v.HTMLBody, data)
		return subject + "\n--\n" + body + "--\n" + html, err
	}
	seed := map[string]any{"user_name": "John <Doe>", "app_name": "PyAirtable"}
	old, err1 := render(v1, seed)
	cur, err2 := render(v2, seed)
	if err1 != nil || err2 != nil || old != cur {
		t.Errorf("the seed's request renders differently:\nv1 %q %v\nv2 %q %v", old, err1, cur, err2)
	}
	for _, tc := range []struct {
		data map[string]any
		want []string
	}{
		{map[string]any{"user": map[string]any{"name": "Ada <L>", "email": "ada@example.com", "email_verified": true}},
			[]string{"Welcome, Ada <L>!", "Hi Ada <L>,\n\nWelcome! Your account is ready.\n\nThe team\n", "<p>Hi Ada &lt;L&gt;,</p>"}},
		{map[string]any{"user": map[string]any{"email": "john@example.com"}, "app_name": "Acme"},
			[]string{"Welcome to Acme, john@example.com!", "<strong>Acme</strong>", "The Acme team"}},
	} {
		out, err := render(v2, tc.data)
		for _, w := range tc.want {
			if err != nil || !strings.Contains(out, w) {
				t.Errorf("render %v: %q %v, want %q", tc.data, out, err, w)
			}
		}
	}
	if _, err := render(v2, map[string]any{"app_name": "X"}); err == nil || !strings.Contains(err.Error(), `"user_name"`) {
		t.Errorf("without a name: %v, want an error naming user_name", err)
	}
}
