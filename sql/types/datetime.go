package types

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DateDatum is a DATE: days since 1970-01-01.
type DateDatum int64

// TimestampDatum is a TIMESTAMP (without time zone): a wall-clock time,
// kept in UTC with microsecond precision.
type TimestampDatum struct{ time.Time }

// TimestampTZDatum is a TIMESTAMPTZ: an instant, kept in UTC with
// microsecond precision. Sessions run with TimeZone UTC, so it prints with
// the offset +00.
type TimestampTZDatum struct{ time.Time }

// IntervalDatum is an INTERVAL: months, days and microseconds, kept apart
// as in PostgreSQL (a month is not a fixed number of days).
type IntervalDatum struct {
	Months int64
	Days   int64
	Micros int64
}

const microsPerDay = 86400 * 1000000

var unixEpoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// Time returns the date's midnight, UTC.
func (d DateDatum) Time() time.Time { return unixEpoch.AddDate(0, 0, int(d)) }

// DateFromTime returns the date of t's wall clock.
func DateFromTime(t time.Time) DateDatum {
	y, m, dd := t.Date()
	secs := time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Unix()
	days := secs / 86400
	if secs%86400 != 0 && secs < 0 {
		days--
	}
	return DateDatum(days)
}

// MakeTimestamp returns t's wall clock as a TIMESTAMP.
func MakeTimestamp(t time.Time) TimestampDatum {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return TimestampDatum{time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.UTC).Round(time.Microsecond)}
}

// MakeTimestampTZ returns the instant t as a TIMESTAMPTZ.
func MakeTimestampTZ(t time.Time) TimestampTZDatum {
	return TimestampTZDatum{t.UTC().Round(time.Microsecond)}
}

func formatYMD(b *strings.Builder, t time.Time) (bc bool) {
	y := t.Year()
	if y <= 0 {
		y, bc = 1-y, true
	}
	fmt.Fprintf(b, "%04d-%02d-%02d", y, int(t.Month()), t.Day())
	return bc
}

func formatClock(b *strings.Builder, t time.Time) {
	fmt.Fprintf(b, " %02d:%02d:%02d", t.Hour(), t.Minute(), t.Second())
	if us := t.Nanosecond() / 1000; us != 0 {
		b.WriteString(strings.TrimRight(fmt.Sprintf(".%06d", us), "0"))
	}
}

// String renders the date as PostgreSQL does (ISO, DateStyle ISO).
func (d DateDatum) String() string {
	var b strings.Builder
	if formatYMD(&b, d.Time()) {
		b.WriteString(" BC")
	}
	return b.String()
}

func (t TimestampDatum) String() string {
	var b strings.Builder
	bc := formatYMD(&b, t.Time)
	formatClock(&b, t.Time)
	if bc {
		b.WriteString(" BC")
	}
	return b.String()
}

func (t TimestampTZDatum) String() string {
	var b strings.Builder
	u := t.UTC()
	bc := formatYMD(&b, u)
	formatClock(&b, u)
	b.WriteString("+00")
	if bc {
		b.WriteString(" BC")
	}
	return b.String()
}

