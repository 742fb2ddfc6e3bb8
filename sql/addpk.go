package sql

import (
	"bytes"
	"context"
	"hash/fnv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// ALTER TABLE t ADD PRIMARY KEY (cols), for a table created without one
// (keyed by its hidden rowid), as pgbench -i and migration tools send it.
//
// The rows are rewritten under the new key into a new table ID's key span,
// in batches of conditional puts (a duplicate key fails with 23505, an
// empty key column with 23502, and the new span is deleted: nothing
// changes); then the old span is read again and must be exactly what was
// copied (otherwise 40001: something wrote to the table meanwhile); then
// the descriptor, under the new ID, replaces the old one through the
// normal DDL path, and the old span is deleted. The table is readable
// throughout. It is not an online schema change: a write to the table
// between the verification and the descriptor change would be lost, so run
// it when nothing writes to the table (as pgbench -i and schema migrations
// do); CockroachDB's ALTER PRIMARY KEY job is the model for lifting that.

const addPKBatchRows = 1000

// addPKState is what the rewrite prepared for the descriptor change.
type addPKState struct {
	oldID, oldVersion int64
	desc              *catalog.TableDescriptor // the new descriptor, without ModTime
}

// prepareAddPK rewrites the rows; nil state means IF EXISTS found no table.
func (e *Executor) prepareAddPK(ctx context.Context, s *parser.AlterTableAddPrimaryKey) (*addPKState, error) {
	db, name, err := e.userTableName(ctx, s.Name, "alter")
	if err != nil {
		return nil, err
	}
	cur, ok := e.catalog.GetTable(db, name)
	if !ok {
		if s.IfExists {
			return nil, nil
		}
		return nil, undefinedTable(name)
	}
	if len(cur.PrimaryKey) != 1 || !cur.Columns[cur.ColumnIndexByID(cur.PrimaryKey[0])].Hidden ||
		!strings.HasPrefix(cur.Columns[cur.ColumnIndexByID(cur.PrimaryKey[0])].Name, "rowid") {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidTableDefinition, "multiple primary keys for table %q are not allowed", name),
			"ADD PRIMARY KEY works on a table created without a primary key")
	}
	desc := cur.Clone()
	desc.Version++
	rowidPos := desc.ColumnIndexByID(desc.PrimaryKey[0])
	desc.Columns = append(desc.Columns[:rowidPos:rowidPos], desc.Columns[rowidPos+1:]...)
	desc.PrimaryKey = nil
	for _, c := range s.Columns {
		i := desc.ColumnIndex(c)
		if i < 0 || desc.Columns[i].Hidden {
			return nil, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q named in key does not exist", c)
		}
		for _, id := range desc.PrimaryKey {
			if id == desc.Columns[i].ID {
				return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q appears twice in primary key constraint", c)
			}
		}
		if !rowenc.KeyColumnAllowed(desc.Columns[i].Type) {
			return nil, pgerror.WithHintf(
				unsupported("column %q of type %s cannot be part of a primary key", c, desc.Columns[i].Type),
				"INTERVAL and JSONB values have no key order; key the table by another column")
		}
		desc.Columns[i].Nullable = false
		desc.PrimaryKey = append(desc.PrimaryKey, desc.Columns[i].ID)
	}
	oldTI, err := buildTableInfo(cur)
	if err != nil {
		return nil, err
	}
	n, err := e.cfg.DB.Increment(ctx, keys.TableIDGenKey(), 1)
	if err != nil {
		return nil, kvError(err)
	}
	desc.ID = n + catalog.FirstUserTableID
	newTI, err := buildTableInfo(desc)
	if err != nil {
		return nil, err
	}
	// Map the new layout's columns to the old row's positions.
	from := make([]int, len(newTI.cols))
	for i, c := range newTI.cols {
		from[i] = cur.ColumnIndexByID(c.ID)
	}
	cleanup := func(err error) (*addPKState, error) {
		start, end := rowenc.TableSpan(desc.ID)
		if derr := e.cfg.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}}); derr != nil {
			err = errors.WithDetailf(err, "deleting the partial copy failed too (%v); it is unreachable and only takes space", derr)
		}
		return nil, err
	}
	release := e.holdRowEncoding()
	defer release()
	copied, sum, err := e.scanTable(ctx, cur.ID, func(batch []kvpb.KeyValue) error {
		ops := make([]kvpb.Op, 0, len(batch))
		rows := make([][]types.Datum, 0, len(batch))
		seen := make(map[string]bool, len(batch))
		for _, kv := range batch {
			old, extra, err := oldTI.layout.Decode(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			row := make([]types.Datum, len(newTI.cols))
			for i, j := range from {
				row[i] = old[j]
			}
			if err := checkNotNull(newTI, row); err != nil {
				return err
			}
			key, err := newTI.layout.EncodeKey(row)
			if err != nil {
				return err
			}
			if seen[string(key)] {
				return duplicateKey(newTI, row)
			}
			seen[string(key)] = true
			val, err := e.encodeRow(newTI, key, row, extra)
			if err != nil {
				return err
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: key, Value: val, ExpectAbsent: true})
			rows = append(rows, row)
		}
		if err := e.cfg.DB.Write(ctx, ops); err != nil {
			var cf *kvpb.ConditionFailedError
			if errors.As(err, &cf) {
				for i := range ops {
					if bytes.Equal(ops[i].Key, cf.Key) {
						return duplicateKey(newTI, rows[i])
					}
				}
				return pgerror.WithCode(errors.Wrap(err, "rewriting rows"), pgerror.CodeUniqueViolation)
			}
			return kvError(err)
		}
		return nil
	})
	if err != nil {
		return cleanup(err)
	}
	// Anything written to the table meanwhile would be lost: check that
	// the old span is still exactly what was copied.
	again, sum2, err := e.scanTable(ctx, cur.ID, func([]kvpb.KeyValue) error { return nil })
	if err != nil {
		return cleanup(err)
	}
	if again != copied || sum2 != sum {
		return cleanup(pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeSerializationFailure, "rows of %q changed while ADD PRIMARY KEY rewrote them", name),
			"run it again when nothing writes to the table"))
	}
	return &addPKState{oldID: cur.ID, oldVersion: cur.Version, desc: desc}, nil
}

