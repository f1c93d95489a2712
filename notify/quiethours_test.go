package notify

import (
	"testing"
	"time"
)

func TestQuietUntil(t *testing.T) {
	utc := func(s string) time.Time { return rfc3339(t, s) }
	for _, c := range []struct {
		name  string
		now   string
		q     QuietHours
		until string // "" for not inside
	}{
		{"overnight, before midnight", "2026-03-10T23:30:00Z", QuietHours{Start: "22:00", End: "07:00"}, "2026-03-11T07:00:00Z"},
		{"overnight, after midnight", "2026-03-11T03:00:00Z", QuietHours{Start: "22:00", End: "07:00"}, "2026-03-11T07:00:00Z"},
		{"overnight, outside", "2026-03-11T12:00:00Z", QuietHours{Start: "22:00", End: "07:00"}, ""},
		{"the end itself is outside", "2026-03-11T07:00:00Z", QuietHours{Start: "22:00", End: "07:00"}, ""},
		{"daytime window with seconds", "2026-03-11T12:00:00Z", QuietHours{Start: "11:59:00", End: "12:00:05"}, "2026-03-11T12:00:05Z"},
		{"in the subscriber's zone", "2026-03-11T05:30:00Z", QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}, "2026-03-11T06:00:00Z"},
		{"outside in the subscriber's zone", "2026-03-11T06:30:00Z", QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}, ""},
		// New York springs forward on 2026-03-08: 07:00 EDT is 11:00 UTC.
		{"across a DST change", "2026-03-08T06:00:00Z", QuietHours{Start: "22:00", End: "07:00", TimeZone: "America/New_York"}, "2026-03-08T11:00:00Z"},
		{"empty window", "2026-03-11T12:00:00Z", QuietHours{Start: "12:00", End: "12:00"}, ""},
		{"invalid", "2026-03-11T12:00:00Z", QuietHours{Start: "25:00", End: "07:00"}, ""},
	} {
		got, ok := QuietUntil(utc(c.now), c.q)
		if c.until == "" {
			if ok {
				t.Errorf("%s: held until %s", c.name, got)
			}
			continue
		}
		if !ok || !got.Equal(utc(c.until)) {
			t.Errorf("%s: %s %v, want %s", c.name, got, ok, c.until)
		}
	}
}

// TestQuietHoursFor: a subscriber's own quiet hours win; without them the tenant's defaults
// apply in the subscriber's zone, else the defaults' zone; no defaults, none.
func TestQuietHoursFor(t *testing.T) {
	defaults := Settings{QuietHoursStart: "22:00", QuietHoursEnd: "07:00", TimeZone: "Europe/Berlin"}
	for _, c := range []struct {
		name     string
		sub      Subscriber
		defaults Settings
		want     *QuietHours
	}{
		{"own", Subscriber{QuietHoursStart: "20:00", QuietHoursEnd: "06:00", TimeZone: "Asia/Tokyo"}, defaults,
			&QuietHours{Start: "20:00", End: "06:00", TimeZone: "Asia/Tokyo"}},
		{"defaults in the subscriber's zone", Subscriber{TimeZone: "Asia/Tokyo"}, defaults,
			&QuietHours{Start: "22:00", End: "07:00", TimeZone: "Asia/Tokyo"}},
		{"defaults in their own zone", Subscriber{}, defaults, &QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}},
		{"none", Subscriber{TimeZone: "Asia/Tokyo"}, Settings{}, nil},
	} {
		got := quietHoursFor(c.sub, c.defaults)
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// rfc3339 parses an RFC 3339 time, in UTC.
func rfc3339(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}
