package sql

import (
	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// SpanSizer estimates the bytes this node's store takes on disk for a span
// of replicated keys (storage.Engine.EstimateReplicatedSize: Pebble's
// estimate, which leaves out writes not yet flushed from the memtable).
type SpanSizer interface {
	EstimateReplicatedSize(start, end []byte) (uint64, error)
}

// The size functions (pg_relation_size, pg_table_size, pg_indexes_size,
// pg_total_relation_size, pg_database_size) answer from the key spans
// kvnode stores a relation in, on this node's replica of the data: a table
// is its rows (its primary key holds them, so the primary key index adds
// nothing of its own), a secondary index its entries. Like PostgreSQL's,
// they are sizes on disk, estimated, not counts of live data. Without a
// SpanSizer (tests over the in-memory store) they answer 0.

func (e *Executor) spanSize(start, end []byte) (int64, error) {
	if e.cfg.Sizes == nil {
		return 0, nil
	}
	n, err := e.cfg.Sizes.EstimateReplicatedSize(start, end)
	if err != nil {
		return 0, pgerror.WithCode(errors.Wrap(err, "estimating the size on disk"), pgerror.CodeInternal)
	}
	return int64(n), nil
}

// relationSizes returns the size of relation oid's own data (a table's
// rows, an index's entries) when own is asked, and of its secondary indexes
// when indexes is (each estimate reads the store's metadata, and psql's
// \dt+ asks one per table); ok is false when no relation of the database
// has that OID (the functions then answer NULL, as PostgreSQL does).
func (e *Executor) relationSizes(s *catalogSnapshot, oid int64, own, indexes bool) (ownSize, indexSize int64, ok bool, err error) {
	if ti := s.tableByOID(oid); ti != nil {
		if own {
			if ownSize, err = e.spanSize(keys.TableSpan(ti.desc.ID)); err != nil {
				return 0, 0, false, err
			}
		}
		if indexes {
			if indexSize, err = e.spanSize(keys.TableIndexesSpan(ti.desc.ID)); err != nil {
				return 0, 0, false, err
			}
		}
		return ownSize, indexSize, true, nil
	}
	if ci := s.indexByOID(oid); ci != nil {
		if ci.ii == nil || !own {
			return 0, 0, true, nil // the primary key is the table's rows
		}
		ownSize, err = e.spanSize(keys.IndexSpan(ci.ti.desc.ID, ci.ii.desc.ID))
		return ownSize, 0, err == nil, err
	}
	if _, ok := s.virtByOID[oid]; ok {
		return 0, 0, true, nil // computed, never stored
	}
	return 0, 0, false, nil
}

// sizeFn is a size function of a relation OID: the sum of its own data's
// size (own) and its secondary indexes' (indexes), as asked.
func sizeFn(own, indexes bool) func(*evalCtx, []types.Datum) (types.Datum, error) {
	return catalogFn(func(s *catalogSnapshot, ec *evalCtx, a []types.Datum) (types.Datum, error) {
		o, i, ok, err := ec.exec.relationSizes(s, a[0].(int64), own, indexes)
		if err != nil || !ok {
			return nil, err
		}
		return o + i, nil
	})
}

// relationForkSize is pg_relation_size(oid, fork): kvnode's relations have
// the main fork only.
func relationForkSize(ec *evalCtx, a []types.Datum) (types.Datum, error) {
	switch fork := a[1].(string); fork {
	case "main":
		return sizeFn(true, false)(ec, a[:1])
	case "fsm", "vm", "init":
		s, err := ec.catalog()
		if err != nil {
			return nil, err
		}
		if _, _, ok, err := ec.exec.relationSizes(s, a[0].(int64), false, false); err != nil || !ok {
			return nil, err
		}
		return int64(0), nil
	default:
		return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "invalid fork name"),
			"valid fork names are \"main\", \"fsm\", \"vm\", and \"init\"")
	}
}

// databaseSize is pg_database_size(name or OID): the rows and index entries
// of every table of the database.
func databaseSize(ec *evalCtx, a []types.Datum) (types.Datum, error) {
	e := ec.exec
	var db string
	switch v := a[0].(type) {
	case string:
		db = v
		if !e.catalog.HasDatabase(db) {
			return nil, pgerror.Newf(pgerror.CodeInvalidCatalogName, "database %q does not exist", db)
		}
	case int64:
		switch v {
		case oidDBDefaultdb:
			db = catalog.DefaultDatabase
		case oidDBPostgres:
			db = "postgres"
		default:
			for _, d := range e.catalog.Databases() {
				if tableOID(d) == v {
					db = d.Name
				}
			}
			if db == "" {
				return nil, nil // PostgreSQL: NULL for an OID that is no database's
			}
		}
	}
	var total int64
	for _, d := range e.catalog.TablesIn(db) {
		rows, err := e.spanSize(keys.TableSpan(d.ID))
		if err != nil {
			return nil, err
		}
		idx, err := e.spanSize(keys.TableIndexesSpan(d.ID))
		if err != nil {
			return nil, err
		}
		total += rows + idx
	}
	return total, nil
}
