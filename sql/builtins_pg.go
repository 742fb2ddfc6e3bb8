package sql

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// The functions in this file are the ones PostgreSQL drivers, ORMs and psql
// call on connect and for introspection. Those that read session state find
// the session in the statement's context (withSession).

type sessionKey struct{}

// withSession returns ctx carrying the session that runs the statement.
func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// session returns the session running the statement, or nil when the
// expression is evaluated outside one (a column DEFAULT at DDL time).
func (ec *evalCtx) session() *session {
	if ec.ctx == nil {
		return nil
	}
	s, _ := ec.ctx.Value(sessionKey{}).(*session)
	return s
}

// versionString is version()'s answer: PostgreSQL's form first (SQLAlchemy
// and other drivers parse "PostgreSQL MAJOR.MINOR"), then what kvnode is, as
// PostgreSQL-compatible servers do.
func versionString(binaryVersion string) string {
	return fmt.Sprintf("PostgreSQL %s on x86_64-pc-linux-gnu, kvnode %s (%s %s, built with %s)",
		pgwire.ServerVersion, binaryVersion, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func init() {
	for _, b := range []*builtin{
		{name: "version", overloads: []overload{{nil, types.String, func(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
			return versionString(ec.exec.cfg.BinaryVersion), nil
		}}}},
		{name: "current_database", overloads: []overload{{nil, types.String, func(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
			if s := ec.session(); s != nil {
				return s.database(), nil
			}
			return "defaultdb", nil
		}}}},
		{name: "current_catalog", overloads: []overload{{nil, types.String, func(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
			if s := ec.session(); s != nil {
				return s.database(), nil
			}
			return "defaultdb", nil
		}}}},
		{name: "current_setting", overloads: []overload{
			{[]types.T{types.String}, types.String, func(ec *evalCtx, a []types.Datum) (types.Datum, error) {
				return currentSetting(ec, a[0].(string), false)
			}},
			{[]types.T{types.String, types.Bool}, types.String, func(ec *evalCtx, a []types.Datum) (types.Datum, error) {
				return currentSetting(ec, a[0].(string), a[1].(bool))
			}},
		}},
		// set_config(name, value, is_local) is SET name = value. With
		// is_local the value would last until the end of the transaction,
		// which for a statement outside a transaction is the statement
		// itself: nothing is kept.
		{name: "set_config", volatile: true, overloads: []overload{
			{[]types.T{types.String, types.String, types.Bool}, types.String, func(ec *evalCtx, a []types.Datum) (types.Datum, error) {
				s := ec.session()
				if s == nil {
					return nil, pgerror.Newf(pgerror.CodeFeatureNotSupported, "set_config() needs a session")
				}
				name := strings.ToLower(a[0].(string))
				v, err := s.varForSet(name)
				if err != nil {
					return nil, err
				}
				if a[2].(bool) {
					if _, err := v.set(s, a[1].(string)); err != nil {
						return nil, err
					}
					return a[1].(string), nil
				}
				if err := s.setVar(v, a[1].(string)); err != nil {
					return nil, err
				}
				return s.getVar(v), nil
			}},
		}},
		{name: "pg_backend_pid", overloads: []overload{{nil, types.Int, func(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
			if s := ec.session(); s != nil {
				return int64(s.args.ProcessID), nil
			}
			return int64(0), nil
		}}}},
		// kvnode has no standby replicas: every node serves reads and
		// writes.
		{name: "pg_is_in_recovery", overloads: []overload{{nil, types.Bool, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return false, nil
		}}}},
	} {
		builtins[b.name] = b
	}
}

func currentSetting(ec *evalCtx, name string, missingOK bool) (types.Datum, error) {
	s := ec.session()
	if s == nil {
		return nil, pgerror.Newf(pgerror.CodeFeatureNotSupported, "current_setting() needs a session")
	}
	v, ok := s.lookupVar(strings.ToLower(name))
	if !ok {
		if missingOK {
			return nil, nil
		}
		return nil, unknownVar(name)
	}
	return s.getVar(v), nil
}

// ---- catalog functions psql and ORMs call ----

func catalogFn(f func(s *catalogSnapshot, ec *evalCtx, a []types.Datum) (types.Datum, error)) func(*evalCtx, []types.Datum) (types.Datum, error) {
	return func(ec *evalCtx, a []types.Datum) (types.Datum, error) {
		s, err := ec.catalog()
		if err != nil {
			return nil, err
		}
		return f(s, ec, a)
	}
}

func formatType(s *catalogSnapshot, _ *evalCtx, a []types.Datum) (types.Datum, error) {
	oid := a[0].(int64)
	name, ok := s.typeNameByOID(oid)
	if !ok {
		return "???", nil
	}
	// The type modifier, as PostgreSQL's format_type prints it.
	if mod, _ := a[1].(int64); mod >= 4 {
		switch oid {
		case int64(types.OIDVarchar), int64(types.OIDBPChar):
			return fmt.Sprintf("%s(%d)", name, mod-4), nil
		case int64(types.OIDNumeric):
			return fmt.Sprintf("numeric(%d,%d)", (mod-4)>>16, (mod-4)&0xffff), nil
		}
	}
	return name, nil
}

var (
	tInt    = types.Int
	tString = types.String
	tBool   = types.Bool
)

func init() {
	for _, b := range []*builtin{
		{name: "format_type", nullCall: true, overloads: []overload{{[]types.T{tInt, tInt}, tString,
			func(ec *evalCtx, a []types.Datum) (types.Datum, error) {
				if a[0] == nil {
					return nil, nil
				}
				return catalogFn(formatType)(ec, a)
			}}}},
		// pg_get_expr(adbin, relid [, pretty]): kvnode keeps expressions as
		// SQL text, which is what adbin holds.
		{name: "pg_get_expr", overloads: []overload{
			{[]types.T{tString, tInt}, tString, func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return a[0], nil }},
			{[]types.T{tString, tInt, tBool}, tString, func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return a[0], nil }},
		}},
		{name: "pg_get_indexdef", overloads: []overload{
			{[]types.T{tInt}, tString, catalogFn(func(s *catalogSnapshot, _ *evalCtx, a []types.Datum) (types.Datum, error) {
				if ci := s.indexByOID(a[0].(int64)); ci != nil {
					return indexDef(ci, true), nil
				}
				return nil, nil
			})},
			{[]types.T{tInt, tInt, tBool}, tString, catalogFn(func(s *catalogSnapshot, _ *evalCtx, a []types.Datum) (types.Datum, error) {
				ci := s.indexByOID(a[0].(int64))
				if ci == nil {
					return nil, nil
				}
				if col := a[1].(int64); col > 0 {
					if int(col) > len(ci.cols) {
						return "", nil
					}
					return parser.QuotedIdent(ci.ti.cols[ci.cols[col-1]].Name), nil
				}
				return indexDef(ci, !a[2].(bool)), nil
			})},
		}},
		// pg_get_triggerdef: kvnode has no triggers (a foreign key is
		// enforced by the statement, not by PostgreSQL's internal
		// triggers), and PostgreSQL answers NULL for an OID that is no
		// trigger's.
		{name: "pg_get_triggerdef", overloads: []overload{
			{[]types.T{tInt}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) { return nil, nil }},
			{[]types.T{tInt, tBool}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) { return nil, nil }},
		}},
		{name: "pg_get_constraintdef", overloads: []overload{
			{[]types.T{tInt}, tString, catalogFn(constraintDef)},
			{[]types.T{tInt, tBool}, tString, catalogFn(constraintDef)},
		}},
		// The search path is pg_catalog then public: user tables and
		// pg_catalog's are visible, those of other schemas are not.
		{name: "pg_table_is_visible", overloads: []overload{{[]types.T{tInt}, tBool, catalogFn(func(s *catalogSnapshot, _ *evalCtx, a []types.Datum) (types.Datum, error) {
			oid := a[0].(int64)
			if ti := s.byOID[oid]; ti != nil && (oid == tableOID(ti.desc) || isIndexOID(ti, oid)) {
				return true, nil
			}
			if name, ok := s.virtByOID[oid]; ok {
				return strings.HasPrefix(name, "pg_catalog."), nil
			}
			return false, nil
		})}}},
		{name: "pg_type_is_visible", overloads: []overload{{[]types.T{tInt}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return true, nil
		}}}},
		{name: "pg_function_is_visible", overloads: []overload{{[]types.T{tInt}, tBool, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			name, _, ok := procByOID(a[0].(int64))
			return ok && !strings.Contains(name, "."), nil
		}}}},
		{name: "pg_get_function_result", overloads: []overload{{[]types.T{tInt}, tString, catalogFn(func(s *catalogSnapshot, _ *evalCtx, a []types.Datum) (types.Datum, error) {
			_, ov, ok := procByOID(a[0].(int64))
			if !ok {
				return nil, nil
			}
			name, _ := s.typeNameByOID(colTypeOID(ov.ret))
			return name, nil
		})}}},
		{name: "pg_get_function_arguments", overloads: []overload{{[]types.T{tInt}, tString, catalogFn(func(s *catalogSnapshot, _ *evalCtx, a []types.Datum) (types.Datum, error) {
			_, ov, ok := procByOID(a[0].(int64))
			if !ok {
				return nil, nil
			}
			var args []string
			for _, t := range ov.args {
				name, _ := s.typeNameByOID(colTypeOID(t))
				args = append(args, name)
			}
			return strings.Join(args, ", "), nil
		})}}},
		// Sizes on disk, estimated from the store (sizes.go).
		{name: "pg_table_size", relArg: true, overloads: []overload{{[]types.T{tInt}, tInt, sizeFn(true, false)}}},
		{name: "pg_relation_size", relArg: true, overloads: []overload{
			{[]types.T{tInt}, tInt, sizeFn(true, false)},
			{[]types.T{tInt, tString}, tInt, relationForkSize},
		}},
		{name: "pg_total_relation_size", relArg: true, overloads: []overload{{[]types.T{tInt}, tInt, sizeFn(true, true)}}},
		{name: "pg_indexes_size", relArg: true, overloads: []overload{{[]types.T{tInt}, tInt, sizeFn(false, true)}}},
		{name: "pg_database_size", overloads: []overload{{[]types.T{tString}, tInt, databaseSize}, {[]types.T{tInt}, tInt, databaseSize}}},
		{name: "pg_size_pretty", overloads: []overload{{[]types.T{tInt}, tString, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			return sizePretty(a[0].(int64)), nil
		}}}},
		{name: "pg_tablespace_location", overloads: []overload{{[]types.T{tInt}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return "", nil
		}}}},
		// to_regclass: a relation's OID from its name, or NULL when there
		// is none (where a cast to regclass fails).
		{name: "to_regclass", overloads: []overload{{[]types.T{tString}, tInt, func(ec *evalCtx, a []types.Datum) (types.Datum, error) {
			oid, err := ec.regCast(&regCastExpr{kind: "regclass"}, a[0])
			if err != nil {
				if strings.HasPrefix(pgerror.GetCode(err), "42") {
					return nil, nil
				}
				return nil, err
			}
			return oid, nil
		}}}},
		{name: "pg_get_userbyid", overloads: []overload{{[]types.T{tInt}, tString, func(ec *evalCtx, a []types.Datum) (types.Datum, error) {
			if name, ok := ec.exec.roleByOID(ec.ctx, a[0].(int64)); ok {
				return name, nil
			}
			return "unknown (OID=" + itoa64(a[0].(int64)) + ")", nil
		}}}},
		// kvnode keeps no comments.
		{name: "obj_description", overloads: []overload{
			{[]types.T{tInt}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) { return nil, nil }},
			{[]types.T{tInt, tString}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) { return nil, nil }},
		}},
		{name: "col_description", overloads: []overload{{[]types.T{tInt, tInt}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return nil, nil
		}}}},
		{name: "shobj_description", overloads: []overload{{[]types.T{tInt, tString}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return nil, nil
		}}}},
		{name: "pg_encoding_to_char", overloads: []overload{{[]types.T{tInt}, tString, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			if a[0].(int64) == 6 {
				return "UTF8", nil
			}
			return "", nil
		}}}},
		{name: "pg_relation_is_publishable", overloads: []overload{{[]types.T{tInt}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return false, nil
		}}}},
		{name: "quote_ident", overloads: []overload{{[]types.T{tString}, tString, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			return parser.QuotedIdent(a[0].(string)), nil
		}}}},
		{name: "has_table_privilege", overloads: []overload{
			{[]types.T{tInt, tString}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) { return true, nil }},
			{[]types.T{tString, tString}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) { return true, nil }},
			{[]types.T{tString, tString, tString}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) { return true, nil }},
		}},
		{name: "has_schema_privilege", overloads: []overload{
			{[]types.T{tString, tString}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) { return true, nil }},
			{[]types.T{tString, tString, tString}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) { return true, nil }},
		}},
		{name: "has_database_privilege", overloads: []overload{
			{[]types.T{tString, tString}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) { return true, nil }},
			{[]types.T{tString, tString, tString}, tBool, func(*evalCtx, []types.Datum) (types.Datum, error) { return true, nil }},
		}},
		// The search path is pg_catalog (implicitly) then public.
		{name: "current_schemas", overloads: []overload{{[]types.T{tBool}, types.ArrayOf(tString), func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			if a[0].(bool) {
				return types.Array{"pg_catalog", "public"}, nil
			}
			return types.Array{"public"}, nil
		}}}},
		// kvnode has no sequences: no column owns one.
		{name: "pg_get_serial_sequence", overloads: []overload{{[]types.T{tString, tString}, tString, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return nil, nil
		}}}},
		{name: "strpos", overloads: []overload{{[]types.T{tString, tString}, tInt, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			i := strings.Index(a[0].(string), a[1].(string))
			if i < 0 {
				return int64(0), nil
			}
			return int64(utf8.RuneCountInString(a[0].(string)[:i]) + 1), nil
		}}}},
		{name: "btrim", overloads: trimOverloads(strings.Trim)},
		{name: "ltrim", overloads: trimOverloads(strings.TrimLeft)},
		{name: "rtrim", overloads: trimOverloads(strings.TrimRight)},
		{name: "array_to_string", overloads: []overload{
			{[]types.T{types.ArrayOf(tString), tString}, tString, arrayToString},
			{[]types.T{types.ArrayOf(tInt), tString}, tString, arrayToString},
		}},
		{name: "array_upper", overloads: []overload{
			{[]types.T{types.ArrayOf(tInt), tInt}, tInt, arrayUpper},
			{[]types.T{types.ArrayOf(tString), tInt}, tInt, arrayUpper},
		}},
		{name: "array_length", overloads: []overload{
			{[]types.T{types.ArrayOf(tInt), tInt}, tInt, arrayUpper},
			{[]types.T{types.ArrayOf(tString), tInt}, tInt, arrayUpper},
		}},
		{name: "cardinality", overloads: []overload{
			{[]types.T{types.ArrayOf(tInt)}, tInt, func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return int64(len(a[0].(types.Array))), nil }},
			{[]types.T{types.ArrayOf(tString)}, tInt, func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return int64(len(a[0].(types.Array))), nil }},
		}},
	} {
		builtins[b.name] = b
	}
}

