package kv

import (
	"encoding/binary"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
)

// A command is the payload of one normal Raft entry. Its first byte is the
// command format version so that a later release can change the encoding
// while an older replica still refuses what it cannot read (instead of
// applying it wrongly).
const commandVersion byte = 1

type cmdKind byte

const (
	cmdBatch     cmdKind = 1
	cmdIncrement cmdKind = 2
	// Release 2.1 (txn.go); proposed only once every replica runs 2.1.
	cmdEnableTxns cmdKind = 3
	cmdTxnCommit  cmdKind = 4
	cmdTxnGC      cmdKind = 5 // Snapshot holds the horizon
	// cmdBatch21 is a batch holding an op a 2.0 binary does not know
	// (OpCheck); a 2.0 binary would skip such an op instead of stopping,
	// so the batch travels under a kind it refuses (downgrade.go).
	cmdBatch21 cmdKind = 7
	// cmdTxnGCStep collects a bounded part of the transaction records
	// (txn.go, applyTxnGCStep): Snapshot holds the horizon a new pass
	// collects to (0: only continue a pass in progress), GCRecords and
	// GCBytes bound the records it visits. Proposed at the level of the
	// other transaction commands (downgrade.go); it replaces cmdTxnGC,
	// which a log may still hold and which applies as it always did.
	cmdTxnGCStep cmdKind = 8
	// cmdBulkBatch is a batch of many point writes (bulkBatchMin or more,
	// a COPY's or a multi-row INSERT's) that applies as cmdBatch21 does,
	// except for its write index records: where its keys form few runs
	// it leaves one range record per run instead of records per key
	// (txn.go, bulkRuns; txn/DESIGN.md, "Bulk batches"). Proposed at the
	// level of the transaction commands (downgrade.go).
	cmdBulkBatch cmdKind = 9
)

// bulkBatchMin is the fewest ops of a batch the gateway proposes as
// cmdBulkBatch.
const bulkBatchMin = 64

