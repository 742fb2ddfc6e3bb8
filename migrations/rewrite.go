package migrations

import (
	"context"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
)

// rewriteRowsV2 is the 1.1 migration. It walks every table row in key
// order, in batches, and rewrites v1 values as v2 with a conditional put on
// the exact old bytes: a row a client changed meanwhile is simply read
// again in the next batch (writers already write v2 at this step, so such a
// row needs nothing). The resume key is the last key handled.
func rewriteRowsV2(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
	if d.UpgradeRow == nil {
		return errors.AssertionFailedf("the 1.1 migration needs Deps.UpgradeRow")
	}
	return rewriteRows(ctx, d, d.UpgradeRow, from, checkpoint)
}

// rewriteRows rewrites every table row with rewrite (which reports whether
// it changed the value), in key order and batches, from the checkpoint.
func rewriteRows(ctx context.Context, d Deps, rewrite func(key, value []byte) ([]byte, bool, error),
	from Progress, checkpoint func(Progress) error) error {
	batch := d.BatchSize
	if batch <= 0 {
		batch = 500
	}
	start, end := d.TableSpan[0], d.TableSpan[1]
	p := from
	if p.Total == 0 {
		n, err := countRows(ctx, d.DB, start, end)
		if err != nil {
			return err
		}
		p.Total = n
		if err := checkpoint(p); err != nil {
			return err
		}
	}
	if len(p.Resume) > 0 {
		start = append(append([]byte(nil), p.Resume...), 0) // just after the last key handled
	}
	for {
		kvs, err := d.DB.Scan(ctx, start, end, batch, false)
		if err != nil {
			return err
		}
		if len(kvs) == 0 {
			return checkpoint(p)
		}
		var ops []kvpb.Op
		for _, e := range kvs {
			nv, changed, err := rewrite(e.Key, e.Value)
			if err != nil {
				return errors.Wrapf(err, "row %x", e.Key)
			}
			if changed {
				ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: e.Key, Value: nv, Expected: e.Value})
			}
		}
		if err := writeEach(ctx, d.DB, ops); err != nil {
			return err
		}
		last := kvs[len(kvs)-1].Key
		p.Resume = append([]byte(nil), last...)
		p.Done += int64(len(kvs))
		if p.Done > p.Total {
			p.Total = p.Done // rows inserted since the count
		}
		if err := checkpoint(p); err != nil {
			return err
		}
		start = append(append([]byte(nil), last...), 0)
	}
}

// writeEach applies the conditional puts of one batch together, falling back
// to one at a time when a row changed under us (that row is then left as the
// client wrote it: already v2).
func writeEach(ctx context.Context, db kvpb.DB, ops []kvpb.Op) error {
	if len(ops) == 0 {
		return nil
	}
	err := db.Write(ctx, ops)
	var cf *kvpb.ConditionFailedError
	if !errors.As(err, &cf) {
		return err
	}
	for _, op := range ops {
		if err := db.Write(ctx, []kvpb.Op{op}); err != nil && !errors.As(err, &cf) {
			return err
		}
	}
	return nil
}

func countRows(ctx context.Context, db kvpb.DB, start, end []byte) (int64, error) {
	var n int64
	for {
		kvs, err := db.Scan(ctx, start, end, 1000, false)
		if err != nil {
			return 0, err
		}
		n += int64(len(kvs))
		if len(kvs) < 1000 {
			return n, nil
		}
		start = append(append([]byte(nil), kvs[len(kvs)-1].Key...), 0)
	}
}

// upgradeGroup0 is the 2.0 migration: the group 0 upgrade procedure, which
// the server injects (package group0 holds it; Deps.Group0Upgrade is nil
// only in tests of this package).
func upgradeGroup0(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
	if d.Group0Upgrade == nil {
		return checkpoint(Progress{Done: 1, Total: 1})
	}
	if err := d.Group0Upgrade(ctx); err != nil {
		return err
	}
	return checkpoint(Progress{Done: 1, Total: 1})
}
