package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSecureRollingUpgradeTo21 upgrades a secure three-node cluster of real
// processes from release 2.0 to 2.1 while a workload writes through every
// node with root's certificate: before finalization CREATE USER is refused
// (0A000, naming 2.1) and only certificates authenticate; the cluster
// finalizes by itself once every node runs 2.1, its migration creates the
// users store, and a user created then logs in with a password. No
// acknowledged write is lost.
func TestSecureRollingUpgradeTo21(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (scripts/test.sh installs Debian's postgresql-client)")
	}
	bin20 := buildRelease(t, "2.0")
	certs := secureCerts(t)
	ps := newProcs(t, 3)
	for _, p := range ps {
		p.bin = bin20
		p.args[1] = "--certs-dir=" + certs
		p.args = append(p.args, "--auto-upgrade-interval=300ms")
		p.start()
	}
	if out, err := exec.Command(bin20, "init", "--certs-dir="+certs, "--host="+ps[0].listen).CombinedOutput(); err != nil {
		t.Fatalf("init: %v: %s", err, out)
	}
	for _, p := range ps {
		waitReadyTLS(t, p, certs)
	}
	root := secureURL(ps[0], certs, "root")
	mustPsql(t, root, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	waitFor(t, 30*time.Second, func() error {
		_, err := psql(t, secureURL(ps[2], certs, "root"), "SELECT count(*) FROM kv")
		return err
	})
	psqlErr(t, root, "CREATE USER alice WITH PASSWORD 'pw-1234'", "needs cluster version 2.1")

	// The workload: one writer per node, each key written once; a key is
	// acknowledged when its INSERT returned success.
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []int
		next  atomic.Int64
	)
	for i := range ps {
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			var conn *pgx.Conn
			for ctx.Err() == nil {
				if conn == nil {
					cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
					c, err := pgx.Connect(cctx, secureURL(p, certs, "root"))
					ccancel()
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					conn = c
				}
				k := int(next.Add(1))
				ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := conn.Exec(ectx, "INSERT INTO kv VALUES ($1, $2)", k, fmt.Sprintf("v%d", k))
				ecancel()
				if err != nil {
					_ = conn.Close(context.Background())
					conn = nil
					continue
				}
				mu.Lock()
				acked = append(acked, k)
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
			if conn != nil {
				_ = conn.Close(context.Background())
			}
		}(ps[i])
	}
	stopWorkload := func() {
		cancel()
		wg.Wait()
	}
	defer stopWorkload()

	for _, p := range ps {
		if err := p.term(); err != nil {
			t.Fatalf("stopping node: %v", err)
		}
		p.bin = kvnodeBin
		p.start()
		waitReadyTLS(t, p, certs)
	}
	waitFor(t, 60*time.Second, func() error {
		for _, p := range ps {
			v, err := psql(t, secureURL(p, certs, "root"), "SHOW CLUSTER SETTING version")
			if err != nil || v != "2.1" {
				return fmt.Errorf("node at %s: version %q %v", p.sql, v, err)
			}
		}
		return nil
	})
	mustPsql(t, root, "CREATE USER alice WITH PASSWORD 'pw-1234'")
	mustPsql(t, root, "GRANT SELECT ON TABLE kv TO alice")
	waitFor(t, 10*time.Second, func() error {
		out, err := psqlEnv(t, []string{"PGPASSWORD=pw-1234"}, passwordURL(ps[2], certs, "alice", ""), "SELECT count(*) > 0 FROM kv")
		if err != nil || out != "t" {
			return fmt.Errorf("alice through node 3: %v: %s", err, out)
		}
		return nil
	})
	stopWorkload()

	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 50 {
		t.Fatalf("only %d writes were acknowledged during the upgrade", len(acked))
	}
	out := mustPsql(t, root, "SELECT k FROM kv ORDER BY k")
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		have[l] = true
	}
	for _, k := range acked {
		if !have[fmt.Sprint(k)] {
			t.Fatalf("acknowledged row %d is missing after the upgrade (%d acknowledged)", k, len(acked))
		}
	}
	t.Logf("%d acknowledged writes, all present", len(acked))
}
