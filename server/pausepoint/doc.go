// Package pausepoint parses the process-level pause points of `kvnode
// start` that roachtest scenarios set through the environment, and builds
// the server's testing hooks from them: KVNODE_TESTING_GROUP0_PAUSE pauses
// the group 0 upgrade procedure before chosen steps
// (server.Knobs.Group0Hook), KVNODE_TESTING_VERSION_STEP_PAUSE pauses a
// finalization before it persists chosen ladder steps
// (server.Knobs.VersionStepPause). A pause waits for a release file (and
// writes a marker saying who paused where) or for a duration.
//
// TESTING ONLY: an unset or empty variable is production; a set one makes
// the node warn at start and at every pause; a value that does not parse
// refuses the start with the valid steps. cmd/kvnode reads the variables;
// in-process tests set the knobs directly. It knows the steps
// (clusterversion's ladder, group0's procedure) and nothing of the server.
package pausepoint