// command is a decoded entry payload. ID identifies the proposal so that the
// proposing node can hand the result back to its waiter; IDs are random and
// never interpreted by other nodes.
type command struct {
	ID    uint64
	Kind  cmdKind
	Ops   []kvpb.Op
	Key   []byte // cmdIncrement
	Delta int64  // cmdIncrement
	// cmdTxnCommit: the snapshot index and the reads; the writes are Ops.
	Snapshot  uint64
	ReadKeys  [][]byte
	ExistKeys [][]byte
	ReadSpans []kvpb.Span
	// cmdTxnGCStep: at most GCRecords records and GCBytes bytes of their
	// keys are visited (part of the command, not of each node's
	// configuration, so that every replica stops at the same record).
	GCRecords uint64
	GCBytes   uint64
	// cmdCopyStage, cmdCopyPublish, cmdCopyAbort (copy.go): the load, and
	// the publish's count of staged writes or the abort's bound.
	CopyID uint64
	CopyN  uint64
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func (c *command) encode() []byte {
	// Sized up front: a transaction's commit can be tens of MiB, and
	// growing by doubling would copy it several times.
	n := 64 + opsSize(c.Ops)
	for _, k := range c.ReadKeys {
		n += len(k) + binary.MaxVarintLen32
	}
	for _, k := range c.ExistKeys {
		n += len(k) + binary.MaxVarintLen32
	}
	for _, sp := range c.ReadSpans {
		n += len(sp.Start) + len(sp.End) + 2*binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion)
	b = binary.BigEndian.AppendUint64(b, c.ID)
	b = append(b, byte(c.Kind))
	switch c.Kind {
	case cmdBatch, cmdBatch21, cmdBulkBatch:
		b = appendOps(b, c.Ops)
	case cmdIncrement:
		b = appendBytes(b, c.Key)
		b = binary.AppendVarint(b, c.Delta)
	case cmdTxnGC:
		b = binary.AppendUvarint(b, c.Snapshot)
	case cmdTxnGCStep:
		b = binary.AppendUvarint(b, c.Snapshot)
		b = binary.AppendUvarint(b, c.GCRecords)
		b = binary.AppendUvarint(b, c.GCBytes)
	case cmdCopyStage:
		b = binary.AppendUvarint(b, c.CopyID)
		b = appendOps(b, c.Ops)
	case cmdCopyPublish, cmdCopyAbort:
		b = binary.AppendUvarint(b, c.CopyID)
		b = binary.AppendUvarint(b, c.CopyN)
	case cmdTxnCommit:
		b = binary.AppendUvarint(b, c.Snapshot)
		b = binary.AppendUvarint(b, uint64(len(c.ReadKeys)))
		for _, k := range c.ReadKeys {
			b = appendBytes(b, k)
		}
		b = binary.AppendUvarint(b, uint64(len(c.ReadSpans)))
		for _, sp := range c.ReadSpans {
			b = appendBytes(b, sp.Start)
			b = appendBytes(b, sp.End)
		}
		b = appendOps(b, c.Ops)
		b = binary.AppendUvarint(b, uint64(len(c.ExistKeys)))
		for _, k := range c.ExistKeys {
			b = appendBytes(b, k)
		}
	}
	return b
}

// opsSize bounds the bytes appendOps adds for ops.
func opsSize(ops []kvpb.Op) int {
	n := binary.MaxVarintLen64
	for _, op := range ops {
		n += 3 + len(op.Key) + len(op.EndKey) + len(op.Value) + len(op.Expected) + len(op.ElseValue) + 5*binary.MaxVarintLen32
	}
	return n
}

func appendOps(b []byte, ops []kvpb.Op) []byte {
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		var flags byte
		if op.ExpectAbsent {
			flags |= 1
		}
		if op.Delete {
			flags |= 2
		}
		// Bits 4 and 8: release 2.1's present checks, in cmdCopyStage
		// only (validateStage); a 2.0 binary stops at that kind.
		if op.ExpectPresent {
			flags |= 4
		}
		if op.Deferred {
			flags |= 8
		}
		b = append(b, byte(op.Kind), flags)
		b = appendBytes(b, op.Key)
		b = appendBytes(b, op.EndKey)
		b = appendBytes(b, op.Value)
		b = appendBytes(b, op.Expected)
		b = appendBytes(b, op.ElseValue)
		if op.Kind == kvpb.OpApply {
			b = append(b, byte(op.Func))
		}
	}
	return b
}

// count reads a length that cannot exceed the bytes left (every element
// takes at least one byte), so a corrupt length cannot allocate much.
func (d *decoder) count() uint64 {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errCorruptCommand
		return 0
	}
	return n
}

func (d *decoder) ops() []kvpb.Op {
	n := d.count()
	ops := make([]kvpb.Op, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		kind := kvpb.OpKind(d.byte1())
		flags := d.byte1()
		op := kvpb.Op{Kind: kind, ExpectAbsent: flags&1 != 0, Delete: flags&2 != 0,
			ExpectPresent: flags&4 != 0, Deferred: flags&8 != 0}
		op.Key = d.bytes()
		op.EndKey = d.bytes()
		op.Value = d.bytes()
		op.Expected = d.bytes()
		op.ElseValue = d.bytes()
		if kind == kvpb.OpApply {
			op.Func = kvpb.ApplyFunc(d.byte1())
		}
		ops = append(ops, op)
	}
	return ops
}

