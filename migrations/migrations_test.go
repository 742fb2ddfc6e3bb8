package migrations

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/sqltest"
	"github.com/kvnode/kvnode/testutil"
)

func TestRegistryIsOrderedAndOnTheLadder(t *testing.T) {
	seen := map[clusterversion.Key]bool{}
	for i, m := range All() {
		if seen[m.Version] {
			t.Fatalf("two migrations for %s", m.Version)
		}
		seen[m.Version] = true
		if i > 0 && !All()[i-1].Version.Version().Less(m.Version.Version()) {
			t.Fatalf("registry out of ladder order at %s", m.Version)
		}
		if m.Description == "" || m.Run == nil {
			t.Fatalf("migration %s lacks a description or function", m.Version)
		}
	}
}

// fakeClock is a settable clock for lease expiry.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// counting returns a test migration that processes n units in batches,
// checkpointing after each, and counts batches actually executed.
func counting(n int, runs *atomic.Int64, hook func(done int64) error) Migration {
	return Migration{
		Version:     clusterversion.V1_1WriteV2,
		Description: "test migration",
		Run: func(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
			p := from
			p.Total = int64(n)
			for p.Done < int64(n) {
				if hook != nil {
					if err := hook(p.Done); err != nil {
						return err
					}
				}
				runs.Add(1)
				p.Done += 10
				p.Resume = binary.BigEndian.AppendUint64(nil, uint64(p.Done))
				if err := checkpoint(p); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func TestRunsExactlyOnceAcrossConcurrentCallers(t *testing.T) {
	db := sqltest.NewMemDB()
	var runs atomic.Int64
	m := counting(100, &runs, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for node := nodeid.ID(1); node <= 5; node++ {
		wg.Add(1)
		go func(node nodeid.ID) {
			defer wg.Done()
			r := &Runner{DB: db, NodeID: node, Registry: []Migration{m}}
			if err := r.Run(ctx, clusterversion.V1_1WriteV2.Version()); err != nil {
				t.Error(err)
			}
		}(node)
	}
	wg.Wait()
	if got := runs.Load(); got != 10 {
		t.Fatalf("%d batches executed, want 10 (exactly once)", got)
	}
	// A later call does nothing.
	r := &Runner{DB: db, NodeID: 9, Registry: []Migration{m}}
	if err := r.Run(ctx, clusterversion.V1_1WriteV2.Version()); err != nil || runs.Load() != 10 {
		t.Fatalf("rerun: %v, batches %d", err, runs.Load())
	}
	jobs, err := List(ctx, db)
	if err != nil || len(jobs) != 1 || jobs[0].Status != StatusSucceeded || jobs[0].Fraction() != 1 {
		t.Fatalf("jobs: %+v %v", jobs, err)
	}
	// No migration for a version is a no-op.
	if err := r.Run(ctx, clusterversion.V1_0.Version()); err != nil {
		t.Fatal(err)
	}
}

func TestResumedByAnotherNodeAfterCoordinatorDies(t *testing.T) {
	db := sqltest.NewMemDB()
	clock := &fakeClock{}
	clock.ns.Store(time.Unix(1000, 0).UnixNano())
	var runs atomic.Int64
	ctx1, die := context.WithCancel(context.Background())
	m1 := counting(100, &runs, func(done int64) error {
		if done == 40 {
			die() // the coordinator's process dies after 4 batches
			return context.Canceled
		}
		return nil
	})
	r1 := &Runner{DB: db, NodeID: 1, Registry: []Migration{m1}, Lease: 5 * time.Second, Now: clock.now}
	if err := r1.Run(ctx1, clusterversion.V1_1WriteV2.Version()); !errors.Is(err, context.Canceled) {
		t.Fatalf("dying coordinator: %v", err)
	}
	jobs, _ := List(context.Background(), db)
	if jobs[0].Status != StatusRunning || jobs[0].Progress.Done != 40 {
		t.Fatalf("after the coordinator died: %+v", jobs[0])
	}
	// Node 2 waits while the lease holds, then takes over and resumes.
	var from Progress
	m2 := counting(100, &runs, nil)
	inner := m2.Run
	m2.Run = func(ctx context.Context, d Deps, p Progress, cp func(Progress) error) error {
		from = p
		return inner(ctx, d, p, cp)
	}
	r2 := &Runner{DB: db, NodeID: 2, Registry: []Migration{m2}, Lease: 5 * time.Second, Now: clock.now}
	done := make(chan error, 1)
	go func() { done <- r2.Run(context.Background(), clusterversion.V1_1WriteV2.Version()) }()
	select {
	case err := <-done:
		t.Fatalf("node 2 ran while node 1's lease held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	clock.add(6 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if from.Done != 40 || len(from.Resume) == 0 {
		t.Fatalf("node 2 resumed from %+v, want the checkpoint at 40", from)
	}
	if got := runs.Load(); got != 10 {
		t.Fatalf("%d batches in all, want 10 (4 + 6, none repeated)", got)
	}
	jobs, _ = List(context.Background(), db)
	if jobs[0].Status != StatusSucceeded || jobs[0].Coordinator != 2 || jobs[0].Attempts != 2 {
		t.Fatalf("final job: %+v", jobs[0])
	}
}

func TestStaleCoordinatorLosesTheJob(t *testing.T) {
	db := sqltest.NewMemDB()
	clock := &fakeClock{}
	clock.ns.Store(time.Unix(1000, 0).UnixNano())
	var runs atomic.Int64
	ctx := context.Background()
	stolen := make(chan struct{})
	resumeOld := make(chan struct{})
	m1 := counting(100, &runs, func(done int64) error {
		if done == 20 {
			close(stolen)
			<-resumeOld // paused (a GC pause, a stalled disk) past its lease
		}
		return nil
	})
	// The pause stalls the whole process, its lease renewals included.
	r1 := &Runner{DB: db, NodeID: 1, Registry: []Migration{m1}, Lease: 5 * time.Second, Now: clock.now, RenewEvery: time.Hour}
	res1 := make(chan error, 1)
	go func() { res1 <- r1.Run(ctx, clusterversion.V1_1WriteV2.Version()) }()
	<-stolen
	clock.add(10 * time.Second)
	r2 := &Runner{DB: db, NodeID: 2, Registry: []Migration{counting(100, &runs, nil)}, Lease: 5 * time.Second, Now: clock.now}
	if err := r2.Run(ctx, clusterversion.V1_1WriteV2.Version()); err != nil {
		t.Fatal(err)
	}
	close(resumeOld)
	// Node 1's next checkpoint fails; it sees the job succeeded and stops.
	if err := <-res1; err != nil {
		t.Fatal(err)
	}
	jobs, _ := List(ctx, db)
	if jobs[0].Status != StatusSucceeded || jobs[0].Coordinator != 2 {
		t.Fatalf("final job: %+v", jobs[0])
	}
}

func TestFailedMigrationIsRetried(t *testing.T) {
	db := sqltest.NewMemDB()
	var runs atomic.Int64
	fail := true
	m := counting(30, &runs, func(done int64) error {
		if fail && done == 10 {
			return errors.New("disk on fire")
		}
		return nil
	})
	r := &Runner{DB: db, NodeID: 1, Registry: []Migration{m}}
	ctx := context.Background()
	if err := r.Run(ctx, clusterversion.V1_1WriteV2.Version()); err == nil {
		t.Fatal("failure not reported")
	}
	jobs, _ := List(ctx, db)
	if jobs[0].Status != StatusFailed || jobs[0].Error == "" {
		t.Fatalf("failed job: %+v", jobs[0])
	}
	fail = false
	if err := r.Run(ctx, clusterversion.V1_1WriteV2.Version()); err != nil {
		t.Fatal(err)
	}
	jobs, _ = List(ctx, db)
	if jobs[0].Status != StatusSucceeded || jobs[0].Progress.Done != 30 {
		t.Fatalf("retried job: %+v", jobs[0])
	}
}

// TestRewriteRowsV2 runs the real 1.1 migration over a mix of v1 and v2
// rows, with a writer racing it, through a small batch size.
func TestRewriteRowsV2(t *testing.T) {
	db := sqltest.NewMemDB()
	ctx := context.Background()
	span := [2][]byte{{0x88}, {0x89}}
	key := func(i int) []byte { return binary.BigEndian.AppendUint32([]byte{0x88}, uint32(i)) }
	var ops []kvpb.Op
	for i := 0; i < 1234; i++ {
		v := []byte{1, byte(i)} // "v1"
		if i%7 == 0 {
			v = []byte{2, byte(i)} // already "v2"
		}
		ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: key(i), Value: v})
	}
	// Something outside the span must not be touched.
	ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: keys.SettingKey("test.other"), Value: []byte{1}})
	if err := db.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	upgrade := func(k, v []byte) ([]byte, bool, error) {
		if v[0] == 2 {
			return v, false, nil
		}
		return append([]byte{2}, v[1:]...), true, nil
	}
	// A client rewrites rows (as v2, as writers do at this step) while the
	// migration runs: its conditional puts fail for those rows, which is
	// fine.
	var raced atomic.Int64
	db.SetBeforeWrite(func(ops []kvpb.Op) error {
		if len(ops) > 1 && raced.Add(1) == 2 {
			go func() {
				_ = db.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: key(620), Value: []byte{2, 99}}})
			}()
		}
		return nil
	})
	r := &Runner{DB: db, NodeID: 1, Deps: Deps{DB: db, TableSpan: span, UpgradeRow: upgrade, BatchSize: 100}}
	if err := r.Run(ctx, clusterversion.V1_1WriteV2.Version()); err != nil {
		t.Fatal(err)
	}
	kvs, err := db.Scan(ctx, span[0], span[1], 0, false)
	if err != nil || len(kvs) != 1234 {
		t.Fatalf("scan: %d rows, %v", len(kvs), err)
	}
	for _, e := range kvs {
		if e.Value[0] != 2 {
			t.Fatalf("row %x still v1", e.Key)
		}
	}
	if v, _, _ := db.Get(ctx, keys.SettingKey("test.other")); v[0] != 1 {
		t.Fatal("a key outside the table span was rewritten")
	}
	jobs, _ := List(ctx, db)
	j := jobs[0]
	if j.Status != StatusSucceeded || j.Progress.Done != 1234 || j.Progress.Total != 1234 {
		t.Fatalf("job: %+v", j)
	}
}

