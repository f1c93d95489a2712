package config

import (
	"strings"
	"testing"
	"time"
)

func TestNotificationSettings(t *testing.T) {
	c, err := LoadFrom(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.EmailConfigured() || c.SMSConfigured() || c.NotificationRecipientLimit != 10 ||
		c.NotificationRecipientWindow != time.Minute || c.SMTPRatePerSecond != 10 || c.NotificationRetryMaxAttempts != 10 {
		t.Errorf("defaults: %+v", c)
	}
	c, err = LoadFrom(map[string]string{"SMTP_HOST": "mail", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
		"TWILIO_MESSAGING_SERVICE_SID": "MG1"})
	if err != nil || !c.EmailConfigured() || !c.SMSConfigured() {
		t.Fatalf("configured channels: %v %+v", err, c)
	}
	for name, env := range map[string]map[string]string{
		"TWILIO_ACCOUNT_SID":                  {"TWILIO_AUTH_TOKEN": "t"},
		"TWILIO_FROM_NUMBER":                  {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"},
		"TWILIO_API_URL":                      {"TWILIO_API_URL": "api.twilio.com"},
		"SMTP_FROM":                           {"SMTP_HOST": "mail", "SMTP_FROM": "not an address"},
		"SMTP_RATE_PER_SECOND":                {"SMTP_RATE_PER_SECOND": "0"},
		"NOTIFICATION_RECIPIENT_WINDOW":       {"NOTIFICATION_RECIPIENT_WINDOW": "0s"},
		"NOTIFICATION_RECIPIENT_LIMIT":        {"NOTIFICATION_RECIPIENT_LIMIT": "-1"},
		"NOTIFICATION_RETRY_INITIAL_INTERVAL": {"NOTIFICATION_RETRY_INITIAL_INTERVAL": "1h", "NOTIFICATION_RETRY_MAX_INTERVAL": "1m"},
		"NOTIFICATION_RETRY_MAX_ATTEMPTS":     {"NOTIFICATION_RETRY_MAX_ATTEMPTS": "0"},
	} {
		if _, err := LoadFrom(env); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v should name %s", env, err, name)
		}
	}
}
