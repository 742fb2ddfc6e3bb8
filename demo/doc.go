// Package demo is `kvnode demo`: a local cluster of in-process nodes on
// temporary stores (Run), and with --upgrade-from the guided rolling
// upgrade of such a cluster from an older release to this binary's, one
// release at a time (RunUpgrade): the walk-through's steps, the demo>
// prompt and its commands, the rows it writes and checks, and how it
// prints what it does.
//
// Layering: it drives the cluster of package server/localcluster (which
// starts, stops and restarts the nodes) through the servers' public API,
// SQL and HTTP, as an operator would, and decides nothing for them: whether
// a node may start on a release, or the cluster finalize, is the server's
// own decision, which the demo shows. cmd/kvnode parses the flags and
// hands them over (Options); the process-level tests of the command
// (cmd/kvnode's demo_test.go and demo_secure_e2e_test.go) run it as a
// newcomer does.
package demo
