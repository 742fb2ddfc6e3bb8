package sql

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

func TestVirtualTableUpdate(t *testing.T) {
	tc := newTestCluster(t, 1)
	e := tc.nodes[0]
	var got [][]RowUpdate
	e.SetVirtualTableUpdate("system.local", func(_ context.Context, rows []RowUpdate) error {
		for _, r := range rows {
			if r.Old[0] != "group0_upgrade_state" {
				return pgerror.Newf(pgerror.CodeInsufficientPrivilege, "key %v is read-only", r.Old[0])
			}
		}
		got = append(got, rows)
		return nil
	})
	s := openSession(t, e)
	res := mustExec(t, s, "UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'")
	if res.Tag != "UPDATE 1" || len(got) != 1 || got[0][0].Updated[1] != "recovery" || got[0][0].Old[1] != "use_pre_raft_procedures" {
		t.Fatalf("update: %+v, calls %+v", res, got)
	}
	res = mustExec(t, s, "UPDATE system.local SET value = $1 WHERE key = 'nope'", "x")
	if res.Tag != "UPDATE 0" || len(got) != 1 {
		t.Fatalf("update matching nothing: %+v, calls %d", res, len(got))
	}
	// All or nothing: one refused row refuses the statement.
	if _, err := exec(t, s, "UPDATE system.local SET value = 'recovery'"); pgerror.GetCode(err) != pgerror.CodeInsufficientPrivilege {
		t.Fatalf("update of every row: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("a refused update reached the table: %+v", got)
	}
	for q, code := range map[string]string{
		"UPDATE system.local SET value = 1 WHERE key = 'group0_upgrade_state'":       pgerror.CodeDatatypeMismatch,
		"UPDATE system.local SET nope = 'x'":                                         pgerror.CodeUndefinedColumn,
		"UPDATE system.local SET value = 'a', value = 'b'":                           pgerror.CodeDuplicateColumn,
		"UPDATE system.local SET value = 'x' RETURNING key":                          pgerror.CodeFeatureNotSupported,
		"UPDATE crdb_internal.gossip_nodes SET address = 'x'":                        pgerror.CodeInsufficientPrivilege,
		"UPDATE system.local SET value = DEFAULT WHERE key = 'group0_upgrade_state'": pgerror.CodeFeatureNotSupported,
		"UPDATE system.local SET value = 'x' WHERE nope = 1":                         pgerror.CodeUndefinedColumn,
		"UPDATE system.nonexistent SET value = 'x'":                                  pgerror.CodeUndefinedTable,
		"DELETE FROM system.local WHERE key = 'group0_upgrade_state'":                pgerror.CodeInsufficientPrivilege,
		"INSERT INTO system.local VALUES ('a', 'b')":                                 pgerror.CodeInsufficientPrivilege,
	} {
		if _, err := exec(t, s, q); pgerror.GetCode(err) != code {
			t.Errorf("%s: %v (code %s), want %s", q, err, pgerror.GetCode(err), code)
		}
	}
}

// fakeSchemaLog commits DDL to an in-memory "group 0": a version counter
// and descriptors; a change built on an old version conflicts.
type fakeSchemaLog struct {
	mu       sync.Mutex
	version  int
	descs    map[string]catalog.TableDescriptor
	mode     string // "pre", "post", "refuse"
	released int
	// conflicts makes the next n commits lose a race (another change
	// commits first, adding table "other<n>").
	conflicts int
	cats      []*catalog.Catalog
}

type fakeTxn struct {
	l       *fakeSchemaLog
	version int
}

func (l *fakeSchemaLog) BeginDDL(context.Context) (SchemaTxn, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	release := func() { l.mu.Lock(); l.released++; l.mu.Unlock() }
	switch l.mode {
	case "pre":
		return nil, release, nil
	case "refuse":
		return nil, nil, pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState, "refused")
	}
	// Read barrier: every catalog gets the latest schema.
	var all []catalog.TableDescriptor
	for _, d := range l.descs {
		all = append(all, d)
	}
	for _, c := range l.cats {
		if _, err := c.Merge(all); err != nil {
			return nil, nil, err
		}
	}
	return &fakeTxn{l: l, version: l.version}, release, nil
}

