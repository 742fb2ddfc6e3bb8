package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/console"
	"github.com/kvnode/kvnode/server/status"
	"github.com/kvnode/kvnode/server/testcluster"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 15 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r.StatusCode, string(b)
}

func consoleJSON(t *testing.T, c *testcluster.Cluster, i int) console.Status {
	t.Helper()
	code, body := httpGet(t, "http://"+c.Nodes[i].Config.HTTPAddr+"/_status/console")
	var st console.Status
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/_status/console: %d %s", code, body)
	}
	return st
}

// waitOnlyBanner waits until node i's console shows exactly one banner,
// of kind, and returns the status it showed.
func waitOnlyBanner(t *testing.T, c *testcluster.Cluster, i int, kind console.Kind) console.Status {
	t.Helper()
	var st console.Status
	testcluster.WaitFor(t, 20*time.Second, func() error {
		st = consoleJSON(t, c, i)
		if k := bannerKinds(st); len(k) != 1 || k[0] != string(kind) {
			return errors.Newf("banners %v", k)
		}
		return nil
	})
	return st
}

func bannerKinds(st console.Status) []string {
	var out []string
	for _, b := range st.Banners {
		out = append(out, string(b.Kind))
	}
	return out
}

// TestConsoleServed checks the status page and its JSON twin over real
// HTTP on a real cluster: a healthy cluster has no banner, a mixed-version
// cluster held back by the preserve option shows it (with since when it is
// set, on every node, whichever node answers), and the assets are served.
// Chromium drives the page itself in cmd/kvnode.
func TestConsoleServed(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("1.1")}})
	st := consoleJSON(t, c, 1)
	if len(st.Banners) != 0 || len(st.Nodes) != 3 || st.ClusterVersion != "1.1" || st.Self.NodeID != 2 ||
		st.Nodes[0].Group0State != console.StatePreRaft {
		t.Fatalf("healthy cluster: %+v", st)
	}
	code, page := httpGet(t, "http://"+c.Nodes[0].Config.HTTPAddr+"/")
	for _, want := range []string{`data-kind="none"`, `<tr data-node-id="3"`, `id="cluster-version">1.1<`, `/_console/console.js`} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("page lacks %q (%d):\n%s", want, code, page)
		}
	}
	for _, asset := range []string{"/_console/console.js", "/_console/console.css"} {
		if code, body := httpGet(t, "http://"+c.Nodes[0].Config.HTTPAddr+asset); code != http.StatusOK || len(body) < 100 {
			t.Fatalf("%s: %d", asset, code)
		}
	}
	// The node's own status, for scripts and roachtest.
	_, body := httpGet(t, "http://"+c.Nodes[0].Config.HTTPAddr+"/_status/node")
	var ns status.NodeStatusPage
	if err := json.Unmarshal([]byte(body), &ns); err != nil || ns.NodeID != 1 || ns.BinaryVersion != "1.1" || !ns.Ready ||
		ns.Raft == nil || ns.Raft.Leader == 0 || len(ns.Raft.Voters) != 3 || ns.Group0State != console.StatePreRaft {
		t.Fatalf("/_status/node: %v %s", err, body)
	}
	if code, _ := httpGet(t, "http://"+c.Nodes[0].Config.HTTPAddr+"/no-such-page"); code != http.StatusNotFound {
		t.Fatalf("an unknown path: %d", code)
	}

	c.Exec(0, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.1'")
	upgradeBinary(c, 0, "2.0")
	st = waitOnlyBanner(t, c, 2, console.KindMixedVersions)
	if !strings.Contains(st.Banners[0].Title, "nodes 2, 3 run 1.1; node 1 runs 2.0") {
		t.Fatalf("mixed versions: %+v", st.Banners[0])
	}
	upgradeBinary(c, 1, "2.0")
	upgradeBinary(c, 2, "2.0")
	st = waitOnlyBanner(t, c, 1, console.KindNotFinalized)
	b := st.Banners[0]
	if st.PreserveSince.IsZero() || !strings.Contains(b.Detail, "cluster.preserve_downgrade_option is set to '1.1' (for ") ||
		b.Fix[0] != "RESET CLUSTER SETTING cluster.preserve_downgrade_option;" {
		t.Fatalf("not finalized: %+v since %v", b, st.PreserveSince)
	}
	// SHOW UPGRADE STATUS says since when, too.
	conn := c.Conn(0)
	var detail string
	rows, err := conn.Query(t.Context(), "SHOW UPGRADE STATUS")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var item, value, d string
		var node *int64
		if err := rows.Scan(&item, &node, &value, &d); err != nil {
			t.Fatal(err)
		}
		if item == "preserve_downgrade_option" {
			detail = d
		}
	}
	rows.Close()
	if !strings.HasPrefix(detail, "set for ") {
		t.Fatalf("SHOW UPGRADE STATUS preserve detail: %q", detail)
	}
	c.Exec(1, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	testcluster.WaitFor(t, 60*time.Second, func() error {
		st = consoleJSON(t, c, 0)
		if st.ClusterVersion != "2.0" || len(st.Banners) != 0 {
			return errors.Newf("version %s, banners %v", st.ClusterVersion, bannerKinds(st))
		}
		for _, n := range st.Nodes {
			if n.Group0State != console.StatePostRaft {
				return errors.Newf("node %d in %s", n.NodeID, n.Group0State)
			}
		}
		return nil
	})
	if _, page := httpGet(t, "http://"+c.Nodes[2].Config.HTTPAddr+"/?live=1"); strings.Contains(page, "<script") ||
		!strings.Contains(page, fmt.Sprintf(`id="cluster-version">%s<`, "2.0")) {
		t.Fatalf("live part:\n%s", page)
	}
}
