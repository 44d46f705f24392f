package policy

import "time"

// TimeWindow is a recurring UTC time-of-day window during which a policy
// applies. Windows never wrap past midnight: express 22:00-06:00 as two
// windows, 22:00-24:00 and 00:00-06:00 (with the second one's days shifted
// by one if Days is set).
type TimeWindow struct {
	// Days limits the window to these weekdays, "mon".."sun" in lower case;
	// empty means every day.
	Days []string `json:"days,omitempty"`
	// Start is the first minute inside the window, "HH:MM" UTC, 00:00..23:59.
	Start string `json:"start"`
	// End is the first minute after the window, "HH:MM" UTC, 00:01..24:00;
	// it must be later than Start. "24:00" reaches the end of the day.
	End string `json:"end"`
}

// MaxDaysPerWindow is the number of weekdays; a longer Days list can only
// repeat a day, so it is rejected without checking each entry.
const MaxDaysPerWindow = 7

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} // indexed by time.Weekday

func parseDay(s string) (time.Weekday, bool) {
	for i, d := range dayNames {
		if s == d {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// parseClock parses "HH:MM" into minutes since midnight. "24:00" is accepted
// only when allow24 is set, because it is meaningful only as an end.
func parseClock(s string, allow24 bool) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range [...]int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 {
		return 0, false
	}
	if h == 24 && m == 0 && allow24 {
		return 24 * 60, true
	}
	if h > 23 {
		return 0, false
	}
	return h*60 + m, true
}

// Contains reports whether t, taken in UTC, falls inside the window: on one of
// Days (or any day if Days is empty), at or after Start and before End. An
// invalid window contains nothing, so a policy that was not validated fails
// closed.
func (w TimeWindow) Contains(t time.Time) bool {
	start, ok1 := parseClock(w.Start, false)
	end, ok2 := parseClock(w.End, true)
	if !ok1 || !ok2 || start >= end {
		return false
	}
	t = t.UTC()
	if len(w.Days) > 0 {
		wd := t.Weekday()
		found := false
		for _, d := range w.Days {
			if v, ok := parseDay(d); !ok {
				return false
			} else if v == wd {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	// Both bounds are whole minutes, so comparing the floored minute is exact:
	// 16:59:59.9 is before an End of 17:00, 17:00:00 is not.
	m := t.Hour()*60 + t.Minute()
	return start <= m && m < end
}

// validate appends the window's problems, with paths under prefix.
func (w TimeWindow) validate(prefix string, errs *[]FieldError) {
	if len(w.Days) > MaxDaysPerWindow {
		addErr(errs, joinPath(prefix, "days"), "at most 7 days (one per weekday); leave empty for every day", len(w.Days))
	} else {
		var seen [7]bool
		for i, d := range w.Days {
			p := indexPath(joinPath(prefix, "days"), i)
			v, ok := parseDay(d)
			switch {
			case !ok:
				addErr(errs, p, "must be one of mon, tue, wed, thu, fri, sat, sun", d)
			case seen[v]:
				addErr(errs, p, "duplicate day", d)
			default:
				seen[v] = true
			}
		}
	}
	start, okStart := parseClock(w.Start, false)
	switch {
	case w.Start == "":
		addErr(errs, joinPath(prefix, "start"), `required: "HH:MM" UTC`, nil)
	case !okStart:
		addErr(errs, joinPath(prefix, "start"), `must be "HH:MM" UTC between 00:00 and 23:59`, w.Start)
	}
	end, okEnd := parseClock(w.End, true)
	switch {
	case w.End == "":
		addErr(errs, joinPath(prefix, "end"), `required: "HH:MM" UTC`, nil)
	case !okEnd:
		addErr(errs, joinPath(prefix, "end"), `must be "HH:MM" UTC between 00:01 and 24:00`, w.End)
	case okStart && end <= start:
		addErr(errs, joinPath(prefix, "end"), "must be later than start; split a window that crosses midnight into two", w.End)
	}
}
