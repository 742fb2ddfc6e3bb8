package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// memStore is an in-memory LocalStore with an optional failure injection.
type memStore struct {
	mu      sync.Mutex
	m       map[string][]byte
	failPut error
	puts    int
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Get(key []byte) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(key)]
	return v, ok, nil
}

func (s *memStore) Put(key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPut != nil {
		return s.failPut
	}
	s.puts++
	s.m[string(key)] = append([]byte(nil), value...)
	return nil
}

func (s *memStore) Scan(prefix []byte) ([]kvpb.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []kvpb.KeyValue
	for k, v := range s.m {
		if bytes.HasPrefix([]byte(k), prefix) {
			out = append(out, kvpb.KeyValue{Key: []byte(k), Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out, nil
}

// manualClock is a physical clock the test moves by hand.
type manualClock struct{ now int64 }

func (m *manualClock) read() int64 { return m.now }

func TestTimestampLess(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Timestamp
		less bool
	}{
		{"wall", Timestamp{1, 5, 9}, Timestamp{2, 0, 1}, true},
		{"logical", Timestamp{1, 1, 9}, Timestamp{1, 2, 1}, true},
		{"node breaks ties", Timestamp{1, 1, 1}, Timestamp{1, 1, 2}, true},
		{"equal", Timestamp{1, 1, 1}, Timestamp{1, 1, 1}, false},
		{"greater", Timestamp{3, 0, 0}, Timestamp{2, 9, 9}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Less(tc.b); got != tc.less {
				t.Fatalf("%v < %v = %v", tc.a, tc.b, got)
			}
		})
	}
}

func TestClock(t *testing.T) {
	mc := &manualClock{now: 100}
	c := NewClock(mc.read, func() nodeid.ID { return 3 })
	a := c.Now()
	b := c.Now() // same wall time: logical ticks
	if !a.Less(b) || b.Logical != 1 || b.NodeID != 3 {
		t.Fatalf("a=%v b=%v", a, b)
	}
	mc.now = 50 // wall clock goes backwards: still monotonic
	if d := c.Now(); !b.Less(d) {
		t.Fatalf("not monotonic: %v then %v", b, d)
	}
	c.Update(Timestamp{WallTime: 1000, Logical: 7, NodeID: 9})
	e := c.Now()
	if !(Timestamp{WallTime: 1000, Logical: 7, NodeID: 9}).Less(e) {
		t.Fatalf("Now after Update(1000.7) = %v", e)
	}
	c.Update(Timestamp{WallTime: 10}) // an old timestamp changes nothing
	if f := c.Now(); !e.Less(f) {
		t.Fatalf("%v then %v", e, f)
	}
}

func mkDesc(name string, id int64, ts Timestamp, cols ...string) TableDescriptor {
	d := TableDescriptor{ID: id, Name: name, Version: 1, ModTime: ts}
	for i, c := range cols {
		d.Columns = append(d.Columns, ColumnDescriptor{ID: int32(i + 1), Name: c, Type: types.Int, Nullable: i > 0})
	}
	d.PrimaryKey = []int32{1}
	d.NextColumnID = int32(len(cols) + 1)
	return d
}

func tombstone(d TableDescriptor, ts Timestamp) TableDescriptor {
	d = *d.Clone()
	d.Dropped = true
	d.Version++
	d.ModTime = ts
	return d
}

func newCatalog(t *testing.T, node nodeid.ID) (*Catalog, *memStore) {
	t.Helper()
	s := newMemStore()
	c, err := New(s, NewClock(nil, func() nodeid.ID { return node }))
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestApplyGetPersist(t *testing.T) {
	c, s := newCatalog(t, 1)
	calls := 0
	c.OnChange(func() { calls++ })
	empty, v0 := c.Digest(), c.Version()
	d := mkDesc("t", 101, c.Clock().Now(), "k", "v")
	if err := c.Apply(d); err != nil {
		t.Fatal(err)
	}
	if c.Version() == v0 {
		t.Fatal("Version did not change")
	}
	if calls != 1 {
		t.Fatalf("OnChange ran %d times", calls)
	}
	if got, ok := c.Get("t"); !ok || got.ID != 101 {
		t.Fatalf("Get: %v %v", got, ok)
	}
	if c.Digest() == empty {
		t.Fatal("digest did not change")
	}
	// Reload from the store: same schema, same digest, and the clock is
	// ahead of the persisted change even with a wall clock in the past.
	c2, err := New(s, NewClock(func() int64 { return 1 }, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c2.Digest() != c.Digest() {
		t.Fatal("digest differs after reload")
	}
	if ts := c2.Clock().Now(); !d.ModTime.Less(ts) {
		t.Fatalf("clock after reload %v is not past %v", ts, d.ModTime)
	}
	// Drop: Get no longer finds it, All still has the tombstone.
	v1 := c.Version()
	if err := c.Apply(tombstone(d, c.Clock().Now())); err != nil {
		t.Fatal(err)
	}
	if c.Version() == v1 {
		t.Fatal("Version did not change with the drop")
	}
	if _, ok := c.Get("t"); ok {
		t.Fatal("dropped table still visible")
	}
	if all := c.All(); len(all) != 1 || !all[0].Dropped {
		t.Fatalf("All: %+v", all)
	}
	if len(c.Tables()) != 0 {
		t.Fatal("Tables lists a dropped table")
	}
}

func TestApplyRefusesOlderChange(t *testing.T) {
	c, _ := newCatalog(t, 1)
	old := c.Clock().Now()
	newer := Timestamp{WallTime: old.WallTime + 1e9, NodeID: 2}
	if _, err := c.Merge([]TableDescriptor{mkDesc("t", 102, newer, "k")}); err != nil {
		t.Fatal(err)
	}
	err := c.Apply(mkDesc("t", 101, old, "k"))
	if !errors.Is(err, ErrConcurrentChange) || pgerror.GetCode(err) != pgerror.CodeSerializationFailure {
		t.Fatalf("want a 40001 concurrent change error, got %v", err)
	}
	if d, _ := c.Get("t"); d.ID != 102 {
		t.Fatalf("the newer descriptor was replaced: %v", d.ID)
	}
}

func TestApplyPersistFailure(t *testing.T) {
	c, s := newCatalog(t, 1)
	s.failPut = errors.New("disk full")
	err := c.Apply(mkDesc("t", 101, c.Clock().Now(), "k"))
	if err == nil || pgerror.GetCode(err) != pgerror.CodeUnavailable {
		t.Fatalf("got %v", err)
	}
	if _, ok := c.Get("t"); ok {
		t.Fatal("a change that was not persisted is visible")
	}
}

func TestMergeLastWriterWins(t *testing.T) {
	ts := func(w int64, node nodeid.ID) Timestamp { return Timestamp{WallTime: w, NodeID: node} }
	a := mkDesc("t", 101, ts(10, 1), "k")
	b := mkDesc("t", 102, ts(10, 2), "k", "v") // same wall time, higher node
	for _, tc := range []struct {
		name    string
		local   []TableDescriptor
		remote  []TableDescriptor
		changed bool
		wantID  int64
		dropped bool
	}{
		{"new table", nil, []TableDescriptor{a}, true, 101, false},
		{"newer wins", []TableDescriptor{a}, []TableDescriptor{b}, true, 102, false},
		{"older loses", []TableDescriptor{b}, []TableDescriptor{a}, false, 102, false},
		{"same is a no-op", []TableDescriptor{a}, []TableDescriptor{a}, false, 101, false},
		{"tombstone beats older create", []TableDescriptor{a}, []TableDescriptor{tombstone(a, ts(11, 1))}, true, 101, true},
		{"newer create beats tombstone", []TableDescriptor{tombstone(a, ts(11, 1))}, []TableDescriptor{mkDesc("t", 103, ts(12, 3), "k")}, true, 103, false},
		{"older create loses to tombstone", []TableDescriptor{tombstone(a, ts(11, 1))}, []TableDescriptor{b}, false, 101, true},
		{"best of a batch", nil, []TableDescriptor{a, b, tombstone(a, ts(9, 1))}, true, 102, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCatalog(t, 5)
			if _, err := c.Merge(tc.local); err != nil {
				t.Fatal(err)
			}
			changed, err := c.Merge(tc.remote)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed {
				t.Fatalf("changed = %v", changed)
			}
			d, ok := c.GetRecord("t")
			if !ok || d.ID != tc.wantID || d.Dropped != tc.dropped {
				t.Fatalf("got %+v", d)
			}
		})
	}
}

func TestMergeRefusesInvalid(t *testing.T) {
	c, _ := newCatalog(t, 1)
	bad := mkDesc("t", 101, Timestamp{WallTime: 5}, "k")
	bad.Columns[0].Nullable = true // nullable primary key
	if _, err := c.Merge([]TableDescriptor{mkDesc("u", 102, Timestamp{WallTime: 5}, "k"), bad}); err == nil {
		t.Fatal("merged an invalid descriptor")
	}
	if len(c.All()) != 0 {
		t.Fatal("a batch with an invalid descriptor was partly merged")
	}
}

// TestConvergence runs random DDL on several catalogs, exchanges the changes
// in random orders with random duplicates and losses, then lets the
// digest-driven pull repair everything: all catalogs must end equal.
func TestConvergence(t *testing.T) {
	for seed := int64(0); seed < 20; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			const nodes = 4
			cats := make([]*Catalog, nodes)
			for i := range cats {
				cats[i], _ = newCatalog(t, nodeid.ID(i+1))
			}
			var pushes [][]TableDescriptor
			names := []string{"a", "b", "c"}
			for step := 0; step < 40; step++ {
				n := rng.Intn(nodes)
				c := cats[n]
				name := names[rng.Intn(len(names))]
				var d TableDescriptor
				if cur, ok := c.Get(name); ok && rng.Intn(2) == 0 {
					d = tombstone(*cur, c.Clock().Now())
				} else if ok {
					d = *cur.Clone()
					d.Columns = append(d.Columns, ColumnDescriptor{ID: d.NextColumnID, Name: fmt.Sprint("c", d.NextColumnID), Type: types.String, Nullable: true})
					d.NextColumnID++
					d.Version++
					d.ModTime = c.Clock().Now()
				} else {
					d = mkDesc(name, int64(200+step), c.Clock().Now(), "k")
				}
				if err := c.Apply(d); err != nil {
					t.Fatal(err)
				}
				pushes = append(pushes, []TableDescriptor{d})
				// Deliver some earlier pushes to random nodes, out of order.
				for k := 0; k < 3; k++ {
					p := pushes[rng.Intn(len(pushes))]
					if _, err := cats[rng.Intn(nodes)].Merge(p); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Anti-entropy: pull from any peer with a different digest until
			// stable, in random order.
			for round := 0; round < nodes*nodes; round++ {
				i, j := rng.Intn(nodes), rng.Intn(nodes)
				if cats[i].Digest() != cats[j].Digest() {
					if _, err := cats[i].Merge(cats[j].All()); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i := range cats {
				for j := range cats {
					if _, err := cats[i].Merge(cats[j].All()); err != nil {
						t.Fatal(err)
					}
				}
			}
			want, _ := json.Marshal(cats[0].All())
			for i := 1; i < nodes; i++ {
				got, _ := json.Marshal(cats[i].All())
				if cats[i].Digest() != cats[0].Digest() || string(got) != string(want) {
					t.Fatalf("node %d differs:\n%s\n%s", i+1, got, want)
				}
			}
		})
	}
}

func TestDescriptorJSON(t *testing.T) {
	d := mkDesc("t", 101, Timestamp{WallTime: 1, Logical: 2, NodeID: 3}, "k", "v")
	d.Columns[1].Type = types.Bytes
	d.Columns[1].DefaultExpr = "x'00'"
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"type":"BYTES"`) {
		t.Fatalf("type not by name: %s", b)
	}
	var back TableDescriptor
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Fatalf("%s\n%s", b, b2)
	}
}

func TestCreateStatementParses(t *testing.T) {
	d := mkDesc("Weird Name", 101, Timestamp{WallTime: 1}, "k", "order", "v")
	d.Columns[2].Type = types.String
	d.Columns[2].DefaultExpr = "'a' || 'b'"
	d.Columns = append(d.Columns, ColumnDescriptor{ID: 4, Name: "rowid", Type: types.Int, Hidden: true, DefaultExpr: "unique_rowid()"})
	d.NextColumnID = 5
	got := d.CreateStatement()
	want := "CREATE TABLE public.\"Weird Name\" (\n" +
		"\tk INT8 NOT NULL,\n" +
		"\t\"order\" INT8 NULL,\n" +
		"\tv STRING NULL DEFAULT ('a' || 'b'),\n" +
		"\trowid INT8 NOT VISIBLE NOT NULL DEFAULT unique_rowid(),\n" +
		"\tCONSTRAINT \"Weird Name_pkey\" PRIMARY KEY (k ASC)\n)"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := parser.ParseOne(got); err != nil {
		t.Fatalf("SHOW CREATE TABLE output does not parse: %v", err)
	}
}

// TestDatabasesKeepRecordsApart checks the keys of release 2.1's records: a
// table of another database and a database record are stored, merged and
// encoded under keys of their own, so the same table name in two databases
// are two tables here and in a binary that predates databases (which keys
// records by their JSON "name"); a descriptor of an older release is a
// table of defaultdb.
func TestDatabasesKeepRecordsApart(t *testing.T) {
	c, s := newCatalog(t, 1)
	ts := c.Clock().Now()
	def := mkDesc("kv", 101, ts, "k")
	other := mkDesc("kv", 102, ts, "k", "v")
	other.Database = "app"
	db := TableDescriptor{ID: 103, Name: "app", IsDatabase: true, Version: 1, ModTime: ts}
	for _, d := range []TableDescriptor{def, other, db} {
		if err := c.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	if d, ok := c.GetTable("defaultdb", "kv"); !ok || d.ID != 101 {
		t.Errorf("defaultdb.kv: %+v %v", d, ok)
	}
	if d, ok := c.GetTable("app", "kv"); !ok || d.ID != 102 || d.DatabaseName() != "app" {
		t.Errorf("app.kv: %+v %v", d, ok)
	}
	if !c.HasDatabase("app") || !c.HasDatabase("postgres") || c.HasDatabase("nope") {
		t.Errorf("HasDatabase: app %v postgres %v nope %v", c.HasDatabase("app"), c.HasDatabase("postgres"), c.HasDatabase("nope"))
	}
	if got := len(c.TablesIn("defaultdb")) + 10*len(c.TablesIn("app")) + 100*len(c.Databases()); got != 111 {
		t.Errorf("TablesIn(defaultdb), TablesIn(app), Databases(): %d", got)
	}
	// What a 2.0 binary reads: the JSON name is the record's key.
	for key, v := range s.m {
		var old struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(v, &old); err != nil {
			t.Fatal(err)
		}
		if KeyPrefix+old.Name != key {
			t.Errorf("stored under %q with name %q", key, old.Name)
		}
	}
	// Reloaded, every record is where it was; an old descriptor (a
	// plain name) is a table of defaultdb.
	c2, err := New(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := c2.GetTable("app", "kv"); !ok || d.Name != "kv" || d.Database != "app" {
		t.Errorf("reloaded app.kv: %+v", d)
	}
	var old TableDescriptor
	if err := json.Unmarshal([]byte(`{"id":101,"name":"kv","columns":[]}`), &old); err != nil || old.Database != "" || old.IsDatabase || old.DatabaseName() != "defaultdb" {
		t.Errorf("old descriptor: %+v %v", old, err)
	}
}

// referenceDigest is the schema digest as defined (and as every earlier
// release computed it): SHA-256 over json.Encoder's encoding of every
// descriptor in Key order, its first 8 bytes in hex.
func referenceDigest(descs []TableDescriptor) string {
	sort.Slice(descs, func(i, j int) bool { return descs[i].Key() < descs[j].Key() })
	h := sha256.New()
	enc := json.NewEncoder(h)
	for i := range descs {
		_ = enc.Encode(&descs[i])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// TestDigestIncremental: the digest a catalog keeps up to date change by
// change (re-hashing only from the first changed position) is the digest
// of its whole schema computed from scratch, after changes at the start,
// middle and end of the key order, replacements, drops and merged batches,
// and after a reload.
func TestDigestIncremental(t *testing.T) {
	c, s := newCatalog(t, 1)
	rng := rand.New(rand.NewSource(1))
	check := func(step string) {
		t.Helper()
		if got, want := c.Digest(), referenceDigest(c.All()); got != want {
			t.Fatalf("%s: digest %s, from scratch %s", step, got, want)
		}
	}
	check("empty")
	for step := 0; step < 200; step++ {
		name := fmt.Sprintf("t%03d", rng.Intn(60))
		cur, ok := c.Get(name)
		var d TableDescriptor
		switch {
		case ok && rng.Intn(3) == 0:
			d = tombstone(*cur, c.Clock().Now())
		case ok:
			d = *cur.Clone()
			d.Columns = append(d.Columns, ColumnDescriptor{ID: d.NextColumnID, Name: fmt.Sprint("c", d.NextColumnID), Type: types.String, Nullable: true})
			d.NextColumnID++
			d.Version++
			d.ModTime = c.Clock().Now()
		default:
			d = mkDesc(name, int64(1000+step), c.Clock().Now(), "k")
		}
		if rng.Intn(4) == 0 {
			// A peer's batch: two changes at once.
			other := mkDesc(fmt.Sprintf("u%03d", rng.Intn(60)), int64(5000+step), c.Clock().Now(), "k")
			if _, err := c.Merge([]TableDescriptor{d, other}); err != nil {
				t.Fatal(err)
			}
		} else if err := c.Apply(d); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprint("step ", step))
	}
	c2, err := New(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Digest() != c.Digest() {
		t.Fatalf("digest after reload %s, before %s", c2.Digest(), c.Digest())
	}
}
