// Package testutil holds what Go tests of every package share: today one
// polling helper, SucceedsSoon (CockroachDB's testutils.SucceedsSoon is the
// model), so that every in-process test waits for a condition the same way:
// with a deadline, with backoff, and failing with the condition's last
// error. Poll and PollEvery are its error-returning forms (PollEvery at a
// fixed interval, for conditions that are costly to check, as cmd/kvnode's
// process-level tests' are).
//
// SyncBuffer collects what goroutines write (node logs) for a test to show.
//
// Polling is for conditions that become true; a test that must show that
// something does not happen pins it down with a knob or a pause point, not
// with a sleep and a poll.
//
// It imports nothing of ours and only the standard library, so that a test
// of any package, leaves included, may use it. Process-level tests
// (roachtest) keep their own steps.Eventually, which logs each step of a
// run and stops early on an error marked permanent; it has no testing.TB to
// fail.
package testutil
