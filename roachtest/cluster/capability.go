package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// ErrUnsupported marks a capability probe's answer "this binary or cluster
// cannot do that yet". Scenarios turn it into a skip with the reason.
var ErrUnsupported = errors.New("not supported")

// ProbeNodeCLI checks that bin has the node lifecycle commands
// (`kvnode node decommission` and `kvnode node drain`). It returns an error
// wrapping ErrUnsupported, with the binary's own words, when it does not.
func ProbeNodeCLI(ctx context.Context, bin *Binary) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin.Path, "node", "--help").CombinedOutput()
	text := string(out)
	if err != nil {
		return errors.Mark(errors.Newf("%s has no `kvnode node` command (`kvnode node --help`: %v: %s)",
			bin.Name(), err, firstLine(text)), ErrUnsupported)
	}
	for _, sub := range []string{"decommission", "drain"} {
		if !strings.Contains(text, sub) {
			return errors.Mark(errors.Newf("%s: `kvnode node --help` does not list %q", bin.Name(), sub), ErrUnsupported)
		}
	}
	return nil
}

// ProbeSettings checks that the cluster has cluster settings, through n:
// SHOW CLUSTER SETTING cluster.preserve_downgrade_option answers. An error
// wrapping ErrUnsupported means the binaries cannot do it yet; any other
// error is a real failure.
func ProbeSettings(ctx context.Context, n *Node) error {
	_, err := n.Query(ctx, "SHOW CLUSTER SETTING cluster.preserve_downgrade_option")
	return unsupportedIf(err, n, "SHOW CLUSTER SETTING cluster.preserve_downgrade_option")
}

// ProbeFinalization checks that the cluster can finalize an upgrade,
// through n, without changing anything: it reads the active version (SHOW
// CLUSTER SETTING version) and sets it to that same value, which is a no-op
// where finalization exists (as in CockroachDB) and 0A000 where it does
// not. Reading the version alone is not enough: a cluster can report its
// version long before it can change it. It returns the active version.
func ProbeFinalization(ctx context.Context, n *Node) (string, error) {
	v, err := n.QueryString(ctx, "SHOW CLUSTER SETTING version")
	if err != nil {
		return "", unsupportedIf(err, n, "SHOW CLUSTER SETTING version")
	}
	stmt := fmt.Sprintf("SET CLUSTER SETTING version = '%s'", v)
	if err := n.ExecIdempotent(ctx, stmt); err != nil {
		return v, unsupportedIf(err, n, stmt)
	}
	return v, nil
}

// unsupportedIf marks err with ErrUnsupported if its SQLSTATE means "not
// there": feature not supported, undefined object, syntax error.
func unsupportedIf(err error, n *Node, what string) error {
	if err == nil {
		return nil
	}
	switch SQLState(err) {
	case "0A000", "42704", "42601":
		return errors.Mark(errors.Newf("%s through %s (%s): %s", what, n, n.Binary().Name(), firstLine(errors.UnwrapAll(err).Error())), ErrUnsupported)
	}
	return err
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Decommission runs `kvnode node decommission ID --host=<n's listen addr>`
// with n's binary, where ID is target's node ID, and returns its output.
func (n *Node) Decommission(ctx context.Context, target *Node) (string, error) {
	bin := n.Binary()
	if bin == nil || !n.Running() {
		return "", errors.Newf("cannot decommission through %s: it is not running", n)
	}
	id, err := target.NodeID(ctx)
	if err != nil {
		return "", err
	}
	out, err := n.c.runCLI(ctx, bin, "cli.log", "node", "decommission", strconv.Itoa(id), "--host="+n.ListenAddr)
	if err != nil {
		return out, errors.Wrapf(err, "kvnode node decommission %d (%s) --host=%s: %s", id, target, n.ListenAddr, out)
	}
	n.c.logf("%s: decommissioned %s (node ID %d): %s", n, target, id, firstLine(out))
	return out, nil
}

// Recommission runs `kvnode node recommission ID --host=<n's listen addr>`
// with n's binary and returns its output; err is set if it exited with an
// error (the output then says why).
func (n *Node) Recommission(ctx context.Context, id int) (string, error) {
	bin := n.Binary()
	if bin == nil || !n.Running() {
		return "", errors.Newf("cannot recommission through %s: it is not running", n)
	}
	out, err := n.c.runCLI(ctx, bin, "cli.log", "node", "recommission", strconv.Itoa(id), "--host="+n.ListenAddr)
	if err != nil {
		return out, errors.Wrapf(err, "kvnode node recommission %d --host=%s: %s", id, n.ListenAddr, out)
	}
	n.c.logf("%s: recommissioned node ID %d: %s", n, id, firstLine(out))
	return out, nil
}

// Drain runs `kvnode node drain --host=<n's listen addr>` with n's binary.
func (n *Node) Drain(ctx context.Context) (string, error) {
	bin := n.Binary()
	if bin == nil || !n.Running() {
		return "", errors.Newf("cannot drain %s: it is not running", n)
	}
	out, err := n.c.runCLI(ctx, bin, "cli.log", "node", "drain", "--host="+n.ListenAddr)
	if err != nil {
		return out, errors.Wrapf(err, "kvnode node drain --host=%s (%s): %s", n.ListenAddr, n, out)
	}
	n.c.logf("%s: drained: %s", n, firstLine(out))
	return out, nil
}
