package server

import (
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