func (t *fakeTxn) Commit(_ context.Context, descs []catalog.TableDescriptor, _ string) error {
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conflicts > 0 {
		l.conflicts--
		l.version++
		b, _ := json.Marshal(l.version)
		l.descs["other"+string(b)] = catalog.TableDescriptor{ID: int64(1000 + l.version), Name: "other" + string(b),
			Columns: []catalog.ColumnDescriptor{{ID: 1, Name: "k", Type: types.Int}}, PrimaryKey: []int32{1},
			NextColumnID: 2, Version: 1, ModTime: l.cats[0].Clock().Now()}
	}
	if t.version != l.version {
		return errors.Mark(errors.New("conflict"), ErrSchemaChanged)
	}
	l.version++
	for _, d := range descs {
		l.descs[d.Name] = d
	}
	for _, c := range l.cats {
		if _, err := c.Merge(descs); err != nil {
			return err
		}
	}
	return nil
}

func TestDDLThroughSchemaLog(t *testing.T) {
	tc := newTestCluster(t, 2)
	l := &fakeSchemaLog{descs: map[string]catalog.TableDescriptor{}, mode: "post"}
	for _, e := range tc.nodes {
		e.SetSchemaLog(l)
		l.cats = append(l.cats, e.Catalog())
	}
	s1, s2 := openSession(t, tc.nodes[0]), openSession(t, tc.nodes[1])
	mustExec(t, s1, "CREATE TABLE t (k INT PRIMARY KEY)")
	if _, ok := tc.nodes[1].Catalog().Get("t"); !ok || l.version != 1 {
		t.Fatalf("the commit did not reach node 2's catalog (version %d)", l.version)
	}
	// The second CREATE is built after the barrier: it sees t.
	if _, err := exec(t, s2, "CREATE TABLE t (k INT PRIMARY KEY)"); pgerror.GetCode(err) != pgerror.CodeDuplicateTable {
		t.Fatalf("duplicate CREATE through the log: %v", err)
	}
	mustExec(t, s2, "CREATE TABLE IF NOT EXISTS t (k INT PRIMARY KEY)")
	if l.version != 1 {
		t.Fatalf("a no-op DDL committed (version %d)", l.version)
	}
	// A lost race rebuilds the statement on the new schema.
	l.conflicts = 2
	mustExec(t, s2, "ALTER TABLE t ADD COLUMN v INT")
	if d, _ := tc.nodes[0].Catalog().Get("t"); d.ColumnIndex("v") < 0 || l.version != 4 {
		t.Fatalf("ALTER after two lost races: %+v, version %d", d, l.version)
	}
	// Endless conflicts end in a retryable error.
	l.conflicts = 1000
	if _, err := exec(t, s1, "ALTER TABLE t ADD COLUMN w INT"); pgerror.GetCode(err) != pgerror.CodeSerializationFailure {
		t.Fatalf("endless conflicts: %v", err)
	}
	l.conflicts = 0
	// DROP TABLE commits all tombstones at once, then deletes the rows.
	mustExec(t, s1, "INSERT INTO t VALUES (1, 1)")
	mustExec(t, s1, "CREATE TABLE u (k INT PRIMARY KEY)")
	before := l.version
	mustExec(t, s2, "DROP TABLE t, u")
	if l.version != before+1 {
		t.Fatalf("DROP TABLE t, u committed %d changes", l.version-before)
	}
	if _, ok := tc.nodes[0].Catalog().Get("t"); ok {
		t.Fatal("t still exists on node 1")
	}
	// Refusal and the pre-Raft path.
	l.mode = "refuse"
	if _, err := exec(t, s1, "CREATE TABLE x (k INT PRIMARY KEY)"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refused DDL: %v", err)
	}
	l.mode = "pre"
	releasedBefore := l.released
	mustExec(t, s1, "CREATE TABLE x (k INT PRIMARY KEY)")
	if _, ok := tc.nodes[0].Catalog().Get("x"); !ok || l.released != releasedBefore+1 {
		t.Fatalf("pre-Raft DDL: applied %t, released %d times", ok, l.released-releasedBefore)
	}
}
