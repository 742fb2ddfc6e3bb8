// Package clusterversion defines kvnode's versions: the Version type, the
// release ladder (an append-only table, 1.0 -> 1.1 -> 2.0), the binary
// version fixed at build time, and the compatibility rule that a binary of
// release R serves cluster versions from the previous release up to R.
//
// It is a leaf: it imports nothing of kvnode's and must keep a light set of
// dependencies, because every other package asks it what is allowed.
// It deliberately holds no state about the running cluster; the active
// cluster version, its persistence and the upgrade machinery live in the
// packages that own them (server, migrations).
package clusterversion
