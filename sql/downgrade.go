package sql

import (
	"fmt"

	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/types"
)

// DowngradeBlocker is something in the schema that a downgrade cannot
// take to the previous release, with the statement that removes it.
type DowngradeBlocker struct {
	Reason, Fix string
}

// Release21Blockers lists what a downgrade from 2.1 to 2.0 refuses up
// front: columns of the types and type modifiers of release 2.1, whose
// descriptors and row values a 2.0 binary cannot read
// (types.NewInRelease21), and CHECK constraints, which a 2.0 binary would
// not enforce (rows written then would break them once the cluster is at
// 2.1 again), and databases other than defaultdb and postgres: release 2.0
// has no database records and would take a live one, and the tables in it,
// for tables of defaultdb no one can name (their tombstones, once the
// database is dropped, are harmless: catalog.TableDescriptor). Release
// 2.1's other stored formats add their entries here. Users, roles and
// grants are not listed: a 2.0 binary never reads their keys, so they stay,
// dormant (migrations/DESIGN.md). Pending records of a transaction's new
// tables (sql/ddltxn.go) are listed: a 2.0 binary would read them as live
// tables.
func (e *Executor) Release21Blockers() []DowngradeBlocker {
	var out []DowngradeBlocker
	for _, d := range e.catalog.TablesIn(catalog.DefaultDatabase) {
		for _, ck := range d.Checks {
			out = append(out, DowngradeBlocker{
				Reason: fmt.Sprintf("table %s has the CHECK constraint %s (%s), which release 2.0 would not enforce", d.Name, ck.Name, ck.Expr),
				Fix:    fmt.Sprintf("DROP TABLE %s (copy its rows out first), or keep the cluster at 2.1", d.Name),
			})
		}
		for _, fk := range d.ForeignKeys {
			out = append(out, DowngradeBlocker{
				Reason: fmt.Sprintf("table %s has the foreign key %s, which release 2.0 would not enforce", d.Name, fk.Name),
				Fix:    fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, or keep the cluster at 2.1", parser.QuotedIdent(d.Name), parser.QuotedIdent(fk.Name)),
			})
		}
		for _, ix := range d.Indexes {
			out = append(out, DowngradeBlocker{
				Reason: fmt.Sprintf("table %s has the index %s, which release 2.0 would not keep up to date", d.Name, ix.Name),
				Fix:    fmt.Sprintf("DROP INDEX %s@%s, or keep the cluster at 2.1", parser.QuotedIdent(d.Name), parser.QuotedIdent(ix.Name)),
			})
		}
		if d.Hold != nil {
			out = append(out, DowngradeBlocker{
				Reason: fmt.Sprintf("table %s is being rewritten by %s", d.Name, d.Hold.Statement),
				Fix:    "wait for it to finish (its hold expires if its node stopped), then run the downgrade again",
			})
		}
		for _, c := range d.Columns {
			if !types.NewInRelease21(c.Type, c.Mod) {
				continue
			}
			out = append(out, DowngradeBlocker{
				Reason: fmt.Sprintf("column %s.%s is of type %s, which release 2.0 cannot read", d.Name, c.Name,
					types.ColumnTypeString(c.Type, c.Mod)),
				Fix: fmt.Sprintf("DROP TABLE %s (copy its rows out first), or keep the cluster at 2.1", d.Name),
			})
		}
	}
	for _, d := range e.catalog.Pending() {
		// A 2.0 binary would take a pending record for a table.
		out = append(out, DowngradeBlocker{
			Reason: fmt.Sprintf("a transaction's schema change is being resolved: table %s is pending (transaction %s)", d.Name, d.PendingOf().Txn),
			Fix:    "wait 30 s (the resolver publishes or drops it) and run the downgrade again",
		})
	}
	for _, db := range e.catalog.Databases() {
		out = append(out, DowngradeBlocker{
			Reason: fmt.Sprintf("database %s exists (%d tables), which release 2.0 cannot represent: it has only defaultdb and postgres",
				db.Name, len(e.catalog.TablesIn(db.Name))),
			Fix: fmt.Sprintf("DROP DATABASE %s CASCADE (copy its tables' rows out first, for example into defaultdb), or keep the cluster at 2.1",
				parser.QuotedIdent(db.Name)),
		})
	}
	return out
}
