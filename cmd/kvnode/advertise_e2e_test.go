package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestAdvertiseAddrs: nodes (real processes, loopback only) that advertise
// addresses other than the ones they listen on are known by them: the node
// records and gossip carry them (crdb_internal.gossip_nodes), psql reaches a
// node at its advertised SQL address; a node told to listen on 0.0.0.0
// without --advertise-addr refuses to start, naming the flag, and a secure
// node refuses to advertise a host its certificate does not list.
func TestAdvertiseAddrs(t *testing.T) {
	if out, err := runKvnode(t, "start", "--insecure", "--store="+t.TempDir(), "--listen-addr=0.0.0.0:26999",
		"--gossip-addr=127.0.0.1:0", "--sql-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0"); err == nil ||
		!strings.Contains(out, "--listen-addr=0.0.0.0:26999") || !strings.Contains(out, "--advertise-addr=HOST:PORT") {
		t.Fatalf("listening on 0.0.0.0 without --advertise-addr: %v\n%s", err, out)
	}
	// In secure mode the advertised host must be in node.crt, which other
	// nodes check when they dial it.
	certs := secureCerts(t)
	a := freeAddrs(t, 4)
	if out, err := runKvnode(t, "start-single-node", "--certs-dir="+certs, "--store="+t.TempDir(), "--listen-addr="+a[0],
		"--gossip-addr="+a[1], "--sql-addr="+a[2], "--http-addr="+a[3], "--advertise-addr=node9.example.com:26357"); err == nil ||
		!strings.Contains(out, `node.crt is not valid for --advertise-addr's host "node9.example.com"`) ||
		!strings.Contains(out, "kvnode cert create-node node9.example.com") {
		t.Fatalf("advertising a host node.crt does not list: %v\n%s", err, out)
	}

	ps := newProcs(t, 2)
	for _, p := range ps {
		_, sqlPort, _ := net.SplitHostPort(p.sql)
		_, httpPort, _ := net.SplitHostPort(p.httpA)
		p.args = append(p.args, "--advertise-addr="+p.listen, "--advertise-sql-addr=localhost:"+sqlPort,
			"--advertise-http-addr=localhost:"+httpPort)
		p.start()
	}
	if out, err := runKvnode(t, "init", "--insecure", "--host="+ps[0].listen); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, p := range ps {
		p.waitReady(t)
	}
	waitFor(t, 30*time.Second, func() error {
		out, err := psql(t, ps[1].url(), "SELECT string_agg(sql_address, ',' ORDER BY node_id) FROM crdb_internal.gossip_nodes")
		if err != nil {
			return err
		}
		want := []string{}
		for _, p := range ps {
			_, port, _ := net.SplitHostPort(p.sql)
			want = append(want, "localhost:"+port)
		}
		if out != strings.Join(want, ",") {
			return fmt.Errorf("gossip_nodes sql_address: %q, want %q", out, strings.Join(want, ","))
		}
		return nil
	})
	_, port, _ := net.SplitHostPort(ps[1].sql)
	if out := mustPsql(t, "postgresql://root@localhost:"+port+"/defaultdb?sslmode=disable&connect_timeout=5", "SELECT 1"); out != "1" {
		t.Fatalf("psql at the advertised SQL address: %s", out)
	}
}