// TestLeaseRenewedBetweenCheckpoints (issue 16, D8): a migration that goes
// longer than its lease without a checkpoint (the group 0 procedure
// checkpoints only at its end) keeps its job: the coordinator renews the
// lease on a timer, so another node waits instead of taking the job over and
// running the migration a second time.
func TestLeaseRenewedBetweenCheckpoints(t *testing.T) {
	db := sqltest.NewMemDB()
	clock := &fakeClock{}
	clock.ns.Store(time.Unix(1000, 0).UnixNano())
	var starts atomic.Int64
	release := make(chan struct{})
	slow := Migration{
		Version: clusterversion.V1_1WriteV2, Description: "one long step",
		Run: func(ctx context.Context, _ Deps, _ Progress, checkpoint func(Progress) error) error {
			starts.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return checkpoint(Progress{Done: 1, Total: 1})
		},
	}
	v := clusterversion.V1_1WriteV2.Version()
	r1 := &Runner{DB: db, NodeID: 1, Registry: []Migration{slow}, Lease: 5 * time.Second, Now: clock.now, RenewEvery: 5 * time.Millisecond}
	res1 := make(chan error, 1)
	go func() { res1 <- r1.Run(context.Background(), v) }()
	r2 := &Runner{DB: db, NodeID: 2, Registry: []Migration{slow}, Lease: 5 * time.Second, Now: clock.now, RenewEvery: 5 * time.Millisecond}
	res2 := make(chan error, 1)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	started := false
	// Three times the lease passes without a checkpoint.
	for i := 0; i < 5; i++ {
		clock.add(3 * time.Second)
		// Renewed at this time: lasting a full lease from now (not only
		// past now, which the previous renewal may still be).
		waitLeaseBeyond(t, db, clock.now().Add(4*time.Second))
		if !started {
			go func() { res2 <- r2.Run(ctx2, v) }()
			started = true
		}
	}
	close(release)
	if err := <-res1; err != nil {
		t.Fatal(err)
	}
	if err := <-res2; err != nil {
		t.Fatal(err)
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("the migration started %d times, want once", n)
	}
	jobs, _ := List(context.Background(), db)
	if jobs[0].Status != StatusSucceeded || jobs[0].Coordinator != 1 || jobs[0].Attempts != 1 {
		t.Fatalf("final job: %+v", jobs[0])
	}
}

