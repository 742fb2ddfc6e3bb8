// Package realpg starts a throwaway PostgreSQL server for tests that compare
// kvnode with the real thing: Debian's postgresql package (which
// scripts/test.sh installs), initdb'd into a temporary directory, listening
// on a free loopback port with its Unix socket beside its data, run as user
// nobody when the test runs as root (postgres refuses root), and stopped when
// the test ends. What a caller does when no server is installed (skip, or
// fail in CI) is the caller's: BinDir says whether there is one.
//
// Imported by tests only (server's catalog comparison, roachtest/txnworkload's
// checker validation).
package realpg