var errCorruptCommand = errors.New("corrupt Raft command")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorruptCommand
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorruptCommand
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errCorruptCommand
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errCorruptCommand
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func decodeCommand(data []byte) (*command, error) {
	if len(data) < 10 {
		return nil, errCorruptCommand
	}
	if data[0] != commandVersion {
		return nil, errors.Newf("Raft command format %d is unknown to this binary", data[0])
	}
	c := &command{ID: binary.BigEndian.Uint64(data[1:9]), Kind: cmdKind(data[9])}
	d := &decoder{b: data[10:]}
	switch c.Kind {
	case cmdBatch, cmdBatch21, cmdBulkBatch:
		c.Ops = d.ops()
	case cmdIncrement:
		c.Key = d.bytes()
		c.Delta = d.varint()
	case cmdEnableTxns, cmdDisableTxns:
	case cmdTxnGC:
		c.Snapshot = d.uvarint()
	case cmdTxnGCStep:
		c.Snapshot = d.uvarint()
		c.GCRecords = d.uvarint()
		c.GCBytes = d.uvarint()
	case cmdCopyStage:
		c.CopyID = d.uvarint()
		c.Ops = d.ops()
	case cmdCopyPublish, cmdCopyAbort:
		c.CopyID = d.uvarint()
		c.CopyN = d.uvarint()
	case cmdTxnCommit:
		c.Snapshot = d.uvarint()
		n := d.count()
		for i := uint64(0); i < n && d.err == nil; i++ {
			c.ReadKeys = append(c.ReadKeys, d.bytes())
		}
		n = d.count()
		for i := uint64(0); i < n && d.err == nil; i++ {
			c.ReadSpans = append(c.ReadSpans, kvpb.Span{Start: d.bytes(), End: d.bytes()})
		}
		c.Ops = d.ops()
		n = d.count()
		for i := uint64(0); i < n && d.err == nil; i++ {
			c.ExistKeys = append(c.ExistKeys, d.bytes())
		}
	default:
		return nil, errors.Newf("Raft command kind %d is unknown to this binary", c.Kind)
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

// batchKind is the command kind of a batch of ops: cmdBatch21 when one of
// them is release 2.1's OpCheck; cmdBulkBatch, at Level21 (one step above
// the level at which the door accepts it), for bulkBatchMin or more ops
// without a range deletion.
func batchKind(ops []kvpb.Op, level CommandLevel) cmdKind {
	kind, ranges := cmdBatch, false
	for _, op := range ops {
		switch op.Kind {
		case kvpb.OpCheck:
			kind = cmdBatch21
		case kvpb.OpDeleteRange:
			ranges = true
		}
	}
	if len(ops) >= bulkBatchMin && !ranges && level >= Level21 {
		return cmdBulkBatch
	}
	return kind
}

// validateOps checks a batch before it is proposed, so that a malformed
// request fails on the proposer instead of being replicated.
func validateOps(ops []kvpb.Op) error {
	if len(ops) == 0 {
		return errors.New("empty write batch")
	}
	hasRange, hasPoint := false, false
	for i, op := range ops {
		switch op.Kind {
		case kvpb.OpCheck:
			// A check writes nothing; before every range deletion it is
			// decided before any of them is applied.
			if hasRange {
				return errors.AssertionFailedf("op %d: a check must come before the batch's range deletions", i)
			}
		case kvpb.OpPut, kvpb.OpDelete, kvpb.OpInsertOrUpdate, kvpb.OpCPut, kvpb.OpApply:
			hasPoint = true
		case kvpb.OpDeleteRange:
			hasRange = true
			if len(op.EndKey) == 0 || string(op.EndKey) <= string(op.Key) {
				return errors.AssertionFailedf("op %d: DeleteRange needs Key < EndKey", i)
			}
		default:
			return errors.AssertionFailedf("op %d: unknown kind %d", i, op.Kind)
		}
		if len(op.Key) == 0 {
			return errors.AssertionFailedf("op %d: empty key", i)
		}
		if op.ExpectPresent || op.Deferred {
			return errors.AssertionFailedf("op %d: only a COPY's stage checks that a key is present", i)
		}
	}
	if hasRange && hasPoint {
		// applyCommand deletes ranges as it meets them and writes point
		// ops at the end, so a mixed batch would not apply in its order.
		return errors.AssertionFailedf("a batch may not mix DeleteRange with point writes")
	}
	return nil
}
