package sql

import (
	"bytes"
	"context"
	"hash/fnv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// ALTER TABLE t ADD PRIMARY KEY (cols), for a table created without one
// (keyed by its hidden rowid), as pgbench -i and migration tools send it.
// Release 2.1: it relies on the table's schema fence (schemachange.go).
//
//  1. Hold: a descriptor with a hold (naming the new table ID the rows go
//     to) and a higher fence is committed, and the fence key moved to it.
//     From that log position no write to the table succeeds: writers with
//     an older descriptor fail on the fence, writers with this one wait
//     for the hold to end. Reads go on, from the old rows.
//  2. Copy: the rows are rewritten under the new key into the new ID's
//     span, in batches of conditional puts (a duplicate key fails with
//     23505, an empty key column with 23502). The coordinator renews the
//     hold as it goes.
//  3. Swap: the descriptor under the new ID, without the hold, replaces the
//     held one (conditional on it: a coordinator whose hold was given up
//     fails here with 40001); waiting writers plan again against it. The
//     old rows are deleted; the old ID's fence stays up, so a writer that
//     still has a descriptor from before step 1 can never write there.
//
// A failure in step 2 commits the held descriptor without its hold (the
// fence stays where step 1 put it) and deletes the copy: nothing changed.

const addPKBatchRows = 1000

// addPrimaryKey runs the statement; it returns the swapped descriptor, or
// nothing when IF EXISTS found no table.
func (e *Executor) addPrimaryKey(ctx context.Context, s *parser.AlterTableAddPrimaryKey) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	if !e.fencesActive() {
		active := "an older version"
		if e.cfg.Versions != nil {
			active = e.cfg.Versions.ActiveVersion().String()
		}
		return nil, nil, pgerror.WithHintf(
			unsupported("ALTER TABLE ... ADD PRIMARY KEY needs cluster version %s; the cluster is at %s", clusterversion.V2_1, active),
			"finalize the upgrade to 2.1 (SET CLUSTER SETTING version = '%s'), or create the table with its primary key", clusterversion.V2_1)
	}
	desc, cur, err := e.prepareAddPK(ctx, s)
	if err != nil || desc == nil {
		return nil, nil, err
	}
	n, err := e.cfg.DB.Increment(ctx, keys.TableIDGenKey(), 1)
	if err != nil {
		return nil, nil, kvError(err)
	}
	desc.ID = n + catalog.FirstUserTableID
	stmt := s.String()

	// 1. Hold.
	held, err := e.commitSchema(ctx, stmt, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(cur.Key())
		if !ok || c.ID != cur.ID || c.Version != cur.Version {
			return nil, tableChangedDuringAddPK(cur.Name)
		}
		h := c.Clone()
		h.Version++
		h.WriteFence++
		h.Hold = &catalog.WriteHold{Statement: stmt, NewID: desc.ID, Until: e.holdUntil()}
		h.ModTime = e.catalog.Clock().Now()
		return h, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := e.raiseFence(ctx, held.ID, cur.WriteFence, held.WriteFence); err != nil {
		return nil, nil, e.endHold(ctx, held, err)
	}
	if hook := e.cfg.TestingAddPKHeld; hook != nil {
		hook(ctx)
	}

	// 2. Copy.
	held, err = e.copyUnderNewKey(ctx, held, desc)
	if err != nil {
		return nil, nil, e.endHold(ctx, held, err)
	}

	// 3. Swap.
	swapped, err := e.commitSchema(ctx, stmt, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(held.Key())
		if !ok || c.ID != held.ID || c.Version != held.Version {
			return nil, holdLost(held.Name)
		}
		d := desc.Clone()
		d.Version = c.Version + 1
		d.WriteFence = 0 // the new ID's fence key is absent
		d.Hold = nil
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	if err != nil {
		if errors.Is(err, errHoldLost) {
			e.deleteSpan(ctx, desc.ID)
			return nil, nil, err
		}
		return nil, nil, e.endHold(ctx, held, err)
	}
	var notices []pgwire.Notice
	start, end := rowenc.TableSpan(held.ID)
	if werr := e.cfg.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}}); werr != nil {
		notices = append(notices, warning(pgerror.CodeInternal,
			"the primary key was added, but deleting the table's old rows failed (%v); they are unreachable and only take space", werr))
	}
	return []catalog.TableDescriptor{*swapped}, notices, nil
}

func (e *Executor) holdUntil() int64 {
	return e.catalog.Clock().Now().WallTime + int64(e.holdTTL())
}

var errHoldLost = errors.New("the hold on the table was given up")

func holdLost(name string) error {
	return pgerror.WithHintf(pgerror.WithCode(errors.Wrapf(errHoldLost,
		"restart transaction: ALTER TABLE %q ADD PRIMARY KEY lost its hold on the table's writes (it expired, or the table changed)", name),
		pgerror.CodeSerializationFailure), "run it again; nothing was changed")
}

func tableChangedDuringAddPK(name string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeSerializationFailure, "restart transaction: table %q changed while ADD PRIMARY KEY ran", name),
		"run it again")
}