func constraintDef(s *catalogSnapshot, _ *evalCtx, a []types.Datum) (types.Datum, error) {
	if ck, ok := s.checkByOID(a[0].(int64)); ok {
		return "CHECK (" + ck.Expr + ")", nil
	}
	if ti := s.byOID[a[0].(int64)]; ti != nil {
		if i := int(a[0].(int64) - foreignKeyOID(ti.desc, 0)); i >= 0 && i < len(ti.desc.ForeignKeys) && i < maxFKOIDs {
			return s.e.foreignKeyDef(ti.desc, &ti.desc.ForeignKeys[i]), nil
		}
	}
	ti := s.tableByConstraintOID(a[0].(int64))
	if ti == nil {
		return nil, nil
	}
	var cols []string
	for _, p := range ti.pk {
		cols = append(cols, parser.QuotedIdent(ti.cols[p].Name))
	}
	return "PRIMARY KEY (" + strings.Join(cols, ", ") + ")", nil
}

func arrayToString(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	var parts []string
	for _, d := range a[0].(types.Array) {
		if d != nil {
			parts = append(parts, string(types.FormatText(d)))
		}
	}
	return strings.Join(parts, a[1].(string)), nil
}

func arrayUpper(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	arr := a[0].(types.Array)
	if a[1].(int64) != 1 || len(arr) == 0 {
		return nil, nil
	}
	return int64(len(arr)), nil
}

