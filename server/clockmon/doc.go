// Package clockmon is a node's clock and its clock-offset monitor, wired
// to the cluster (kv/DESIGN.md, "Leader lease"): which nodes to measure
// (the data group's other members), how (kvnode.Node's Clock method, which
// it also answers), the kvnode_clock_offset_* metrics, the status page's
// view, and the switch that lets the data group's leader serve reads from
// its lease (--leased-reads, cluster version 2.1, a healthy clock).
//
// Layering: the measuring itself is rpc.ClockMonitor's (CockroachDB keeps
// its RemoteClockMonitor in pkg/rpc); this package reads the node through
// the Node interface it declares and calls nodes through nodeapi's client.
// It never imports the server.
package clockmon
