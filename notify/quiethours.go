package notify

import (
	"fmt"
	"time"

	// Quiet hours are computed in workflows, which must find every zone the same way on every
	// worker: the embedded database makes that independent of the host's.
	_ "time/tzdata"

	"github.com/pyairtable/automation-domain/validation"
)

// Priority levels of a notification; PriorityCritical ignores quiet hours.
const PriorityCritical = "critical"

// HoldQuietHours is the held_reason of a delivery waiting for its subscriber's quiet hours to end.
const HoldQuietHours = "quiet_hours"

// QuietHours is a daily window, in TimeZone (UTC when empty), in which non-critical
// notifications to a subscriber wait. Start and End are "HH:MM" or "HH:MM:SS"; End before Start
// spans midnight (22:00–07:00).
type QuietHours struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	TimeZone string `json:"time_zone,omitempty"`
}

// parseClock reads "HH:MM" or "HH:MM:SS" as seconds since midnight.
func parseClock(s string) (int, error) {
	var h, m, sec int
	var err error
	switch len(s) {
	case 5:
		_, err = fmt.Sscanf(s, "%02d:%02d", &h, &m)
	case 8:
		_, err = fmt.Sscanf(s, "%02d:%02d:%02d", &h, &m, &sec)
	default:
		err = fmt.Errorf("not HH:MM")
	}
	if err != nil || h > 23 || m > 59 || sec > 59 || h < 0 || m < 0 || sec < 0 {
		return 0, fmt.Errorf("%q is not a time of day (HH:MM or HH:MM:SS)", s)
	}
	return h*3600 + m*60 + sec, nil
}

// QuietUntil reports whether now falls inside q and, if so, when q ends (the first end after
// now, in q's zone, so that daylight-saving changes are honoured). Invalid or empty quiet hours,
// or a window with Start equal to End, never hold anything. It is pure: workflows call it with
// workflow.Now.
func QuietUntil(now time.Time, q QuietHours) (time.Time, bool) {
	start, err1 := parseClock(q.Start)
	end, err2 := parseClock(q.End)
	if err1 != nil || err2 != nil || start == end {
		return time.Time{}, false
	}
	loc := time.UTC
	if q.TimeZone != "" {
		l, err := time.LoadLocation(q.TimeZone)
		if err != nil {
			return time.Time{}, false
		}
		loc = l
	}
	local := now.In(loc)
	at := local.Hour()*3600 + local.Minute()*60 + local.Second()
	inside := at >= start && at < end
	if start > end {
		inside = at >= start || at < end
	}
	if !inside {
		return time.Time{}, false
	}
	y, mo, d := local.Date()
	until := time.Date(y, mo, d, end/3600, end%3600/60, end%60, 0, loc)
	if !until.After(local) {
		until = time.Date(y, mo, d+1, end/3600, end%3600/60, end%60, 0, loc)
	}
	return until.UTC(), true
}

// checkQuietHours validates a subscriber's quiet hours: both set or both empty, each a time of
// day, not equal.
func checkQuietHours(p *validation.Problems, start, end string) {
	if start == "" && end == "" {
		return
	}
	for _, f := range []struct{ path, v string }{{"quiet_hours_start", start}, {"quiet_hours_end", end}} {
		if f.v == "" {
			p.Add(f.path, "is required with the other end of the quiet hours")
		} else if _, err := parseClock(f.v); err != nil {
			p.Add(f.path, "%v", err)
		}
	}
	if start != "" && start == end {
		p.Add("quiet_hours_end", "must differ from quiet_hours_start")
	}
}