// TestCoordinatorThatLostTheJobStops (issue 16, D8): when another node has
// taken the job over (here: its record rewritten, as a coordinator that found
// the lease lapsed would), the old coordinator's next renewal finds out and
// stops its migration at once instead of running beside the new one.
func TestCoordinatorThatLostTheJobStops(t *testing.T) {
	db := sqltest.NewMemDB()
	stopped := make(chan error, 1)
	running := make(chan struct{})
	m := Migration{
		Version: clusterversion.V1_1WriteV2, Description: "one long step",
		Run: func(ctx context.Context, _ Deps, _ Progress, _ func(Progress) error) error {
			close(running)
			<-ctx.Done()
			stopped <- context.Cause(ctx)
			return ctx.Err()
		},
	}
	v := clusterversion.V1_1WriteV2.Version()
	r1 := &Runner{DB: db, NodeID: 1, Registry: []Migration{m}, RenewEvery: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res1 := make(chan error, 1)
	go func() { res1 <- r1.Run(ctx, v) }()
	<-running
	// Node 2 takes the job over and finishes it.
	jobs, err := List(ctx, db)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs: %v %v", jobs, err)
	}
	j := jobs[0]
	j.Coordinator, j.Status, j.LeaseUntil = 2, StatusSucceeded, 0
	raw, _, _ := db.Get(ctx, jobKey(j.ID))
	if _, err := (&Runner{DB: db}).cput(ctx, j, raw); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-stopped:
		if !errors.Is(cause, ErrJobLost) {
			t.Fatalf("the old coordinator's migration stopped with %v, want ErrJobLost", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the old coordinator kept running a job it lost")
	}
	if err := <-res1; err != nil {
		t.Fatalf("the old coordinator, once the job succeeded elsewhere: %v", err)
	}
}

// waitLeaseBeyond waits until the only job's lease reaches past now.
func waitLeaseBeyond(t *testing.T, db kvpb.DB, now time.Time) {
	t.Helper()
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		jobs, err := List(context.Background(), db)
		if err == nil && len(jobs) == 1 && jobs[0].LeaseUntil > now.UnixNano() {
			return nil
		}
		return fmt.Errorf("the lease was not renewed past %v: %+v %v", now, jobs, err)
	})
}
