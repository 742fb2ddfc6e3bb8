package steps

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
)

// This file holds the steps and checks of the upgrade scenarios: starting
// part of a cluster, waiting for a cluster version, statements that must be
// refused without changing anything, the migration jobs of SHOW JOBS, and
// counting node log lines.

// StartNodes starts the given nodes on release, initializes the cluster
// through initVia and waits until they are ready. The other slots stay
// empty: for a node that joins later, or a fresh node that must be refused.
func (s *Scenario) StartNodes(release string, nodes []int, initVia int) Func {
	return func(ctx context.Context, e *registry.Env) error {
		bin, err := e.Binary(ctx, release)
		if err != nil {
			return err
		}
		for _, i := range nodes {
			if err := e.Cluster.Node(i).Start(ctx, bin); err != nil {
				return err
			}
		}
		if err := e.Cluster.Init(ctx, e.Cluster.Node(initVia)); err != nil {
			return err
		}
		return e.Cluster.WaitReady(ctx)
	}
}

// Version is SHOW CLUSTER SETTING version through n.
func Version(ctx context.Context, n *cluster.Node) (string, error) {
	return n.QueryString(ctx, "SHOW CLUSTER SETTING version")
}

// CheckVersion checks, once and without waiting, that every running node
// reports cluster version want.
func CheckVersion(ctx context.Context, c *cluster.Cluster, want string) error {
	for _, n := range c.Running() {
		v, err := Version(ctx, n)
		if err != nil {
			return err
		}
		if v != want {
			return errors.Newf("%s (%s) reports cluster version %s, want %s", n, n.Binary().Name(), v, want)
		}
	}
	return nil
}

// WaitVersion waits until every running node reports cluster version want
// and returns how long that took.
func WaitVersion(ctx context.Context, c *cluster.Cluster, want string, within time.Duration) (time.Duration, error) {
	start := time.Now()
	err := Eventually(ctx, within, func() error { return CheckVersion(ctx, c, want) })
	return time.Since(start), err
}

// Setting is SHOW CLUSTER SETTING name through n, as text.
func Setting(ctx context.Context, n *cluster.Node, name string) (string, error) {
	rows, err := n.Query(ctx, "SHOW CLUSTER SETTING "+name)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", errors.Newf("%s: SHOW CLUSTER SETTING %s returned %v, want one value", n, name, rows)
	}
	if rows[0][0] == nil {
		return "", nil
	}
	return fmt.Sprint(rows[0][0]), nil
}

// ExpectSQLError runs stmt through n once (retried only if it never reached
// the server) and checks that it fails with SQLSTATE code ("" for any) and
// that its message, detail and hint, together, contain every string of
// wants. It returns that text ("message (HINT: hint)") for the log.
func ExpectSQLError(ctx context.Context, n *cluster.Node, stmt, code string, wants ...string) (string, error) {
	err := n.Exec(ctx, stmt)
	if err == nil {
		return "", errors.Newf("%s through %s succeeded; it must be refused", stmt, n)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return "", errors.Wrapf(err, "%s through %s: want an error from the server, got", stmt, n)
	}
	text := pgErr.Message
	if pgErr.Detail != "" {
		text += " (DETAIL: " + pgErr.Detail + ")"
	}
	if pgErr.Hint != "" {
		text += " (HINT: " + pgErr.Hint + ")"
	}
	if code != "" && pgErr.Code != code {
		return text, errors.Newf("%s through %s failed with SQLSTATE %s, want %s: %s", stmt, n, pgErr.Code, code, text)
	}
	var missing []string
	for _, w := range wants {
		if !strings.Contains(text, w) {
			missing = append(missing, fmt.Sprintf("%q", w))
		}
	}
	if len(missing) > 0 {
		return text, errors.Newf("%s through %s: the error does not name %s: %s", stmt, n, strings.Join(missing, ", "), text)
	}
	return text, nil
}

// MigrationJobs returns the SHOW JOBS rows (through n) of the migration
// that runs at version step, e.g. "1.1-step.2": those whose description
// starts with "<step>: ".
func MigrationJobs(ctx context.Context, n *cluster.Node, step string) ([]cluster.Job, error) {
	jobs, err := n.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	var out []cluster.Job
	for _, j := range jobs {
		if strings.HasPrefix(j.Description, step+":") {
			out = append(out, j)
		}
	}
	return out, nil
}

// CheckMigrationSucceeded checks through n that SHOW JOBS lists exactly one
// job for the migration at step, that it succeeded and is complete, and
// returns it.
func CheckMigrationSucceeded(ctx context.Context, n *cluster.Node, step string) (cluster.Job, error) {
	jobs, err := MigrationJobs(ctx, n, step)
	if err != nil {
		return cluster.Job{}, err
	}
	if len(jobs) != 1 {
		var all []string
		for _, j := range jobs {
			all = append(all, j.String())
		}
		return cluster.Job{}, errors.Newf("SHOW JOBS through %s lists %d jobs for the %s migration, want exactly one: %v", n, len(jobs), step, all)
	}
	j := jobs[0]
	if j.Status != "succeeded" || j.Fraction != 1 || j.Error != "" {
		return j, errors.Newf("SHOW JOBS through %s: the %s migration is not a clean success: %s", n, step, j)
	}
	return j, nil
}

// LogLines returns the lines of every node's log (across restarts) that
// contain every string of all, each prefixed with its node.
func LogLines(c *cluster.Cluster, all ...string) ([]string, error) {
	var out []string
	for _, n := range c.Nodes() {
		f, err := os.Open(n.LogPath)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			match := true
			for _, s := range all {
				if !strings.Contains(line, s) {
					match = false
					break
				}
			}
			if match {
				out = append(out, n.String()+": "+line)
			}
		}
		err = sc.Err()
		_ = f.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
