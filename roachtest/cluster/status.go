package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// Status is what a node says about itself and about the Raft group as it
// sees it (GET /_status/node on its HTTP address).
type Status struct {
	NodeID  int
	Binary  string // the release the node runs, e.g. "1.1"
	Ready   bool
	Leader  int // 0: no leader known
	Term    uint64
	Commit  uint64
	Applied uint64
}

// nodeStatusJSON is the part of server.NodeStatusPage that roachtest reads
// (roachtest does not link the server: it speaks HTTP like any client).
type nodeStatusJSON struct {
	NodeID        int    `json:"node_id"`
	BinaryVersion string `json:"binary_version"`
	Ready         bool   `json:"ready"`
	Raft          *struct {
		Leader  int    `json:"leader"`
		Term    uint64 `json:"term"`
		Commit  uint64 `json:"commit"`
		Applied uint64 `json:"applied"`
	} `json:"raft"`
}

// ParseNodeStatus reads GET /_status/node. A node that has not joined yet
// (no raft object) parses with Leader 0.
func ParseNodeStatus(body string) (Status, error) {
	var j nodeStatusJSON
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		return Status{}, errors.Wrapf(err, "/_status/node is not a kvnode node status: %.80q", body)
	}
	if j.BinaryVersion == "" {
		return Status{}, errors.Newf("/_status/node has no binary_version: %.80q", body)
	}
	st := Status{NodeID: j.NodeID, Binary: j.BinaryVersion, Ready: j.Ready}
	if j.Raft != nil {
		st.Leader, st.Term, st.Commit, st.Applied = j.Raft.Leader, j.Raft.Term, j.Raft.Commit, j.Raft.Applied
	}
	return st, nil
}

func (n *Node) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.c.scheme()+"://"+n.HTTPAddr+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := n.c.http().Do(req)
	if err != nil {
		return "", errors.Wrapf(err, "%s: GET %s", n, path)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", errors.Wrapf(err, "%s: GET %s", n, path)
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.Newf("%s: GET %s: %s: %s", n, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// Status reads and parses the node's own status.
func (n *Node) Status(ctx context.Context) (Status, error) {
	page, err := n.get(ctx, "/_status/node")
	if err != nil {
		return Status{}, err
	}
	st, err := ParseNodeStatus(page)
	if err != nil {
		return st, errors.Wrapf(err, "%s", n)
	}
	if st.NodeID != 0 {
		n.mu.Lock()
		n.nodeID = st.NodeID
		n.mu.Unlock()
	}
	return st, nil
}

// Metrics returns the node's unlabelled Prometheus samples (name -> value)
// from /metrics, e.g. kvnode_raft_is_leader.
func (n *Node) Metrics(ctx context.Context) (map[string]float64, error) {
	text, err := n.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(text), nil
}

// ParseMetrics reads the unlabelled samples of Prometheus text format.
// Labelled samples (histogram buckets and the like) are skipped: the
// scenarios read gauges and counters.
func ParseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.Fields(val)[0], 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// Leader returns the node that leads the data group, as the running nodes
// see it: among their status pages, the leader named in the highest term,
// confirmed by that node's own status page and its kvnode_raft_is_leader
// gauge. It polls until ctx ends (30s if
// ctx has no deadline), so it also waits out an election.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	var last error
	for {
		n, err := c.leaderOnce(ctx)
		if err == nil {
			return n, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, errors.Wrapf(last, "no Raft leader found")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) leaderOnce(ctx context.Context) (*Node, error) {
	byID := map[int]*Node{}
	own := map[int]Status{}
	var best Status
	for _, n := range c.Running() {
		st, err := n.Status(ctx)
		if err != nil {
			continue
		}
		byID[st.NodeID] = n
		own[st.NodeID] = st
		if st.Leader != 0 && st.Term >= best.Term {
			best = st
		}
	}
	if best.Leader == 0 {
		return nil, errors.New("no running node knows a leader")
	}
	n, ok := byID[best.Leader]
	if !ok {
		return nil, errors.Newf("the leader is node ID %d in term %d, which is not a running node of this cluster", best.Leader, best.Term)
	}
	if self := own[best.Leader]; self.Leader != best.Leader || self.Term != best.Term {
		return nil, errors.Newf("node ID %d is named leader in term %d but sees leader %d in term %d", best.Leader, best.Term, self.Leader, self.Term)
	}
	// The gauge, where the binary has it, must agree: a status page and a
	// metric that disagree mean leadership is moving right now.
	if m, err := n.Metrics(ctx); err == nil {
		if v, ok := m["kvnode_raft_is_leader"]; ok && v != 1 {
			return nil, errors.Newf("%s is named leader in term %d but its kvnode_raft_is_leader is %v", n, best.Term, v)
		}
	}
	return n, nil
}