// endHold gives the hold back after a failure: the held descriptor without
// its hold (its fence is where the hold put it, so no write planned before
// the hold is let through), and the copy deleted. It returns cause.
func (e *Executor) endHold(ctx context.Context, held *catalog.TableDescriptor, cause error) error {
	_, err := e.commitSchema(ctx, "end the hold of "+held.Hold.Statement, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(held.Key())
		if !ok || c.ID != held.ID || c.Version != held.Version {
			return nil, nil // given up by a writer already
		}
		d := c.Clone()
		d.Version++
		d.Hold = nil
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	e.deleteSpan(ctx, held.Hold.NewID)
	if err != nil {
		return errors.WithSecondaryError(cause, err)
	}
	return cause
}

// renewHold extends held's expiry; the table must still be as held left
// it.
func (e *Executor) renewHold(ctx context.Context, held *catalog.TableDescriptor) (*catalog.TableDescriptor, error) {
	return e.commitSchema(ctx, "renew the hold of "+held.Hold.Statement, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(held.Key())
		if !ok || c.ID != held.ID || c.Version != held.Version {
			return nil, holdLost(held.Name)
		}
		d := c.Clone()
		d.Version++
		d.Hold.Until = e.holdUntil()
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
}

// copyUnderNewKey rewrites held's rows under desc's key into desc's span,
// renewing the hold every holdTTL/3; it returns the held descriptor as it
// is after the last renewal.
func (e *Executor) copyUnderNewKey(ctx context.Context, held, desc *catalog.TableDescriptor) (*catalog.TableDescriptor, error) {
	oldTI, err := buildTableInfo(held)
	if err != nil {
		return held, err
	}
	newTI, err := buildTableInfo(desc)
	if err != nil {
		return held, err
	}
	// Map the new layout's columns to the old row's positions.
	from := make([]int, len(newTI.cols))
	for i, c := range newTI.cols {
		from[i] = held.ColumnIndexByID(c.ID)
	}
	release := e.holdRowEncoding()
	defer release()
	renewAt := time.Now().Add(e.holdTTL() / 3)
	_, _, err = e.scanTable(ctx, held.ID, func(batch []kvpb.KeyValue) error {
		if time.Now().After(renewAt) {
			h, err := e.renewHold(ctx, held)
			if err != nil {
				return err
			}
			held, renewAt = h, time.Now().Add(e.holdTTL()/3)
		}
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
	return held, err
}

// prepareAddPK checks the statement and builds the new descriptor (without
// its ID) from the table's current one, which it returns too; nil means IF
// EXISTS found no table.
func (e *Executor) prepareAddPK(ctx context.Context, s *parser.AlterTableAddPrimaryKey) (desc, cur *catalog.TableDescriptor, _ error) {
	db, name, err := e.userTableName(ctx, s.Name, "alter")
	if err != nil {
		return nil, nil, err
	}
	cur, ok := e.catalog.GetTable(db, name)
	if !ok {
		if s.IfExists {
			return nil, nil, nil
		}
		return nil, nil, undefinedTable(name)
	}
	if len(cur.Indexes) > 0 {
		return nil, nil, pgerror.WithHintf(
			unsupported("ALTER TABLE %s ADD PRIMARY KEY on a table with indexes is not supported", name),
			"drop its indexes first (DROP INDEX), add the primary key, then create them again")
	}
	if len(cur.PrimaryKey) != 1 || !cur.Columns[cur.ColumnIndexByID(cur.PrimaryKey[0])].Hidden ||
		!strings.HasPrefix(cur.Columns[cur.ColumnIndexByID(cur.PrimaryKey[0])].Name, "rowid") {
		return nil, nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidTableDefinition, "multiple primary keys for table %q are not allowed", name),
			"ADD PRIMARY KEY works on a table created without a primary key")
	}
	desc = cur.Clone()
	desc.Version++
	rowidPos := desc.ColumnIndexByID(desc.PrimaryKey[0])
	desc.Columns = append(desc.Columns[:rowidPos:rowidPos], desc.Columns[rowidPos+1:]...)
	desc.PrimaryKey = nil
	for _, c := range s.Columns {
		i := desc.ColumnIndex(c)
		if i < 0 || desc.Columns[i].Hidden {
			return nil, nil, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q named in key does not exist", c)
		}
		for _, id := range desc.PrimaryKey {
			if id == desc.Columns[i].ID {
				return nil, nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q appears twice in primary key constraint", c)
			}
		}
		if !rowenc.KeyColumnAllowed(desc.Columns[i].Type) {
			return nil, nil, pgerror.WithHintf(
				unsupported("column %q of type %s cannot be part of a primary key", c, desc.Columns[i].Type),
				"INTERVAL and JSONB values have no key order; key the table by another column")
		}
		desc.Columns[i].Nullable = false
		desc.PrimaryKey = append(desc.PrimaryKey, desc.Columns[i].ID)
	}
	return desc, cur, nil
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