// String renders the interval in PostgreSQL's default IntervalStyle
// (postgres): "1 year 2 mons 3 days 04:05:06.5", "00:00:00" for zero.
func (iv IntervalDatum) String() string {
	var parts []string
	unit := func(n int64, one, many string) {
		if n == 0 {
			return
		}
		if n == 1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, one))
		} else {
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	unit(iv.Months/12, "year", "years")
	unit(iv.Months%12, "mon", "mons")
	unit(iv.Days, "day", "days")
	if iv.Micros != 0 || len(parts) == 0 {
		us := iv.Micros
		sign := ""
		if us < 0 {
			sign = "-"
			us = -us
		} else if len(parts) > 0 && (iv.Days < 0 || iv.Days == 0 && iv.Months < 0) {
			sign = "+"
		}
		s := fmt.Sprintf("%s%02d:%02d:%02d", sign, us/3600000000, us/60000000%60, us/1000000%60)
		if f := us % 1000000; f != 0 {
			s += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// Total returns the interval's length in microseconds, counting a month
// as 30 days (PostgreSQL's rule for comparing intervals), saturated.
func (iv IntervalDatum) Total() float64 {
	return float64(iv.Months)*30*microsPerDay + float64(iv.Days)*microsPerDay + float64(iv.Micros)
}

// CompareIntervals orders intervals by their Total, then by their parts so
// that only identical intervals compare equal... except PostgreSQL says
// '1 month' = '30 days'; kvnode follows PostgreSQL.
func CompareIntervals(x, y IntervalDatum) int {
	a, b := x.Total(), y.Total()
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var dateTimeRE = regexp.MustCompile(`^(\d{1,})-(\d{1,2})-(\d{1,2})(?:(?:T|\s+)(\d{1,2}):(\d{1,2})(?::(\d{1,2})(\.\d*)?)?)?\s*(Z|UTC|GMT|[+-]\d{1,2}(?::?\d{2}(?::?\d{2})?)?)?(\s+BC)?$`)

// parseDateTime parses PostgreSQL's ISO input forms: 'YYYY-MM-DD',
// 'YYYY-MM-DD HH:MM[:SS[.ffffff]]' (or with T), an optional zone (Z, UTC,
// +HH, +HH:MM, -HHMM) and BC. It returns the wall clock as UTC, and the
// zone offset in seconds if one was given.
func parseDateTime(s, typ string) (wall time.Time, offset int, hasZone bool, err error) {
	bad := fmt.Errorf("invalid input syntax for type %s: %q", typ, s)
	ts := strings.TrimSpace(s)
	now := time.Now().UTC()
	switch strings.ToLower(ts) {
	case "epoch":
		return unixEpoch, 0, true, nil
	case "now":
		return now, 0, true, nil
	case "today":
		return now.Truncate(24 * time.Hour), 0, true, nil
	case "tomorrow":
		return now.Truncate(24*time.Hour).AddDate(0, 0, 1), 0, true, nil
	case "yesterday":
		return now.Truncate(24*time.Hour).AddDate(0, 0, -1), 0, true, nil
	}
	m := dateTimeRE.FindStringSubmatch(ts)
	if m == nil {
		return time.Time{}, 0, false, bad
	}
	atoi := func(x string) int {
		if x == "" {
			return 0
		}
		n, _ := strconv.Atoi(x)
		return n
	}
	y, mo, d := atoi(m[1]), atoi(m[2]), atoi(m[3])
	h, mi, sec := atoi(m[4]), atoi(m[5]), atoi(m[6])
	if m[9] != "" {
		y = 1 - y
	}
	ns := 0
	if len(m[7]) > 1 {
		f, _ := strconv.ParseFloat("0"+m[7], 64)
		ns = int(math.Round(f*1e6)) * 1000
	}
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi != 0 || sec != 0 || ns != 0)) {
		return time.Time{}, 0, false, fmt.Errorf("date/time field value out of range: %q", s)
	}
	wall = time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC)
	if wall.Day() != d && h != 24 {
		return time.Time{}, 0, false, fmt.Errorf("date/time field value out of range: %q", s)
	}
	if z := m[8]; z != "" {
		hasZone = true
		if z != "Z" && z != "UTC" && z != "GMT" {
			sign := 1
			if z[0] == '-' {
				sign = -1
			}
			digits := strings.ReplaceAll(z[1:], ":", "")
			var zh, zm, zs int
			switch len(digits) {
			case 1, 2:
				zh = atoi(digits)
			case 3, 4:
				zh, zm = atoi(digits[:len(digits)-2]), atoi(digits[len(digits)-2:])
			default:
				zh, zm, zs = atoi(digits[:len(digits)-4]), atoi(digits[len(digits)-4:len(digits)-2]), atoi(digits[len(digits)-2:])
			}
			if zh > 15 || zm > 59 || zs > 59 {
				return time.Time{}, 0, false, fmt.Errorf("time zone displacement out of range: %q", s)
			}
			offset = sign * (zh*3600 + zm*60 + zs)
		}
	}
	return wall, offset, hasZone, nil
}

// ParseDate parses a DATE; a time of day is allowed and ignored.
func ParseDate(s string) (Datum, error) {
	wall, _, _, err := parseDateTime(s, "date")
	if err != nil {
		return nil, err
	}
	return DateFromTime(wall), nil
}

// ParseTimestamp parses a TIMESTAMP; a zone is allowed and ignored, as in
// PostgreSQL.
func ParseTimestamp(s string) (Datum, error) {
	wall, _, _, err := parseDateTime(s, "timestamp")
	if err != nil {
		return nil, err
	}
	return MakeTimestamp(wall), nil
}

// ParseTimestampTZ parses a TIMESTAMPTZ; without a zone the time is in the
// session's zone, UTC.
func ParseTimestampTZ(s string) (Datum, error) {
	wall, off, _, err := parseDateTime(s, "timestamp with time zone")
	if err != nil {
		return nil, err
	}
	return MakeTimestampTZ(wall.Add(-time.Duration(off) * time.Second)), nil
}

// ParseInterval parses PostgreSQL's interval input: quantities with units
// ('1 day 2 hours', '3 mons', '1.5 weeks', '@ 1 minute ago'), a clock
// ('01:02:03.5', '-1:00'), or both ('1 day 02:00:00').
func ParseInterval(s string) (Datum, error) {
	bad := fmt.Errorf("invalid input syntax for type interval: %q", s)
	fields := strings.Fields(strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "@")))
	if len(fields) == 0 {
		return nil, bad
	}
	var months, days float64
	var micros float64
	ago := false
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if f == "ago" && i == len(fields)-1 {
			ago = true
			continue
		}
		if strings.Contains(f, ":") {
			neg := strings.HasPrefix(f, "-")
			parts := strings.Split(strings.TrimLeft(f, "+-"), ":")
			if len(parts) > 3 {
				return nil, bad
			}
			var v float64
			mult := []float64{3600e6, 60e6, 1e6}
			for j, p := range parts {
				x, err := strconv.ParseFloat(p, 64)
				if err != nil || x < 0 || (j < len(parts)-1 && strings.Contains(p, ".")) {
					return nil, bad
				}
				v += x * mult[j]
			}
			if neg {
				v = -v
			}
			micros += v
			continue
		}
		// A number, with its unit glued ("10s") or as the next field.
		j := 0
		for j < len(f) && (f[j] == '-' || f[j] == '+' || f[j] == '.' || f[j] >= '0' && f[j] <= '9') {
			j++
		}
		num, err := strconv.ParseFloat(f[:j], 64)
		if err != nil {
			return nil, bad
		}
		unit := f[j:]
		if unit == "" {
			if i+1 >= len(fields) {
				// A bare number is seconds.
				micros += num * 1e6
				continue
			}
			i++
			unit = fields[i]
		}
		switch strings.TrimSuffix(unit, ",") {
		case "microsecond", "microseconds", "us", "usec", "usecs":
			micros += num
		case "millisecond", "milliseconds", "ms", "msec", "msecs":
			micros += num * 1e3
		case "second", "seconds", "s", "sec", "secs":
			micros += num * 1e6
		case "minute", "minutes", "m", "min", "mins":
			micros += num * 60e6
		case "hour", "hours", "h", "hr", "hrs":
			micros += num * 3600e6
		case "day", "days", "d":
			days += num
		case "week", "weeks", "w":
			days += num * 7
		case "month", "months", "mon", "mons":
			months += num
		case "year", "years", "y", "yr", "yrs":
			months += num * 12
		case "decade", "decades":
			months += num * 120
		case "century", "centuries":
			months += num * 1200
		default:
			return nil, bad
		}
	}
	// Fractions cascade down: a fraction of a month is 30 days, of a day
	// 24 hours.
	wholeMonths := math.Trunc(months)
	days += (months - wholeMonths) * 30
	wholeDays := math.Trunc(days)
	micros += (days - wholeDays) * microsPerDay
	if math.Abs(wholeMonths) > math.MaxInt32 || math.Abs(wholeDays) > math.MaxInt32 || math.Abs(micros) > math.MaxInt64/2 {
		return nil, fmt.Errorf("interval out of range: %q", s)
	}
	iv := IntervalDatum{Months: int64(wholeMonths), Days: int64(wholeDays), Micros: int64(math.Round(micros))}
	if ago {
		iv = IntervalDatum{-iv.Months, -iv.Days, -iv.Micros}
	}
	return iv, nil
}

// AddInterval adds iv (times sign, +1 or -1) to the wall clock or instant
// t: months, then days, then the time, as PostgreSQL does.
func AddInterval(t time.Time, iv IntervalDatum, sign int64) time.Time {
	t = t.AddDate(0, int(sign*iv.Months), int(sign*iv.Days))
	return t.Add(time.Duration(sign*iv.Micros) * time.Microsecond)
}

// SubTimes returns a - b as an interval of days and time (PostgreSQL's
// timestamp - timestamp).
func SubTimes(a, b time.Time) IntervalDatum {
	us := a.UnixMicro() - b.UnixMicro()
	return IntervalDatum{Days: us / microsPerDay, Micros: us % microsPerDay}
}
