// Package testcluster is the one in-process cluster harness for kvnode's
// tests: real nodes (package server) on 127.0.0.1 with fresh ports and
// t.TempDir() stores, stopped by t.Cleanup. Waits poll with deadlines;
// nothing sleeps for a fixed time to "let things settle".
package testcluster
