// Command kvnode is the one kvnode binary: it starts nodes (`start`,
// `start-single-node`), bootstraps a cluster (`init`), runs a local demo
// cluster (`demo`), creates the certificates of secure mode (`cert`, with
// package security) and reports its release (`version`). It only parses flags
// and hands them to package server; all behaviour lives there. The one
// exception is the presentation of `demo --upgrade-from` (demo.go), a guided
// rolling upgrade of in-process nodes that drives the servers through their
// public API and SQL, as an operator would.
package main
