// Package join admits new nodes into the cluster, as the data group's
// leader runs it (kvnode.Node's Join; rqlite keeps its joining apart from
// the wiring the same way): a request reaching another node is forwarded
// to the leader; the leader refuses a binary that cannot run the active
// cluster version (checked again before anything is written, and after,
// undoing the records if a finalization step moved the version meanwhile,
// so that no ghost member stays behind), gives the node an ID that is
// never reused (a join retried after a timeout gets back the ID it was
// given and never started under), writes its node and liveness records in
// one batch and adds it as a learner; the promotion to voter is the data
// group's (kv, behind the server's promotion gate).
//
// Layering: it reads the node through the Node interface it declares,
// writes through the data replica, and forwards through nodeapi's client.
// The joining side (waiting for `kvnode init` or a node of --join to admit
// this one) stays in the server's start. It never imports the server.
package join
