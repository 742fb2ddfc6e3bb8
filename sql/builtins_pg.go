package sql

import (
	"context"
	"fmt"
	"runtime"
	"strings"

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
