package sql

import (
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/types"
)

// The foreign keys of an atomic COPY (txn/DESIGN.md, "An atomic COPY
// outside a transaction", "Foreign keys"): each batch stages, with its
// rows, one present check (kvpb.Op.ExpectPresent) per parent key its rows
// reference that the COPY has not staged yet. The data group checks it
// when the batch is staged (a missing parent: 23503 at once) and again at
// the publish, before anything is written (a parent deleted meanwhile:
// 23503, nothing written). A key of the table being loaded (a
// self-reference) is checked at the publish only, where a row of the same
// COPY counts: PostgreSQL checks a COPY's foreign keys at the end of the
// statement, so a row may reference one that comes later in the data.

// copyFKMemo bounds the parent keys a COPY remembers having staged (about
// 100 bytes each): 1,000,000 rows referencing 1,000 parents stage 1,000
// checks; past the bound each batch still stages each parent it references
// once, and the stage keeps one condition per key.
const copyFKMemo = 1 << 17

// copyFKChecks makes a COPY's present checks.
type copyFKChecks struct {
	ti      *tableInfo
	parents []*fkParent
	staged  map[string]struct{} // parent keys staged by earlier batches
}

// copyChecksFKs reports whether a COPY into ti checks foreign keys: those
// of ti (a COPY only inserts, so the keys that reference ti need nothing).
func (e *Executor) copyChecksFKs(ti *tableInfo) bool {
	return e.fencesActive() && len(ti.desc.ForeignKeys) > 0
}

// referencesItself reports whether one of d's foreign keys references d.
func referencesItself(d *catalog.TableDescriptor) bool {
	for _, fk := range d.ForeignKeys {
		if fk.RefTable == d.ID {
			return true
		}
	}
	return false
}

func (e *Executor) newCopyFKChecks(ti *tableInfo) (*copyFKChecks, error) {
	c := &copyFKChecks{ti: ti, staged: map[string]struct{}{}}
	for i := range ti.desc.ForeignKeys {
		p, err := e.fkParentOf(&ti.desc.ForeignKeys[i])
		if err != nil {
			return nil, err
		}
		c.parents = append(c.parents, p)
	}
	return c, nil
}

// copyFKBatch is the checks of one batch: the key of each, with the
// foreign key that made it.
type copyFKBatch map[string]*fkParent

// appendChecks appends to ops the present checks of rows' parents that
// neither this batch nor an earlier one checks.
func (c *copyFKChecks) appendChecks(ops []kvpb.Op, rows [][]types.Datum) ([]kvpb.Op, copyFKBatch, error) {
	batch := copyFKBatch{}
	for _, row := range rows {
		for _, p := range c.parents {
			vals, full := values(c.ti.desc, row, p.fk.Columns)
			if !full {
				continue // MATCH SIMPLE: a NULL in the key checks nothing
			}
			if p.desc == nil {
				return nil, nil, fkMissing(c.ti.desc, p.fk, vals, p.name())
			}
			key, err := p.key(vals)
			if err != nil {
				return nil, nil, err
			}
			if _, ok := batch[string(key)]; ok {
				continue
			}
			if _, ok := c.staged[string(key)]; ok {
				continue
			}
			batch[string(key)] = p
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCheck, Key: key, ExpectPresent: true, Deferred: p.desc.ID == c.ti.desc.ID})
		}
	}
	return ops, batch, nil
}

// staged records that the batch's checks were staged.
func (c *copyFKChecks) stagedBatch(batch copyFKBatch) {
	for k := range batch {
		if len(c.staged) >= copyFKMemo {
			return
		}
		c.staged[k] = struct{}{}
	}
}

// violation returns the 23503 of a present check on key that failed, if
// key is a parent key of one of the table's foreign keys (p, if known).
func (c *copyFKChecks) violation(key []byte, p *fkParent) (error, bool) {
	parents := c.parents
	if p != nil {
		parents = []*fkParent{p}
	}
	for _, p := range parents {
		if vals, ok := p.decode(key); ok {
			return fkMissing(c.ti.desc, p.fk, vals, p.name()), true
		}
	}
	return nil, false
}