// catalog returns the catalog snapshot of the execution, computed once.
func (ec *evalCtx) catalog() (*catalogSnapshot, error) {
	st := ec.state()
	if st.cat == nil {
		s, err := ec.exec.catalogSnapshot(currentDB(ec.ctx))
		if err != nil {
			return nil, err
		}
		st.cat = s
	}
	return st.cat, nil
}

func trimOverloads(f func(string, string) string) []overload {
	return []overload{
		{[]types.T{types.String}, types.String, func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return f(a[0].(string), " "), nil }},
		{[]types.T{types.String, types.String}, types.String, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			return f(a[0].(string), a[1].(string)), nil
		}},
	}
}

// sizePretty is pg_size_pretty: bytes, kB, MB, GB, TB, rounding as
// PostgreSQL does (a unit is used from 10240 of the one below).
func sizePretty(n int64) string {
	units := []string{"bytes", "kB", "MB", "GB", "TB", "PB"}
	v := n
	neg := v < 0
	if neg {
		v = -v
	}
	i := 0
	for i < len(units)-1 && v >= 10*1024-512 {
		v = (v + 512) / 1024
		i++
	}
	if neg {
		v = -v
	}
	return strconv.FormatInt(v, 10) + " " + units[i]
}

// procByOID finds the builtin and overload a pg_proc OID names.
func procByOID(oid int64) (string, *overload, bool) {
	for n, b := range builtins {
		base := virtualOID("proc:" + n)
		if i := oid - base; i >= 0 && i < int64(len(b.overloads)) {
			return n, &b.overloads[i], true
		}
	}
	return "", nil, false
}

