package catalog

import (
	"encoding/json"
	"testing"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/types"
)

// TestPendingHidden: a pending record is no table for Get, GetTable,
// TablesIn and Tables; GetAny and Pending find it; its publish and its
// drop (newer ModTimes) replace it through Merge, and a pending record
// never replaces a newer one.
func TestPendingHidden(t *testing.T) {
	ts := func(w int64) Timestamp { return Timestamp{WallTime: w, NodeID: 1} }
	c, _ := newCatalog(t, 5)
	pub := mkDesc("pub", 101, ts(10), "k")
	pend := mkDesc("new", 102, ts(11), "k")
	pend.Pending = &PendingTxn{Txn: "ab", Node: nodeid.ID(2), Until: 1000}
	if _, err := c.Merge([]TableDescriptor{pub, pend}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("new"); ok {
		t.Fatal("Get found a pending record")
	}
	if _, ok := c.GetTable("", "new"); ok {
		t.Fatal("GetTable found a pending record")
	}
	for _, d := range append(c.Tables(), c.TablesIn(DefaultDatabase)...) {
		if d.Name == "new" {
			t.Fatal("Tables/TablesIn listed a pending record")
		}
	}
	if d, ok := c.GetAny("new"); !ok || d.Pending == nil || d.Pending.Txn != "ab" {
		t.Fatalf("GetAny = %+v, %v; want the pending record", d, ok)
	}
	if d, ok := c.GetAny("pub"); !ok || d.ID != 101 {
		t.Fatal("GetAny did not find a live table")
	}
	if p := c.Pending(); len(p) != 1 || p[0].Name != "new" {
		t.Fatalf("Pending = %v", p)
	}
	// The pending record survives the JSON round trip of group 0 and the
	// local store.
	b, err := json.Marshal(pend)
	if err != nil {
		t.Fatal(err)
	}
	var back TableDescriptor
	if err := json.Unmarshal(b, &back); err != nil || back.Pending == nil || *back.Pending != *pend.Pending {
		t.Fatalf("round trip: %+v, %v", back.Pending, err)
	}
	// An older pending record does not replace the published table.
	d, _ := c.GetAny("new")
	published := d.Published(ts(12))
	if _, err := c.Merge([]TableDescriptor{published}); err != nil {
		t.Fatal(err)
	}
	if changed, err := c.Merge([]TableDescriptor{pend}); err != nil || changed {
		t.Fatalf("an older pending record replaced the published table (changed=%v, err=%v)", changed, err)
	}
	if g, ok := c.Get("new"); !ok || g.Pending != nil || g.ID != 102 {
		t.Fatalf("after publish Get = %+v, %v", g, ok)
	}
	if len(c.Pending()) != 0 {
		t.Fatal("a published table is still pending")
	}
	// A drop makes a tombstone: GetAny no longer finds it, and a
	// reloaded catalog agrees.
	other := mkDesc("gone", 103, ts(13), "k")
	other.Pending = &PendingTxn{Txn: "cd", Node: 1, Until: 5}
	if _, err := c.Merge([]TableDescriptor{other}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Merge([]TableDescriptor{other.DroppedPending(ts(14))}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.GetAny("gone"); ok {
		t.Fatal("GetAny found a dropped pending record")
	}
	if rec, ok := c.GetRecord("gone"); !ok || !rec.Dropped || rec.Pending != nil {
		t.Fatalf("the drop left %+v", rec)
	}
}

// TestResolve is the resolution of a pending record as a function of its
// decision key and the time.
func TestResolve(t *testing.T) {
	p := &PendingTxn{Txn: "ab", Node: 1, Until: 100}
	for _, tc := range []struct {
		d    Decision
		now  int64
		want Resolution
	}{
		{Committed, 50, Publish},
		{Committed, 500, Publish},
		{Aborted, 50, Drop},
		{Aborted, 500, Drop},
		{Undecided, 50, Wait},
		{Undecided, 99, Wait},
		{Undecided, 100, Abort},
		{Undecided, 500, Abort},
	} {
		if got := Resolve(p, tc.d, tc.now); got != tc.want {
			t.Errorf("Resolve(until 100, %s, now %d) = %s, want %s", tc.d, tc.now, got, tc.want)
		}
	}
}

// TestPendingNext: an existing table with a transaction's pending change
// (Next) stays the public table for every lookup, is listed by Pending
// with its transaction (PendingOf), survives the JSON round trip, and
// becomes its Next when published (a tombstone for a DROP) or stays as it
// was when the change is dropped.
func TestPendingNext(t *testing.T) {
	ts := func(w int64) Timestamp { return Timestamp{WallTime: w, NodeID: 1} }
	c, _ := newCatalog(t, 5)
	pub := mkDesc("t", 101, ts(10), "k")
	pub.WriteFence = 3
	changed := pub
	next := pub.Clone()
	next.Columns = append(next.Columns, ColumnDescriptor{ID: 9, Name: "added", Type: types.Int, Nullable: true})
	next.NextColumnID = 10
	next.Version++
	next.WriteFence++
	next.Pending = &PendingTxn{Txn: "ef", Node: 1, Until: 1000}
	changed.Next = next
	changed.ModTime = ts(11)
	if _, err := c.Merge([]TableDescriptor{changed}); err != nil {
		t.Fatal(err)
	}
	g, ok := c.Get("t")
	if !ok || g.Version != pub.Version || g.WriteFence != 3 || g.ColumnIndex("added") >= 0 {
		t.Fatalf("Get of a table with a pending change = %+v, %v; want the public version", g, ok)
	}
	if p := c.Pending(); len(p) != 1 || p[0].PendingOf() == nil || p[0].PendingOf().Txn != "ef" {
		t.Fatalf("Pending = %v", p)
	}
	b, err := json.Marshal(changed)
	if err != nil {
		t.Fatal(err)
	}
	var back TableDescriptor
	if err := json.Unmarshal(b, &back); err != nil || back.Next == nil || back.Next.PendingOf().Txn != "ef" ||
		back.Next.ColumnIndex("added") < 0 || back.Next.Name != "t" {
		t.Fatalf("round trip: %+v, %v", back.Next, err)
	}
	// Dropped: the public version again, newer, nothing pending.
	dropped := g.DroppedPending(ts(12))
	if dropped.Next != nil || dropped.Dropped || dropped.Version != pub.Version || dropped.ModTime != ts(12) {
		t.Fatalf("DroppedPending = %+v", dropped)
	}
	// Published: the pending version, settled.
	published := g.Published(ts(12))
	if published.Pending != nil || published.Next != nil || published.ColumnIndex("added") < 0 || published.WriteFence != 4 {
		t.Fatalf("Published = %+v", published)
	}
	if _, err := c.Merge([]TableDescriptor{published}); err != nil {
		t.Fatal(err)
	}
	if g, ok := c.Get("t"); !ok || g.ColumnIndex("added") < 0 || len(c.Pending()) != 0 {
		t.Fatalf("after publish Get = %+v, %v, pending %v", g, ok, c.Pending())
	}
	// A pending DROP publishes a tombstone.
	g, _ = c.Get("t")
	rec := g.Clone()
	tomb := g.Clone()
	tomb.Dropped = true
	tomb.Pending = &PendingTxn{Txn: "01", Node: 1, Until: 1000}
	rec.Next = tomb
	rec.ModTime = ts(13)
	if _, err := c.Merge([]TableDescriptor{*rec}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("t"); !ok {
		t.Fatal("a pending DROP hid the table before its decision")
	}
	if _, err := c.Merge([]TableDescriptor{rec.Published(ts(14))}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("t"); ok {
		t.Fatal("a published DROP left the table")
	}
}
