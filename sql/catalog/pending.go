package catalog

// Pending records (release 2.1, txn/DESIGN.md "DDL in a transaction"): a
// transaction that creates tables commits them in three steps, an intent
// in group 0 (the tables as pending records), its decision key with its
// rows in the data group, and the publish in group 0. Whoever meets a
// pending record decides it by the decision key, with Resolve.

// Decision is what a transaction's decision key holds.
type Decision uint8

const (
	// Undecided: the key is absent; the transaction may still commit.
	Undecided Decision = iota
	// Committed: the transaction committed; its pending records are its
	// tables.
	Committed
	// Aborted: the transaction can no longer commit; its pending records
	// are nothing.
	Aborted
)

func (d Decision) String() string {
	switch d {
	case Committed:
		return "committed"
	case Aborted:
		return "aborted"
	}
	return "undecided"
}

// Resolution is what to do with a pending record.
type Resolution uint8

const (
	// Wait: undecided and its owner's promise (Until) still holds; the
	// record is no table yet.
	Wait Resolution = iota
	// Publish: committed; the record is the table (and may be published).
	Publish
	// Drop: aborted; the record is no table (and may be dropped).
	Drop
	// Abort: undecided past Until; the resolver proposes the abort (which
	// races the owner's commit: exactly one wins) and decides again.
	Abort
)

func (r Resolution) String() string {
	return [...]string{"wait", "publish", "drop", "abort"}[r]
}

// Resolve decides a pending record from its transaction's decision key and
// the time now (wall nanoseconds).
func Resolve(p *PendingTxn, d Decision, now int64) Resolution {
	switch d {
	case Committed:
		return Publish
	case Aborted:
		return Drop
	}
	if p != nil && now >= p.Until {
		return Abort
	}
	return Wait
}

// Published returns the record as a live table: the same descriptor
// without Pending, at modification time ts (newer than the pending one, so
// that last-writer-wins installs it everywhere).
//
// A changed existing table becomes its Next (a tombstone for a dropped or
// renamed one).
func (d *TableDescriptor) Published(ts Timestamp) TableDescriptor {
	c := d.Clone()
	if c.Next != nil {
		c = c.Next
	}
	c.Pending = nil
	c.ModTime = ts
	return *c
}

// DroppedPending returns what replaces an aborted pending record, at
// modification time ts: the tombstone of a table the transaction created.
//
// A changed existing table loses its Next and stays as it was.
func (d *TableDescriptor) DroppedPending(ts Timestamp) TableDescriptor {
	c := d.Clone()
	if c.Next != nil {
		c.Next = nil
		c.ModTime = ts
		return *c
	}
	c.Pending = nil
	c.Dropped = true
	c.ModTime = ts
	return *c
}