// scanTable reads a table's rows in batches, in key order, and returns
// their number and a hash of their keys and values.
func (e *Executor) scanTable(ctx context.Context, id int64, fn func([]kvpb.KeyValue) error) (int64, uint64, error) {
	start, end := rowenc.TableSpan(id)
	h := fnv.New64a()
	var n int64
	for {
		batch, err := e.cfg.DB.Scan(ctx, start, end, addPKBatchRows, false)
		if err != nil {
			return 0, 0, kvError(err)
		}
		for _, kv := range batch {
			h.Write(kv.Key)
			h.Write([]byte{0})
			h.Write(kv.Value)
		}
		n += int64(len(batch))
		if len(batch) == 0 {
			return n, h.Sum64(), nil
		}
		if err := fn(batch); err != nil {
			return 0, 0, err
		}
		if len(batch) < addPKBatchRows {
			return n, h.Sum64(), nil
		}
		start = append(append([]byte(nil), batch[len(batch)-1].Key...), 0)
	}
}

// addPrimaryKey is the descriptor change, built against the catalog as it
// is now: the table must be the one whose rows were rewritten.
func (e *Executor) addPrimaryKey(st *addPKState) (*catalog.TableDescriptor, error) {
	if st == nil {
		return nil, nil
	}
	cur, ok := e.catalog.Get(st.desc.Key())
	if !ok || cur.ID != st.oldID || cur.Version != st.oldVersion {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeSerializationFailure, "table %q changed while ADD PRIMARY KEY rewrote its rows", st.desc.Name),
			"run it again")
	}
	d := st.desc.Clone()
	d.ModTime = e.catalog.Clock().Now()
	return d, nil
}
