package sql

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
)

// sessionVar is a session variable: SET and SHOW reach it by name. set
// validates and normalizes a new value; nil means read-only.
type sessionVar struct {
	name string
	def  func(s *session) string
	set  func(s *session, v string) (string, error)
}

func fixed(v string) func(*session) string { return func(*session) string { return v } }

func anyValue(_ *session, v string) (string, error) { return v, nil }

func oneOf(name string, allowed ...string) func(*session, string) (string, error) {
	return func(_ *session, v string) (string, error) {
		for _, a := range allowed {
			if strings.EqualFold(strings.TrimSpace(v), a) {
				return a, nil
			}
		}
		return "", pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidParameterValue, "invalid value for parameter %q: %q", name, v),
			"allowed values: %s", strings.Join(allowed, ", "))
	}
}

// sessionVars lists the variables, sorted by name (SHOW ALL prints them in
// this order).
var sessionVars = []*sessionVar{
	{name: "application_name", def: fixed(""), set: anyValue},
	{name: "bytea_output", def: fixed("hex"), set: oneOf("bytea_output", "hex")},
	{name: "client_encoding", def: fixed("UTF8"), set: func(_ *session, v string) (string, error) {
		// PostgreSQL compares encoding names with every character but
		// letters and digits removed (clean_encoding_name), so 'utf-8' as
		// asyncpg sends it, quotes included, is UTF8.
		clean := strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return unicode.ToUpper(r)
			}
			return -1
		}, v)
		switch clean {
		case "UTF8", "UNICODE":
			return "UTF8", nil
		case "SQLASCII":
			// libpq picks SQL_ASCII in the C locale. PostgreSQL then sends
			// bytes unconverted, which is what kvnode does anyway.
			return "SQL_ASCII", nil
		}
		return "", pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeFeatureNotSupported, "unimplemented client encoding: %q", v),
			"kvnode speaks UTF8 only; set client_encoding to UTF8")
	}},
	{name: "client_min_messages", def: fixed("notice"), set: oneOf("client_min_messages",
		"debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error")},
	{name: "database", def: func(s *session) string { return s.database() }, set: func(s *session, v string) (string, error) {
		if err := s.e.checkDatabase(context.Background(), v); err != nil {
			return "", err
		}
		return normalizeDatabase(v), nil
	}},
	{name: "datestyle", def: fixed("ISO, MDY"), set: func(_ *session, v string) (string, error) {
		// kvnode has no date types; accept the ISO styles drivers set.
		if !strings.Contains(strings.ToUpper(v), "ISO") {
			return "", pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeInvalidParameterValue, "invalid value for parameter \"datestyle\": %q", v),
				"only ISO date styles are supported, for example SET datestyle = 'ISO, MDY'")
		}
		return "ISO, MDY", nil
	}},
	{name: "default_transaction_isolation", def: fixed("serializable"),
		set: oneOf("default_transaction_isolation", "serializable", "read committed", "repeatable read", "snapshot")},
	{name: "default_transaction_read_only", def: fixed("off"), set: oneOf("default_transaction_read_only", "off")},
	{name: "extra_float_digits", def: fixed("1"), set: func(_ *session, v string) (string, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < -15 || n > 3 {
			return "", pgerror.Newf(pgerror.CodeInvalidParameterValue,
				"%q is outside the valid range for parameter \"extra_float_digits\" (-15 .. 3)", v)
		}
		return strconv.Itoa(n), nil
	}},
	{name: "idle_in_transaction_session_timeout", def: fixed("0"), set: durationValue},
	{name: "integer_datetimes", def: fixed("on")},
	{name: "intervalstyle", def: fixed("postgres"), set: oneOf("intervalstyle", "postgres")},
	// is_superuser is on for root and, from 2.1, the members of admin
	// (psql's prompt ends in # for them); reported at startup, as
	// PostgreSQL reports it.
	{name: "is_superuser", def: func(s *session) string {
		// The users are cached (NewSession just read them to admit the
		// user); bounded below clients' connect timeouts all the same.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if admin, err := s.e.IsAdmin(ctx, s.args.User); err == nil && admin {
			return "on"
		}
		return "off"
	}},
	{name: "lc_messages", def: fixed("C.UTF-8"), set: anyValue},
	{name: "lock_timeout", def: fixed("0"), set: anyValue},
	{name: "max_identifier_length", def: fixed("128")},
	// max_index_keys is PostgreSQL's compiled-in INDEX_MAX_KEYS, which JDBC
	// reads from pg_settings for getImportedKeys and getExportedKeys.
	{name: "max_index_keys", def: fixed("32")},
	{name: "node_id", def: func(s *session) string { return strconv.Itoa(int(s.e.cfg.NodeID())) }},
	{name: "search_path", def: fixed("\"$user\", public"), set: anyValue},
	{name: "server_encoding", def: fixed("UTF8")},
	{name: "server_version", def: fixed(pgwire.ServerVersion)},
	{name: "server_version_num", def: fixed(pgwire.ServerVersionNum)},
	{name: "session_authorization", def: func(s *session) string { return s.args.User }},
	{name: "session_user", def: func(s *session) string { return s.args.User }},
	{name: "standard_conforming_strings", def: fixed("on"), set: oneOf("standard_conforming_strings", "on")},
	{name: "statement_timeout", def: fixed("0"), set: durationValue},
	{name: "timezone", def: fixed("UTC"), set: anyValue},
	{name: "transaction_isolation", def: fixed("serializable")},
	{name: "transaction_read_only", def: fixed("off")},
}

