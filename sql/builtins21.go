package sql

import (
	"math"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Functions on release 2.1's types: date_part/EXTRACT, date_trunc,
// make_date, JSONB builders and accessors.

func init() {
	ts, tz, date, iv, str, js := types.Timestamp, types.TimestampTZ, types.Date, types.Interval, types.String, types.JSONB
	part := func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return datePart(a[0].(string), a[1]) }
	trunc := func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return dateTrunc(a[0].(string), a[1]) }
	for _, b := range []*builtin{
		{name: "date_part", overloads: []overload{
			{[]types.T{str, ts}, types.Float, part}, {[]types.T{str, tz}, types.Float, part},
			{[]types.T{str, date}, types.Float, part}, {[]types.T{str, iv}, types.Float, part},
		}},
		{name: "date_trunc", overloads: []overload{
			{[]types.T{str, ts}, ts, trunc}, {[]types.T{str, tz}, tz, trunc}, {[]types.T{str, iv}, iv, trunc},
		}},
		{name: "make_date", overloads: []overload{{[]types.T{types.Int, types.Int, types.Int}, date,
			func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				y, m, d := a[0].(int64), a[1].(int64), a[2].(int64)
				t := time.Date(int(y), time.Month(m), int(d), 0, 0, 0, 0, time.UTC)
				if m < 1 || m > 12 || d < 1 || t.Day() != int(d) {
					return nil, pgerror.Newf("22008", "date field value out of range: %d-%02d-%02d", y, m, d)
				}
				return types.DateFromTime(t), nil
			}}}},
		{name: "to_timestamp", overloads: []overload{{[]types.T{types.Float}, tz,
			func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				f := a[0].(float64)
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return nil, pgerror.Newf("22008", "timestamp out of range")
				}
				return types.MakeTimestampTZ(time.UnixMicro(int64(math.Round(f * 1e6)))), nil
			}}}},
		{name: "jsonb_typeof", overloads: []overload{{[]types.T{js}, str,
			func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return jsonType(a[0].(types.JSONDatum).Decode()), nil
			}}}},
		{name: "jsonb_array_length", overloads: []overload{{[]types.T{js}, types.Int,
			func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				arr, ok := a[0].(types.JSONDatum).Decode().([]any)
				if !ok {
					return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "cannot get array length of a non-array")
				}
				return int64(len(arr)), nil
			}}}},
	} {
		builtins[b.name] = b
	}
	builtins["datepart"] = builtins["date_part"]
	builtins["json_typeof"] = builtins["jsonb_typeof"]
	builtins["json_array_length"] = builtins["jsonb_array_length"]
}

func jsonType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "number"
}

// datumToJSON converts a SQL value to a JSON value, as to_jsonb does.
func datumToJSON(d types.Datum) any {
	switch v := d.(type) {
	case nil:
		return nil
	case bool:
		return v
	case string:
		return v
	case types.JSONDatum:
		return v.Decode()
	case int64, float64, *apd.Decimal:
		out, err := types.DecodeJSON(string(types.FormatText(v)))
		if err != nil { // NaN, Infinity: PostgreSQL makes them strings
			return string(types.FormatText(v))
		}
		return out
	case types.Array:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = datumToJSON(e)
		}
		return out
	case types.TimestampDatum:
		return v.Format("2006-01-02T15:04:05.999999")
	case types.TimestampTZDatum:
		return v.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	}
	return string(types.FormatText(d))
}

// evalJSONBuild evaluates jsonb_build_object, jsonb_build_array and
// to_jsonb, whose arguments may be of any type.
func evalJSONBuild(name string, args []types.Datum) (types.Datum, error) {
	switch strings.TrimPrefix(strings.TrimPrefix(name, "jsonb_"), "json_") {
	case "build_object":
		if len(args)%2 != 0 {
			return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "argument list must have even number of elements")
		}
		m := map[string]any{}
		for i := 0; i < len(args); i += 2 {
			if args[i] == nil {
				return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "argument %d: key must not be null", i+1)
			}
			m[string(types.FormatText(args[i]))] = datumToJSON(args[i+1])
		}
		return types.JSONDatum(types.EncodeJSON(m)), nil
	case "build_array":
		out := make([]any, len(args))
		for i, a := range args {
			out[i] = datumToJSON(a)
		}
		return types.JSONDatum(types.EncodeJSON(out)), nil
	default: // to_jsonb
		if len(args) != 1 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "to_jsonb takes one argument")
		}
		if args[0] == nil {
			return nil, nil
		}
		return types.JSONDatum(types.EncodeJSON(datumToJSON(args[0]))), nil
	}
}

