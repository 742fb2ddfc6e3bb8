package sql

import (
	"context"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// Databases (release 2.1). defaultdb and postgres exist from bootstrap and
// have no descriptor; CREATE DATABASE adds a database record to the catalog
// (catalog.TableDescriptor with IsDatabase), and a table records its
// database (none: defaultdb, which is where every table of an older
// cluster is). Both are committed like any schema change, so a database
// and its tables converge and are ordered with the other DDL through group
// 0. DROP DATABASE installs the tombstones of the database and of its
// tables in one change, then deletes the tables' rows.

// databasesActive reports whether CREATE DATABASE may write a database
// record: a 2.0 binary cannot read one, so it waits until every node runs
// 2.1 and the cluster is finalized to it.
func (e *Executor) databasesActive() bool {
	return e.cfg.Versions != nil && clusterversion.IsActive(e.cfg.Versions, clusterversion.V2_1)
}

func (e *Executor) checkDatabasesActive(stmt string) error {
	if e.databasesActive() {
		return nil
	}
	active := "an older version"
	if e.cfg.Versions != nil {
		active = e.cfg.Versions.ActiveVersion().String()
	}
	return pgerror.WithHintf(
		unsupported("%s needs cluster version %s; the cluster is at %s", stmt, clusterversion.V2_1, active),
		"finalize the upgrade to 2.1 (SET CLUSTER SETTING version = '%s', or let it finalize automatically); "+
			"until then use the databases defaultdb and postgres", clusterversion.V2_1)
}

func (e *Executor) createDatabase(ctx context.Context, s *parser.CreateDatabase) (*catalog.TableDescriptor, error) {
	if err := e.checkDatabasesActive("CREATE DATABASE"); err != nil {
		return nil, err
	}
	if e.catalog.HasDatabase(s.Name) {
		if s.IfNotExists {
			return nil, nil
		}
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeDuplicateDatabase, "database %q already exists", s.Name),
			"use CREATE DATABASE IF NOT EXISTS to ignore an existing one")
	}
	if s.Name == "" {
		return nil, pgerror.Newf(pgerror.CodeInvalidName, "zero-length database name")
	}
	modTime := e.catalog.Clock().Now()
	// Databases take their IDs from the tables' counter: one ID space,
	// so their OIDs never collide with a table's.
	n, err := e.cfg.DB.Increment(ctx, keys.TableIDGenKey(), 1)
	if err != nil {
		return nil, kvError(err)
	}
	return &catalog.TableDescriptor{ID: n + catalog.FirstUserTableID, Name: s.Name, IsDatabase: true,
		Version: 1, ModTime: modTime}, nil
}

// dropDatabase builds the tombstones of the database and of every table
// in it.
func (e *Executor) dropDatabase(s *parser.DropDatabase) ([]catalog.TableDescriptor, error) {
	if err := e.checkDatabasesActive("DROP DATABASE"); err != nil {
		return nil, err
	}
	if catalog.IsBuiltinDatabase(s.Name) {
		return nil, pgerror.WithHintf(
			unsupported("cannot drop the database %s: it exists from bootstrap", s.Name),
			"drop its tables instead (DROP TABLE)")
	}
	db, ok := e.catalog.Get(catalog.DatabaseKey(s.Name))
	if !ok {
		if s.IfExists {
			return nil, nil
		}
		return nil, unknownDatabase(s.Name)
	}
	tables := e.catalog.TablesIn(s.Name)
	// A transaction's new tables in the database (pending records,
	// ddltxn.go) go with it: left pending, a committed one would be
	// published into a dropped database, and come back, rows and all, in
	// the next database of that name. An undecided one's transaction
	// then fails its commit on the fence the drop moves.
	for _, d := range e.catalog.Pending() {
		if d.Database == s.Name {
			tables = append(tables, d)
		}
	}
	if s.Restrict && len(tables) > 0 {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeDependentObjectsStillExist, "database %q is not empty and RESTRICT was specified", s.Name),
			"drop its %d table(s) first, or use DROP DATABASE %s CASCADE", len(tables), parser.QuotedIdent(s.Name))
	}
	ts := e.catalog.Clock().Now()
	var out []catalog.TableDescriptor
	for _, d := range append(tables, db) {
		tomb := d.Clone()
		tomb.Dropped = true
		tomb.Pending = nil
		tomb.Version++
		tomb.ModTime = ts
		out = append(out, *tomb)
	}
	return out, nil
}
