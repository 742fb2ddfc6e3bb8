// Package schemasync is the pre-Raft procedure's propagation of the schema
// between nodes (releases 1.x, and during the group 0 upgrade until group 0
// is the schema's source): after a DDL the executor pushes the changed
// descriptors to every live peer (PushSchema, sql.SchemaPeers); every node
// gossips its schema digest and pulls the catalog of each live peer whose
// digest differs (Run), merging by sql/catalog's last-writer-wins rule, so
// digests converge; a starting node catches up from every peer it reaches
// before it serves (CatchUp); and it answers kvnode.Node's SchemaPush and
// SchemaPull.
//
// Layering: it reads the node (its gossip, catalog and group 0 state)
// through the Node interface it declares and calls nodes through nodeapi's
// client. It never imports the server or the executor.
package schemasync
