package server

import (
	"context"
	"github.com/kvnode/kvnode/clusterversion"
	"log/slog"
	"sync/atomic"
	"time"
)

// Config configures one node. The first six fields are the flags of
// `kvnode start`.
type Config struct {
	Store      string   // --store
	ListenAddr string   // --listen-addr: node-to-node RPC (Raft, join, schema)
	GossipAddr string   // --gossip-addr: memberlist
	SQLAddr    string   // --sql-addr: pgwire
	HTTPAddr   string   // --http-addr: health, metrics, status
	Join       []string // --join: other nodes' --listen-addr

	Logger *slog.Logger

	// Testing knobs; zero values are production defaults.
	RaftTickInterval time.Duration // default 100ms
	RaftLogRetain    uint64        // default 10000 entries
	FastGossip       bool          // memberlist timers for in-process tests
	SchemaSyncEvery  time.Duration // default 500ms
	// Knobs are testing hooks; the zero value is production.
	Knobs Knobs

	// AutoUpgradeInterval is how often the auto-upgrade loop looks
	// (default 10s; it backs off to 6x that while blocked).
	AutoUpgradeInterval time.Duration
	// Liveness: how often a node heartbeats its liveness record (default
	// 1.5s) and for how long each heartbeat makes it live (default 4.5s).
	LivenessHeartbeat time.Duration
	LivenessDuration  time.Duration
	// TestingHoldDecommission, while it holds true, keeps the leader's
	// decommission loop from removing nodes (a pause point for tests that
	// must observe a node while it is decommissioning).
	TestingHoldDecommission *atomic.Bool
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SchemaSyncEvery == 0 {
		c.SchemaSyncEvery = 500 * time.Millisecond
	}
	if c.LivenessHeartbeat <= 0 {
		c.LivenessHeartbeat = 1500 * time.Millisecond
	}
	if c.LivenessDuration <= 0 {
		c.LivenessDuration = 3 * c.LivenessHeartbeat
	}
}

// Knobs let in-process tests run nodes as different releases and catch
// finalization at chosen points, as CockroachDB's testing knobs do.
type Knobs struct {
	// BinaryVersion makes the node behave as a binary of that release
	// (in-process tests share one binary).
	BinaryVersion clusterversion.Version
	// MigrationLease and MigrationBatchSize override the migration job
	// lease (10s) and rows per checkpoint (500).
	MigrationLease     time.Duration
	MigrationBatchSize int
	// MigrationCheckpoint runs on a migration's coordinator before each
	// checkpoint (a pause point); an error stops the migration there.
	MigrationCheckpoint func(ctx context.Context, nodeID int32, done int64) error
	// BeforeVersionStep runs on the coordinator before it persists each
	// ladder step; an error stops the finalization there.
	BeforeVersionStep func(step clusterversion.Version) error
}
