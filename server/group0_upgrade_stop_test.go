package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/server"
)

// TestGroup0UpgradeCoordinatorStopsPromptly: a node that coordinates the
// group 0 upgrade stops on request while the procedure waits (here in a
// pause before synchronize that only the procedure's context ends; in the
// roachtest scenario group0/node-lost-during-upgrade, a wait for a dead
// node), instead of holding up its own shutdown until the procedure's
// 2-minute bound; another node then resumes the upgrade, which completes.
func TestGroup0UpgradeCoordinatorStopsPromptly(t *testing.T) {
	c := startAt11(t, server.Knobs{MigrationLease: 2 * time.Second})
	type pause struct {
		node int
		err  error
	}
	paused := make(chan int, 3)
	ended := make(chan pause, 3)
	release := make(chan struct{})
	rollTo20(t, c, func(i int) func(context.Context, group0.Action) error {
		return func(ctx context.Context, a group0.Action) error {
			if a.Step != group0.StepSynchronize {
				return nil
			}
			select {
			case <-release:
				return nil
			default:
			}
			paused <- i
			select {
			case <-ctx.Done():
				ended <- pause{i, ctx.Err()}
				return ctx.Err()
			case <-release:
				return nil
			case <-time.After(90 * time.Second):
				ended <- pause{i, errors.New("the pause outlived 90s: its context did not end")}
				return nil
			}
		}
	})
	var coord int
	select {
	case coord = <-paused:
	case <-time.After(60 * time.Second):
		t.Fatal("no coordinator reached the synchronize step in 60s")
	}
	start := time.Now()
	c.StopNode(coord)
	took := time.Since(start)
	close(release) // the next coordinator goes through
	select {
	case p := <-ended:
		if p.node != coord || !errors.Is(p.err, context.Canceled) {
			t.Fatalf("the paused procedure on node %d ended with %v, want node %d's context canceled by the stop", p.node+1, p.err, coord+1)
		}
	default:
		t.Fatalf("node %d stopped (in %s) while its upgrade procedure was still paused", coord+1, took)
	}
	if took > 20*time.Second {
		t.Fatalf("stopping the coordinating node %d took %s", coord+1, took)
	}
	t.Logf("node %d, coordinating the upgrade, stopped in %s", coord+1, took.Round(time.Millisecond))
	startNode(t, c, coord)
	waitVersion(t, c, "2.0")
	waitGroup0States(t, c, group0.UsePostRaft)
	checkSchemaEverywhere(t, c, []string{"kv", "other"})
}
