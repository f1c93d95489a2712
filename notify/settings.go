package notify

import (
	"context"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Settings are a tenant's notification defaults: its default quiet hours, which hold
// non-critical notifications to its subscribers who have no quiet hours of their own.
type Settings = store.NotificationSettings

// SettingsInput replaces a tenant's settings (PUT /api/v1/notifications/settings): quiet hours
// "22:00"–"07:00" (both "" or absent for none) in TimeZone, used for subscribers without a
// time zone of their own (UTC when empty).
type SettingsInput struct {
	QuietHoursStart string `json:"quiet_hours_start"`
	QuietHoursEnd   string `json:"quiet_hours_end"`
	TimeZone        string `json:"time_zone"`
}

// GetSettings returns the tenant's notification settings (none set: empty quiet hours).
func (s *Service) GetSettings(ctx context.Context) (Settings, error) {
	return s.store.GetNotificationSettings(ctx)
}

// PutSettings validates and replaces the tenant's notification settings. Errors:
// validation.Problems. They apply to notifications asked for afterwards.
func (s *Service) PutSettings(ctx context.Context, in SettingsInput) (Settings, error) {
	var p validation.Problems
	ns := Settings{
		QuietHoursStart: strings.TrimSpace(in.QuietHoursStart),
		QuietHoursEnd:   strings.TrimSpace(in.QuietHoursEnd),
		TimeZone:        strings.TrimSpace(in.TimeZone),
	}
	checkQuietHours(&p, ns.QuietHoursStart, ns.QuietHoursEnd)
	checkTimeZone(&p, "time_zone", ns.TimeZone)
	if err := p.Err(); err != nil {
		return ns, err
	}
	ns.UpdatedAt = s.now().UTC()
	if err := s.store.PutNotificationSettings(ctx, &ns); err != nil {
		return ns, err
	}
	return s.store.GetNotificationSettings(ctx)
}

// checkTimeZone validates an IANA time zone name ("" is allowed: UTC).
func checkTimeZone(p *validation.Problems, path, zone string) {
	if zone == "" {
		return
	}
	if _, err := time.LoadLocation(zone); err != nil || zone == "Local" {
		p.Add(path, "%q is not an IANA time zone (Europe/Berlin)", zone)
	}
}

// quietHoursFor returns the quiet hours that hold notifications to sub: its own, else the
// tenant's defaults (in sub's time zone, else the defaults' zone); nil for none.
func quietHoursFor(sub Subscriber, defaults Settings) *QuietHours {
	if sub.QuietHoursStart != "" && sub.QuietHoursEnd != "" {
		return &QuietHours{Start: sub.QuietHoursStart, End: sub.QuietHoursEnd, TimeZone: sub.TimeZone}
	}
	if defaults.QuietHoursStart == "" || defaults.QuietHoursEnd == "" {
		return nil
	}
	zone := sub.TimeZone
	if zone == "" {
		zone = defaults.TimeZone
	}
	return &QuietHours{Start: defaults.QuietHoursStart, End: defaults.QuietHoursEnd, TimeZone: zone}
}
