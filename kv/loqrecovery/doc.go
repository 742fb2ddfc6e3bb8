// Package loqrecovery is the recovery of the data group from a majority
// lost for good (`kvnode node recover`, docs/recovery.md; CockroachDB's
// pkg/kv/kvserver/loqrecovery is the model): the data group, and group 0
// with it, re-formed on the survivors. The node that receives the request
// coordinates:
//
//  1. Ask every node the local replica knows of (node records, gossip, the
//     --join addresses and the Raft configuration, decommissioned ones left
//     out) for its Raft state (nodeapi.RecoverInfo). Those that do not
//     answer are the dead.
//  2. Plan (plan.go, a pure function of the answers): the seed is the
//     survivor with the highest applied index; refuse if a majority of the
//     voters answers (the group is not lost), unless forced. Print it; a
//     dry run stops here.
//  3. The seed makes itself the only voter (kv.Replica.ForceNewConfig),
//     writing a record of the recovery into its node-local keys in the
//     same batch, and elects itself.
//  4. Every other survivor wipes its data group state (kv.Replica.Wipe).
//  5. The seed marks the dead nodes decommissioned (nothing waits for them
//     any more: the upgrade, group 0's membership) and adds the survivors
//     back as learners; they get its snapshot and are promoted.
//  6. Once every survivor serves again, group 0, if it has no leader
//     either, is re-formed by its own recovery procedure (the Group0
//     interface; package group0/member implements it).
//  7. The seed's record is marked done.
//
// Every step is idempotent, and a recovery that stopped part-way is
// resumed by running the command again: the record on the seed says a
// recovery is under way, and the steps already done are skipped.
//
// Layering: it runs on the node's *kv.Replica and calls the other nodes
// through nodeapi's client; what it needs of the node (identity,
// addresses, gossip's view, the promotion gate) and of group 0 it declares
// as the Node and Group0 interfaces, which the server implements. It never
// imports the server, and it decides nothing group 0's own recovery
// (group0.PlanRecovery) decides.
package loqrecovery
