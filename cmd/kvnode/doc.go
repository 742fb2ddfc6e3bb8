// Command kvnode is the one kvnode binary: it starts nodes (`start`,
// `start-single-node`), bootstraps a cluster (`init`), runs a local demo
// cluster (`demo`), creates the certificates of secure mode (`cert`, with
// package security) and reports its release (`version`). It only parses flags
// and hands them to package server (and `demo`'s to package demo); all
// behaviour lives there.
package main
