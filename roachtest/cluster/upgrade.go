package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// This file holds what the upgrade scenarios need beyond starting and
// stopping nodes: the upgrade status (GET /_status/upgrade), SHOW JOBS, a
// start that must be refused, extra start flags, and wiping the cluster
// for a scenario that runs several plans one after the other.

// UpgradeStatus is the answer of GET /_status/upgrade, the JSON twin of
// SHOW UPGRADE STATUS. Raw is the body as the node sent it, for messages.
type UpgradeStatus struct {
	AnsweredBy         int                `json:"answered_by"`
	ActiveVersion      string             `json:"active_version"`
	ReplicatedVersion  string             `json:"replicated_version"`
	Target             string             `json:"target"`
	InProgress         string             `json:"in_progress"`
	AutoUpgradeEnabled bool               `json:"auto_upgrade_enabled"`
	PreserveDowngrade  string             `json:"preserve_downgrade_option"`
	Decision           string             `json:"decision"`
	Nodes              []UpgradeNode      `json:"nodes"`
	Blockers           []UpgradeBlocker   `json:"blockers"`
	Migrations         []UpgradeMigration `json:"migrations"`
	Raw                string             `json:"-"`
}

// UpgradeNode is one node of UpgradeStatus.
type UpgradeNode struct {
	NodeID        int    `json:"node_id"`
	Address       string `json:"address"`
	BinaryVersion string `json:"binary_version"`
	IsLive        bool   `json:"is_live"`
	Membership    string `json:"membership"`
	Draining      bool   `json:"draining"`
	// PersistedVersion is the cluster version the node persisted in its
	// store ("" if the answering node does not know it, or a release that
	// does not report it).
	PersistedVersion string `json:"persisted_version"`
}

// UpgradeBlocker is one reason the cluster does not finalize, with its fix.
// The node ID is read from "node_id" or "NodeID" (the server's record has
// no JSON tags today; either spelling is accepted so that adding them does
// not break the scenarios).
type UpgradeBlocker struct {
	Kind   string `json:"kind"`
	NodeID int    `json:"-"`
	Reason string `json:"reason"`
	Fix    string `json:"fix"`
}