// arrayCatBuiltin is array || array (a NULL array counts as empty, as in
// PostgreSQL's array_cat).
var arrayCatBuiltin = &builtin{name: "array_cat", nullCall: true, overloads: []overload{{fn: func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	if a[0] == nil && a[1] == nil {
		return nil, nil
	}
	var out types.Array
	for _, d := range a {
		switch v := d.(type) {
		case nil:
		case types.Array:
			out = append(out, v...)
		default:
			out = append(out, v)
		}
	}
	return out, nil
}}}}

// jsonBuildObjectBuiltin is json_build_object(k1, v1, ...): kvnode has no
// JSON type, so the object is returned as its JSON text.
var jsonBuildObjectBuiltin = &builtin{name: "json_build_object", nullCall: true, overloads: []overload{{fn: func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(a); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		if a[i] == nil {
			return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "null value not allowed for object key")
		}
		b.WriteString(strconv.Quote(string(types.FormatText(a[i]))))
		b.WriteString(" : ")
		switch v := a[i+1].(type) {
		case nil:
			b.WriteString("null")
		case int64, float64:
			b.Write(types.FormatText(v))
		case bool:
			b.WriteString(strconv.FormatBool(v))
		default:
			b.WriteString(strconv.Quote(string(types.FormatText(v))))
		}
	}
	b.WriteByte('}')
	return b.String(), nil
}}}}