func datePart(field string, d types.Datum) (types.Datum, error) {
	field = strings.ToLower(field)
	if iv, ok := d.(types.IntervalDatum); ok {
		switch field {
		case "epoch":
			return float64(iv.Months)*30*86400 + float64(iv.Months/12)*0.25*86400 + float64(iv.Days)*86400 + float64(iv.Micros)/1e6, nil
		case "year", "years":
			return float64(iv.Months / 12), nil
		case "month", "months":
			return float64(iv.Months % 12), nil
		case "day", "days":
			return float64(iv.Days), nil
		case "hour", "hours":
			return float64(iv.Micros / 3600e6), nil
		case "minute", "minutes":
			return float64(iv.Micros / 60e6 % 60), nil
		case "second", "seconds":
			return float64(iv.Micros%60e6) / 1e6, nil
		}
		return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "interval units %q not supported", field)
	}
	var t time.Time
	switch v := d.(type) {
	case types.DateDatum:
		t = v.Time()
	case types.TimestampDatum:
		t = v.Time
	case types.TimestampTZDatum:
		t = v.UTC()
	}
	switch field {
	case "year", "years":
		return float64(t.Year()), nil
	case "month", "months":
		return float64(t.Month()), nil
	case "day", "days":
		return float64(t.Day()), nil
	case "hour", "hours":
		return float64(t.Hour()), nil
	case "minute", "minutes":
		return float64(t.Minute()), nil
	case "second", "seconds":
		return float64(t.Second()) + float64(t.Nanosecond())/1e9, nil
	case "milliseconds":
		return float64(t.Second())*1e3 + float64(t.Nanosecond())/1e6, nil
	case "microseconds":
		return float64(t.Second())*1e6 + float64(t.Nanosecond()/1e3), nil
	case "dow":
		return float64(t.Weekday()), nil
	case "isodow":
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return float64(wd), nil
	case "doy":
		return float64(t.YearDay()), nil
	case "week":
		_, w := t.ISOWeek()
		return float64(w), nil
	case "quarter":
		return float64((int(t.Month())-1)/3 + 1), nil
	case "decade":
		return math.Floor(float64(t.Year()) / 10), nil
	case "century":
		y := t.Year()
		if y > 0 {
			return float64((y + 99) / 100), nil
		}
		return -float64((99 - (y - 1)) / 100), nil
	case "millennium":
		y := t.Year()
		if y > 0 {
			return float64((y + 999) / 1000), nil
		}
		return -float64((999 - (y - 1)) / 1000), nil
	case "epoch":
		return float64(t.UnixMicro()) / 1e6, nil
	case "timezone", "timezone_hour", "timezone_minute":
		return float64(0), nil
	}
	return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "unit %q not recognized", field)
}

func dateTrunc(field string, d types.Datum) (types.Datum, error) {
	field = strings.ToLower(field)
	if iv, ok := d.(types.IntervalDatum); ok {
		out := iv
		switch field {
		case "year":
			out = types.IntervalDatum{Months: iv.Months / 12 * 12}
		case "month":
			out = types.IntervalDatum{Months: iv.Months}
		case "day":
			out = types.IntervalDatum{Months: iv.Months, Days: iv.Days}
		case "hour":
			out.Micros = iv.Micros / 3600e6 * 3600e6
		case "minute":
			out.Micros = iv.Micros / 60e6 * 60e6
		case "second":
			out.Micros = iv.Micros / 1e6 * 1e6
		default:
			return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "interval units %q not supported", field)
		}
		return out, nil
	}
	var t time.Time
	switch v := d.(type) {
	case types.TimestampDatum:
		t = v.Time
	case types.TimestampTZDatum:
		t = v.UTC()
	}
	y, m, day := t.Date()
	switch field {
	case "millennium":
		t = time.Date((y-1)/1000*1000+1, 1, 1, 0, 0, 0, 0, time.UTC)
	case "century":
		t = time.Date((y-1)/100*100+1, 1, 1, 0, 0, 0, 0, time.UTC)
	case "decade":
		t = time.Date(y/10*10, 1, 1, 0, 0, 0, 0, time.UTC)
	case "year":
		t = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	case "quarter":
		t = time.Date(y, (m-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
	case "month":
		t = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	case "week":
		wd := (int(t.Weekday()) + 6) % 7 // days since Monday
		t = time.Date(y, m, day-wd, 0, 0, 0, 0, time.UTC)
	case "day":
		t = time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
	case "hour":
		t = t.Truncate(time.Hour)
	case "minute":
		t = t.Truncate(time.Minute)
	case "second":
		t = t.Truncate(time.Second)
	case "milliseconds":
		t = t.Truncate(time.Millisecond)
	case "microseconds":
	default:
		return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "unit %q not recognized", field)
	}
	if _, ok := d.(types.TimestampTZDatum); ok {
		return types.TimestampTZDatum{Time: t}, nil
	}
	return types.TimestampDatum{Time: t}, nil
}