// UnmarshalJSON accepts both spellings of the node ID.
func (b *UpgradeBlocker) UnmarshalJSON(data []byte) error {
	var raw struct {
		Kind    string `json:"kind"`
		Reason  string `json:"reason"`
		Fix     string `json:"fix"`
		NodeID  int    `json:"NodeID"`
		NodeID2 int    `json:"node_id"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*b = UpgradeBlocker{Kind: raw.Kind, Reason: raw.Reason, Fix: raw.Fix, NodeID: max(raw.NodeID, raw.NodeID2)}
	return nil
}

// String is "kind (node N): reason; fix: fix".
func (b UpgradeBlocker) String() string {
	node := ""
	if b.NodeID != 0 {
		node = fmt.Sprintf(" (node %d)", b.NodeID)
	}
	return fmt.Sprintf("%s%s: %s; fix: %s", b.Kind, node, b.Reason, b.Fix)
}

// UpgradeMigration is one migration of UpgradeStatus.
type UpgradeMigration struct {
	Version     string  `json:"version"`
	Description string  `json:"description"`
	Status      string  `json:"status"`
	JobID       int64   `json:"job_id"`
	Fraction    float64 `json:"fraction_completed"`
	Done        int64   `json:"done"`
	Total       int64   `json:"total"`
	Coordinator int     `json:"coordinator"`
	Error       string  `json:"error"`
}

// Blocker returns the first blocker of that kind, if any.
func (u *UpgradeStatus) Blocker(kind string) (UpgradeBlocker, bool) {
	for _, b := range u.Blockers {
		if b.Kind == kind {
			return b, true
		}
	}
	return UpgradeBlocker{}, false
}

// BlockerKinds lists the kinds of the blockers, in order.
func (u *UpgradeStatus) BlockerKinds() []string {
	var out []string
	for _, b := range u.Blockers {
		out = append(out, b.Kind)
	}
	return out
}

// UpgradeStatus reads GET /_status/upgrade.
func (n *Node) UpgradeStatus(ctx context.Context) (*UpgradeStatus, error) {
	body, err := n.get(ctx, "/_status/upgrade")
	if err != nil {
		return nil, err
	}
	st := &UpgradeStatus{Raw: body}
	if err := json.Unmarshal([]byte(body), st); err != nil {
		return nil, errors.Wrapf(err, "%s: GET /_status/upgrade answered %q", n, firstLine(body))
	}
	return st, nil
}

// UpgradeStatusRow is one row of SHOW UPGRADE STATUS (item, node_id, value,
// detail); NodeID is 0 where the row is about no node.
type UpgradeStatusRow struct {
	Item   string
	NodeID int64
	Value  string
	Detail string
}

func (r UpgradeStatusRow) String() string {
	return fmt.Sprintf("%s|%d|%s|%s", r.Item, r.NodeID, r.Value, r.Detail)
}

// ShowUpgradeStatus runs SHOW UPGRADE STATUS through n.
func (n *Node) ShowUpgradeStatus(ctx context.Context) ([]UpgradeStatusRow, error) {
	rows, err := n.Query(ctx, "SHOW UPGRADE STATUS")
	if err != nil {
		return nil, err
	}
	var out []UpgradeStatusRow
	for _, r := range rows {
		if len(r) < 4 {
			return nil, errors.Newf("%s: SHOW UPGRADE STATUS returned a row of %d columns, want 4 (item, node_id, value, detail)", n, len(r))
		}
		id, _ := r[1].(int64)
		out = append(out, UpgradeStatusRow{Item: text(r[0]), NodeID: id, Value: text(r[2]), Detail: text(r[3])})
	}
	return out, nil
}

// Job is one row of SHOW JOBS.
type Job struct {
	ID          int64
	Type        string
	Description string
	Status      string
	Fraction    float64
	Coordinator int64 // 0 if none
	Created     string
	Modified    string
	Error       string
}

func (j Job) String() string {
	return fmt.Sprintf("job %d %q: %s, %.0f%% done, coordinator %d, created %s, modified %s%s",
		j.ID, j.Description, j.Status, 100*j.Fraction, j.Coordinator, j.Created, j.Modified,
		map[bool]string{true: ", error: " + j.Error, false: ""}[j.Error != ""])
}

// Jobs runs SHOW JOBS through n. The columns are CockroachDB's, in its
// order: job_id, job_type, description, status, fraction_completed,
// coordinator_id, created, modified, error.
func (n *Node) Jobs(ctx context.Context) ([]Job, error) {
	rows, err := n.Query(ctx, "SHOW JOBS")
	if err != nil {
		return nil, err
	}
	var out []Job
	for _, r := range rows {
		if len(r) < 9 {
			return nil, errors.Newf("%s: SHOW JOBS returned a row of %d columns, want 9", n, len(r))
		}
		j := Job{Type: text(r[1]), Description: text(r[2]), Status: text(r[3]),
			Created: text(r[6]), Modified: text(r[7]), Error: text(r[8])}
		j.ID, _ = r[0].(int64)
		j.Coordinator, _ = r[5].(int64)
		switch f := r[4].(type) {
		case float64:
			j.Fraction = f
		case float32:
			j.Fraction = float64(f)
		}
		out = append(out, j)
	}
	return out, nil
}

func text(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// SetStartArgs sets the extra flags of every later `kvnode start` (for
// example the hidden --auto-upgrade-interval, so that a scenario does not
// wait out the 10s default and its back-off). Call it before starting the
// nodes that need them.
func (c *Cluster) SetStartArgs(args ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opts.StartArgs = append([]string(nil), args...)
}

// SetStartEnv sets the extra environment variables (KEY=VALUE) of every
// later `kvnode start` of every node, like SetStartArgs for flags (for
// example a testing knob such as KVNODE_TESTING_GROUP0_PAUSE). Node.SetEnv
// adds a node's own.
func (c *Cluster) SetStartEnv(env ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opts.StartEnv = append([]string(nil), env...)
}

// StartExpectExit runs `kvnode start` for n's slot (its store, ports,
// --join and extra environment) on bin in the foreground, for a start that
// must be refused: it waits up to within for the process to exit and
// returns its output, which is also appended to n's log. It is an error
// if the process is still running then (it is killed) or exits with status
// 0. The node must not be running.
func (n *Node) StartExpectExit(ctx context.Context, bin *Binary, within time.Duration) (string, error) {
	if n.Running() {
		return "", errors.AssertionFailedf("%s is running; StartExpectExit needs a stopped slot", n)
	}
	if err := portTaken(n); err != nil {
		return "", err
	}
	env := n.Env()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.Path, n.Args()...)
	cmd.Env = environ(env)
	setProcAttr(cmd)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if f, ferr := os.OpenFile(n.LogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
		fmt.Fprintf(f, "\n=== roachtest %s: starting %s on %s, expecting a refusal\n=== %s%s\n%s=== roachtest: exited after %s: %v\n",
			start.Format(time.RFC3339Nano), n, bin.Name(), envPrefix(env), strings.Join(cmd.Args, " "), out,
			time.Since(start).Round(time.Millisecond), exitString(err))
		_ = f.Close()
	}
	output := strings.TrimSpace(string(out))
	switch {
	case ctx.Err() != nil:
		return output, errors.Newf("%s on %s still ran after %s (killed); it should have refused to start; its output:\n%s",
			n, bin.Name(), within, output)
	case err == nil:
		return output, errors.Newf("%s on %s exited with status 0; it should have refused to start; its output:\n%s", n, bin.Name(), output)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return output, errors.Wrapf(err, "%s: running %s", n, bin.Path)
	}
	n.c.logf("%s: %s refused to start after %s (%v)", n, bin.Name(), time.Since(start).Round(10*time.Millisecond), err)
	return output, nil
}

// Wipe kills every node and removes every store, so that the cluster's
// slots (ports, store and log paths) start over empty, as for a new
// cluster: a scenario that runs several plans one after the other uses it
// between them. The logs are kept and continue.
func (c *Cluster) Wipe() error {
	for _, n := range c.nodes {
		if err := n.Kill(); err != nil {
			return err
		}
		n.mu.Lock()
		n.nodeID = 0
		n.mu.Unlock()
		if err := os.RemoveAll(n.StoreDir); err != nil {
			return err
		}
		if f, err := os.OpenFile(n.LogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "\n=== roachtest %s: wiped %s (store removed) for the next plan\n", time.Now().Format(time.RFC3339Nano), n)
			_ = f.Close()
		}
	}
	for _, f := range []string{"init.log", "cli.log"} {
		if fh, err := os.OpenFile(filepath.Join(c.LogDir(), f), os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(fh, "=== roachtest %s: cluster wiped for the next plan\n", time.Now().Format(time.RFC3339Nano))
			_ = fh.Close()
		}
	}
	c.logf("wiped every node's store: the next plan starts a new cluster")
	return nil
}

// ConsoleStatus is the part of GET /_status/console (the status page's
// facts and banners as JSON) that scenarios check. Raw is the body.
type ConsoleStatus struct {
	ClusterVersion string          `json:"cluster_version"`
	ActiveVersion  string          `json:"active_version"`
	Nodes          []ConsoleNode   `json:"nodes"`
	Banners        []ConsoleBanner `json:"banners"`
	Raw            string          `json:"-"`
}

// ConsoleNode is one node row of the status page.
type ConsoleNode struct {
	NodeID           int    `json:"node_id"`
	BinaryVersion    string `json:"binary_version"`
	Live             bool   `json:"is_live"`
	Membership       string `json:"membership"`
	PersistedVersion string `json:"persisted_version"`
}

// ConsoleBanner is one banner of the status page: what the operator is
// told, and the commands that fix it.
type ConsoleBanner struct {
	Kind     string   `json:"kind"`
	Severity string   `json:"severity"`
	NodeID   int      `json:"node_id"`
	Title    string   `json:"title"`
	Detail   string   `json:"detail"`
	Fix      []string `json:"fix"`
}

// String is "kind: title detail (fix: ...)".
func (b ConsoleBanner) String() string {
	return fmt.Sprintf("%s: %s %s (fix: %s)", b.Kind, b.Title, b.Detail, strings.Join(b.Fix, "; "))
}

// Text is every banner, one a line: what a scenario searches for advice.
func (c *ConsoleStatus) Text() string {
	var lines []string
	for _, b := range c.Banners {
		lines = append(lines, b.String())
	}
	return strings.Join(lines, "\n")
}

// Console reads GET /_status/console.
func (n *Node) Console(ctx context.Context) (*ConsoleStatus, error) {
	body, err := n.get(ctx, "/_status/console")
	if err != nil {
		return nil, err
	}
	st := &ConsoleStatus{Raw: body}
	if err := json.Unmarshal([]byte(body), st); err != nil {
		return nil, errors.Wrapf(err, "%s: GET /_status/console answered %q", n, firstLine(body))
	}
	return st, nil
}

// MoveStoreAside renames the stopped node's store to its path plus
// "."+suffix (kept for the artifacts) and forgets its node ID: the next
// start runs on a new, empty store and joins as a new node, as an operator
// does with a machine whose node was decommissioned.
func (n *Node) MoveStoreAside(suffix string) (string, error) {
	if n.Running() {
		return "", errors.AssertionFailedf("%s is running; stop it before moving its store", n)
	}
	aside := n.StoreDir + "." + suffix
	if err := os.Rename(n.StoreDir, aside); err != nil {
		return "", errors.Wrapf(err, "%s: moving its store aside", n)
	}
	n.mu.Lock()
	n.nodeID = 0
	n.mu.Unlock()
	if f, err := os.OpenFile(n.LogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintf(f, "\n=== roachtest %s: moved %s's store to %s: the next start is on a new, empty store\n",
			time.Now().Format(time.RFC3339Nano), n, aside)
		_ = f.Close()
	}
	n.c.logf("%s: store moved to %s", n, aside)
	return aside, nil
}