func lookupVar(name string) (*sessionVar, bool) {
	for _, v := range sessionVars {
		if v.name == name {
			return v, true
		}
	}
	return nil, false
}

// reportedVars are the parameters PostgreSQL reports with ParameterStatus
// (GUC_REPORT), by their reported spelling.
var reportedVars = map[string]string{
	"application_name": "application_name", "client_encoding": "client_encoding", "datestyle": "DateStyle",
	"intervalstyle": "IntervalStyle", "timezone": "TimeZone", "standard_conforming_strings": "standard_conforming_strings",
	"is_superuser": "is_superuser", "session_authorization": "session_authorization",
}

// reported is the ParameterStatus a change of v sends, if v is reported.
func (s *session) reported(v *sessionVar) []pgwire.ParameterStatus {
	name, ok := reportedVars[v.name]
	if !ok {
		return nil
	}
	return []pgwire.ParameterStatus{{Name: name, Value: s.getVar(v)}}
}

// ReportedParameter implements pgwire.ParameterReporter: the startup
// ParameterStatus of a reported parameter is the session's value, so a
// TimeZone set in the startup packet is reported as set.
func (s *session) ReportedParameter(name string) (string, bool) {
	for v, reported := range reportedVars {
		if reported == name {
			sv, ok := lookupVar(v)
			if !ok {
				return "", false
			}
			return s.getVar(sv), true
		}
	}
	return "", false
}

var _ pgwire.ParameterReporter = (*session)(nil)

// isCustomVarName reports whether name is a custom setting: a dotted name
// such as myapp.tenant, which PostgreSQL accepts without declaring it
// (extensions and applications keep state in them).
func isCustomVarName(name string) bool {
	i := strings.IndexByte(name, '.')
	return i > 0 && i < len(name)-1
}

// lookupVar finds a session variable by its lowercased name: a built-in one,
// or a custom one that was set in this session.
func (s *session) lookupVar(name string) (*sessionVar, bool) {
	if v, ok := lookupVar(name); ok {
		return v, true
	}
	if _, ok := s.vars[name]; ok && isCustomVarName(name) {
		return customVar(name), true
	}
	return nil, false
}

// varForSet is the variable SET name (or set_config) changes: a built-in
// one, or a custom one, created by setting it.
func (s *session) varForSet(name string) (*sessionVar, error) {
	if v, ok := lookupVar(name); ok {
		if v.set == nil {
			return nil, pgerror.WithHintf(
				pgerror.Newf("55P02", "parameter %q cannot be changed", v.name), "SHOW %s displays it", v.name)
		}
		return v, nil
	}
	if isCustomVarName(name) {
		return customVar(name), nil
	}
	return nil, unknownVar(name)
}

func customVar(name string) *sessionVar {
	return &sessionVar{name: name, def: fixed(""), set: anyValue}
}

// database is the database the session is connected to.
func (s *session) database() string {
	if v, ok := s.vars["database"]; ok {
		return v
	}
	return normalizeDatabase(s.args.Database)
}

func normalizeDatabase(db string) string {
	if db == "" {
		return "defaultdb"
	}
	return db
}

func unknownVar(name string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeUndefinedObject, "unrecognized configuration parameter %q", name),
		"SHOW ALL lists the session variables; cluster settings are read with SHOW CLUSTER SETTING")
}

// parseDuration reads a PostgreSQL duration setting: a number of
// milliseconds, or a number with a unit (ms, s, min, h).
// durationValue normalizes a duration setting (milliseconds, or a value
// with a unit) to Go's form, "0" for none.
func durationValue(_ *session, v string) (string, error) {
	d, err := parseDuration(v)
	if err != nil {
		return "", err
	}
	if d == 0 {
		return "0", nil
	}
	return d.String(), nil
}

func parseDuration(v string) (time.Duration, error) {
	s := strings.TrimSpace(strings.ToLower(v))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Millisecond, nil
	}
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"ms", time.Millisecond}, {"min", time.Minute}, {"s", time.Second}, {"h", time.Hour}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			if n, err := strconv.ParseFloat(strings.TrimSpace(num), 64); err == nil && n >= 0 {
				return time.Duration(n * float64(u.unit)), nil
			}
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	return 0, pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeInvalidParameterValue, "invalid duration %q", v),
		"write milliseconds (5000) or a value with a unit ('5s', '100ms', '1min')")
}
