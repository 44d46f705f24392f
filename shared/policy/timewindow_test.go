package policy

import (
	"testing"
	"time"
)

func TestTimeWindowContains(t *testing.T) {
	// 2025-06-02 is a Monday.
	at := func(day int, hh, mm, ss int) time.Time { return time.Date(2025, 6, day, hh, mm, ss, 0, time.UTC) }
	office := TimeWindow{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "09:00", End: "17:00"}
	tests := []struct {
		name string
		w    TimeWindow
		t    time.Time
		want bool
	}{
		{"start minute is inside", office, at(2, 9, 0, 0), true},
		{"just before start is outside", office, at(2, 8, 59, 59), false},
		{"just before end is inside", office, at(2, 16, 59, 59), true},
		{"end minute is outside", office, at(2, 17, 0, 0), false},
		{"a listed weekday is inside", office, at(6, 12, 0, 0), true},
		{"an unlisted weekday is outside", office, at(7, 12, 0, 0), false},
		{"empty days means every day", TimeWindow{Start: "09:00", End: "17:00"}, at(8, 12, 0, 0), true},
		{"end 24:00 reaches the last second of the day", TimeWindow{Start: "22:00", End: "24:00"}, at(2, 23, 59, 59), true},
		{"end 24:00 does not reach the next day", TimeWindow{Days: []string{"mon"}, Start: "22:00", End: "24:00"}, at(3, 0, 0, 0), false},
		{"midnight start includes midnight", TimeWindow{Start: "00:00", End: "06:00"}, at(3, 0, 0, 0), true},
		{"local morning can be before the window in UTC", office, time.Date(2025, 6, 2, 10, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)), false},
		{"local evening can still be office hours in UTC", office, time.Date(2025, 6, 2, 18, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)), true},
		{"UTC conversion can change the day", TimeWindow{Days: []string{"sun"}, Start: "00:00", End: "24:00"}, time.Date(2025, 6, 2, 1, 0, 0, 0, time.FixedZone("UTC+2", 2*3600)), true},
		{"window crossing midnight contains nothing", TimeWindow{Start: "22:00", End: "06:00"}, at(2, 23, 0, 0), false},
		{"malformed start contains nothing", TimeWindow{Start: "9:00", End: "17:00"}, at(2, 12, 0, 0), false},
		{"unknown day contains nothing", TimeWindow{Days: []string{"mon", "funday"}, Start: "09:00", End: "17:00"}, at(2, 12, 0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.Contains(tt.t); got != tt.want {
				t.Fatalf("%+v.Contains(%v) = %v, want %v", tt.w, tt.t, got, tt.want)
			}
		})
	}
}

func TestTimeWindowValidate(t *testing.T) {
	tests := []struct {
		name   string
		w      TimeWindow
		fields []string
	}{
		{"office hours are valid", TimeWindow{Days: []string{"mon", "fri"}, Start: "09:00", End: "17:00"}, nil},
		{"whole day is valid", TimeWindow{Start: "00:00", End: "24:00"}, nil},
		{"one minute is valid", TimeWindow{Start: "23:59", End: "24:00"}, nil},
		{"missing start and end are both reported", TimeWindow{}, []string{"w.start", "w.end"}},
		{"end equal to start is rejected", TimeWindow{Start: "10:00", End: "10:00"}, []string{"w.end"}},
		{"end before start is rejected", TimeWindow{Start: "22:00", End: "06:00"}, []string{"w.end"}},
		{"start 24:00 is rejected", TimeWindow{Start: "24:00", End: "24:00"}, []string{"w.start"}},
		{"hour 25 is rejected", TimeWindow{Start: "00:00", End: "25:00"}, []string{"w.end"}},
		{"minute 60 is rejected", TimeWindow{Start: "09:60", End: "10:00"}, []string{"w.start"}},
		{"single-digit hour is rejected", TimeWindow{Start: "9:00", End: "10:00"}, []string{"w.start"}},
		{"seconds are rejected", TimeWindow{Start: "09:00:00", End: "10:00"}, []string{"w.start"}},
		{"unknown and duplicate days are reported by index", TimeWindow{Days: []string{"mon", "Mon", "mon", "monday"}, Start: "09:00", End: "10:00"}, []string{"w.days[1]", "w.days[2]", "w.days[3]"}},
		{"more than seven days are rejected once", TimeWindow{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun", "mon"}, Start: "09:00", End: "10:00"}, []string{"w.days"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs []FieldError
			tt.w.validate("w", &errs)
			if got := fieldsOf(errs); !equalStrings(got, tt.fields) {
				t.Fatalf("fields = %q, want %q (errors: %+v)", got, tt.fields, errs)
			}
		})
	}
}
