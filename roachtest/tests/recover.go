package tests

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// The recovery from a majority lost for good (`kvnode node recover`,
// docs/recovery.md, issue 16). The in-process counterpart is
// server/recover_test.go.
func registerRecover(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "recover/majority-lost",
		Description: "three of five nodes (seeded) are killed and their stores removed while a survivor writes: the data " +
			"group and group 0 have no majority; `kvnode node recover --dry-run` names the seed and the dead and changes " +
			"nothing; `kvnode node recover` re-forms both on the survivors: every row they acknowledged is there, both " +
			"serve reads, writes and DDL, and a fresh sixth node joins",
		Suite: registry.Short, Nodes: 6, MinNodes: 6,
		Plan: recoverPlan,
	})
}

// ackedWriter writes single rows through one node until stopped and
// remembers which were acknowledged.
type ackedWriter struct {
	mu    sync.Mutex
	acked []int64
	stop  chan struct{}
	done  chan struct{}
}

func (w *ackedWriter) run(ctx context.Context, n *cluster.Node, table string, from int64) {
	defer close(w.done)
	k := from
	// Bounded, so that a scenario that fails before it is stopped does not
	// leave it running.
	giveUp := time.After(2 * time.Minute)
	for {
		select {
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		case <-giveUp:
			return
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := n.Connect(cctx)
		if err == nil {
			_, err = conn.Exec(cctx, fmt.Sprintf("UPSERT INTO %s (k, v) VALUES (%d, '%s')", table, k, rowValue(k)))
			_ = conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			w.mu.Lock()
			w.acked = append(w.acked, k)
			w.mu.Unlock()
		} else {
			time.Sleep(100 * time.Millisecond)
		}
		k++ // an unacknowledged key is never written again: its fate is unknown
	}
}

func recoverPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	first := []int{1, 2, 3, 4, 5}
	joiner := 6
	perm := rng.Perm(len(first))
	survivors := []int{first[perm[0]], first[perm[1]]}
	slices.Sort(survivors)
	dead := others(5, survivors...)
	initVia := first[rng.IntN(len(first))]
	via := survivors[rng.IntN(2)]
	writer := survivors[rng.IntN(2)]
	plan := &registry.Plan{Header: []string{fmt.Sprintf("n1-n5 on the default binary, init through n%d; %s killed for good "+
		"(stores removed) while n%d writes; recover through n%d; then n%d joins", initVia, nodeList(dead), writer, via, joiner)}}
	plan.Addf(sc.StartNodes(cluster.DefaultRelease, first, initVia), "start n1-n5 on the default binary, init through n%d; n%d stays empty", initVia, joiner)
	plan.Add("every node reports use_post_raft_procedures", waitGroup0State("use_post_raft_procedures", 60*time.Second))
	plan.Addf(createTable("rec_rows", via), "CREATE TABLE rec_rows through n%d", via)
	plan.Addf(upsertRows("rec_rows", 0, 200, 10, survivors), "write rows 0-199 through %s", nodeList(survivors))
	w := &ackedWriter{stop: make(chan struct{}), done: make(chan struct{})}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		go w.run(context.WithoutCancel(ctx), e.Cluster.Node(writer), "rec_rows", 10000)
		return steps.Eventually(ctx, 30*time.Second, func() error {
			w.mu.Lock()
			defer w.mu.Unlock()
			if len(w.acked) < 5 {
				return errors.Newf("%d writes acknowledged", len(w.acked))
			}
			return nil
		})
	}, "n%d writes single rows from key 10000 on, and records which are acknowledged", writer)
	for _, d := range dead {
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(d)
			if err := n.Kill(); err != nil {
				return err
			}
			return os.RemoveAll(n.StoreDir)
		}, "kill -9 n%d and rm -rf its store", d)
	}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		time.Sleep(2 * time.Second) // let the writer hit the lost majority
		close(w.stop)
		<-w.done
		e.Logf("the writer got %d writes acknowledged", len(w.acked))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := e.Cluster.Node(via).Exec(cctx, "INSERT INTO rec_rows VALUES (-1, 'no majority')"); err == nil {
			return errors.New("a write succeeded without a majority")
		}
		return nil
	}, "stop the writer; a write through n%d fails (no majority)", via)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		out, err := runCLI(ctx, e, n, "node", "recover", "--host="+n.ListenAddr, "--dry-run")
		if err != nil {
			return errors.Wrapf(err, "recover --dry-run: %s", out)
		}
		e.Logf("kvnode node recover --dry-run:\n%s", out)
		for _, want := range []string{"becomes the seed", "what may be lost", "nothing was changed"} {
			if !strings.Contains(out, want) {
				return errors.Newf("the dry run does not say %q:\n%s", want, out)
			}
		}
		for _, s := range survivors {
			id, err := e.Cluster.Node(s).NodeID(ctx)
			if err != nil {
				return err
			}
			if !strings.Contains(out, fmt.Sprintf("node %d: applied index", id)) {
				return errors.Newf("the dry run has no line for n%d (node %d):\n%s", s, id, out)
			}
		}
		if c := strings.Count(out, " at 127."); c != len(dead) {
			return errors.Newf("the dry run does not list the %d dead nodes:\n%s", len(dead), out)
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := n.Exec(cctx, "INSERT INTO rec_rows VALUES (-1, 'no majority')"); err == nil {
			return errors.New("the dry run changed something: a write succeeded")
		}
		return nil
	}, "kvnode node recover --host=<n%d> --dry-run names both survivors, the dead and what may be lost; nothing changes", via)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		out, err := runCLI(ctx, e, n, "node", "recover", "--host="+n.ListenAddr)
		if err != nil {
			return errors.Wrapf(err, "recover: %s", out)
		}
		i := strings.LastIndex(out, "done:")
		if i < 0 {
			return errors.Newf("recover did not report it was done:\n%s", out)
		}
		sc.Note(e, "recover: %s", strings.TrimSpace(out[i:]))
		return nil
	}, "kvnode node recover --host=<n%d>", via)
	plan.Add("every row a survivor acknowledged is there, through both survivors", func(ctx context.Context, e *registry.Env) error {
		for _, s := range survivors {
			n := e.Cluster.Node(s)
			rows, err := n.Query(ctx, "SELECT k FROM rec_rows WHERE k >= 0 ORDER BY k")
			if err != nil {
				return err
			}
			have := map[int64]bool{}
			for _, r := range rows {
				k, _ := r[0].(int64)
				have[k] = true
			}
			for k := int64(0); k < 200; k++ {
				if !have[k] {
					return errors.Newf("%s: row %d, acknowledged before the loss, is missing", n, k)
				}
			}
			for _, k := range w.acked {
				if !have[k] {
					return errors.Newf("%s: row %d, acknowledged by n%d, is missing", n, k, writer)
				}
			}
		}
		return nil
	})
	for _, s := range survivors {
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(s)
			if err := n.ExecIdempotent(ctx, fmt.Sprintf("UPSERT INTO rec_rows (k, v) VALUES (%d, '%s')", 20000+s, rowValue(int64(20000+s)))); err != nil {
				return err
			}
			return n.Exec(ctx, fmt.Sprintf("CREATE TABLE rec_after_%d (k INT PRIMARY KEY)", s))
		}, "a write and a CREATE TABLE through n%d", s)
	}
	var tables []string
	for _, s := range survivors {
		tables = append(tables, fmt.Sprintf("rec_after_%d", s))
	}
	tables = append(tables, "rec_rows")
	plan.Add("every survivor lists every table", tablesEverywhere(tables...))
	plan.Add("every survivor is in use_post_raft_procedures", waitGroup0State("use_post_raft_procedures", 30*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		bin, err := e.Binary(ctx, cluster.DefaultRelease)
		if err != nil {
			return err
		}
		n := e.Cluster.Node(joiner)
		if err := n.Start(ctx, bin); err != nil {
			return err
		}
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
		return steps.Eventually(ctx, 30*time.Second, func() error {
			c, err := n.QueryInt(ctx, "SELECT count(*) FROM rec_rows WHERE k >= 0 AND k < 200")
			if err != nil {
				return err
			}
			if c != 200 {
				return errors.Newf("%s reads %d of rows 0-199", n, c)
			}
			return nil
		})
	}, "start n%d with an empty store: it joins and reads every row", joiner)
	plan.Add("n"+fmt.Sprint(joiner)+" is in use_post_raft_procedures too", waitGroup0State("use_post_raft_procedures", 60*time.Second))
	plan.Addf(execThrough(joiner, "CREATE TABLE rec_joined (k INT PRIMARY KEY)"), "CREATE TABLE rec_joined through n%d", joiner)
	plan.Add("every node lists it", tablesEverywhere(append(slices.Clone(tables[:len(tables)-1]), "rec_joined", "rec_rows")...))
	return plan, nil
}
