package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/sql/pgwire"
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
	// AdvertiseAddr (--advertise-addr) is the HOST:PORT other nodes dial
	// for RPC when it differs from ListenAddr (a node listening on
	// 0.0.0.0, or behind NAT); its host is also advertised with the
	// gossip port. AdvertiseSQLAddr and AdvertiseHTTPAddr
	// (--advertise-sql-addr, --advertise-http-addr) are what clients are
	// told; by default AdvertiseAddr's host with the SQL and HTTP ports. A
	// node listening on an unspecified address (0.0.0.0, ::, or an empty
	// host) without the matching advertise address refuses to start
	// (advertise.go).
	AdvertiseAddr     string
	AdvertiseSQLAddr  string
	AdvertiseHTTPAddr string
	// Listeners, if set, are this node's sockets, already bound by the
	// caller (server/testcluster binds them with listenerutil.ListenLoopback first, so
	// no other process can take a port between its choice and its bind);
	// the four Addr fields are then taken from them. New takes them over:
	// Stop, or a failed New, closes them. kvnode start leaves it nil and
	// the node binds the addresses of its flags (as a restarted test node
	// does with its known addresses).
	Listeners *Listeners

	// Security: exactly one of Insecure (--insecure: plaintext, no
	// authentication) and CertsDir (--certs-dir: TLS on every port, mutual
	// TLS between nodes, client certificates for SQL and the CLI; see
	// package security) must be set; New refuses neither and both. Tests
	// set Insecure unless they test security.
	Insecure bool
	CertsDir string

	Logger *slog.Logger

	// MaxOffset (--max-offset) bounds how far the nodes' clocks may
	// disagree; the data group's leader lease relies on it, and the
	// clock-offset monitor stops this node's leased reads when its clock
	// is beyond it (kv/DESIGN.md). Default 500ms, scaled with
	// RaftTickInterval when a test shortens the tick. DisableLeaseReads
	// (--leased-reads=false) makes every linearizable read take a
	// ReadIndex round. ClockMonitorInterval is how often the monitor
	// measures the other nodes' clocks (default 1s).
	MaxOffset            time.Duration
	DisableLeaseReads    bool
	ClockMonitorInterval time.Duration

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

	// Group 0. Group0Timeout bounds a group 0 read barrier or commit
	// (default 10s); Group0DDLWait how long DDL issued during
	// synchronize waits for use_post_raft_procedures (default 30s);
	// Group0PropagationWait how long a committed DDL waits for the other
	// live members to apply it (default 5s); Group0UpgradeTimeout bounds
	// one run of the upgrade procedure (default 2m).
	Group0Timeout         time.Duration
	Group0DDLWait         time.Duration
	Group0PropagationWait time.Duration
	Group0UpgradeTimeout  time.Duration

	// LoginLimits throttle failed password logins per user and address
	// (pgwire.LoginLimiter); zero fields take its defaults (5 free
	// failures, then 1s doubling up to 1m, forgotten after 15m).
	LoginLimits pgwire.LoginLimits
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
	if c.MaxOffset == 0 {
		c.MaxOffset = kv.DefaultMaxOffset
		if c.RaftTickInterval > 0 && c.RaftTickInterval < 100*time.Millisecond {
			c.MaxOffset = kv.DefaultMaxOffset * c.RaftTickInterval / (100 * time.Millisecond)
		}
	}
	if c.ClockMonitorInterval <= 0 {
		c.ClockMonitorInterval = time.Second
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
	MigrationCheckpoint func(ctx context.Context, nodeID nodeid.ID, done int64) error
	// BeforeVersionStep runs on the coordinator before it persists each
	// ladder step; an error stops the finalization there.
	BeforeVersionStep func(step clusterversion.Version) error
	// VersionStepPause runs right after BeforeVersionStep, with the
	// finalization's context (a pause ends with it): the hook of
	// KVNODE_TESTING_VERSION_STEP_PAUSE (pausepoint.VersionStepEnv).
	VersionStepPause func(ctx context.Context, step clusterversion.Version) error
	// ReportedVersion rewrites what this node's finalization decisions and
	// SHOW UPGRADE STATUS read as node id's reported (gossiped) persisted
	// version: a stale report, as gossip that has not caught up leaves it.
	ReportedVersion func(id nodeid.ID, reported string) string
	// ReportedBuild rewrites what this node's finalization decisions and
	// SHOW UPGRADE STATUS read as node id's reported binary version (its
	// record and gossip): a stale report, as gossip that still carries the
	// metadata of the node's previous run leaves it.
	ReportedBuild func(id nodeid.ID, reported string) string
	// Group0Hook runs on the coordinator before every action of the
	// group 0 upgrade procedure (pause and crash points); an error stops
	// the procedure there.
	Group0Hook func(ctx context.Context, a group0.Action) error
	// Group0Backoff shortens the upgrade procedure's pauses.
	Group0Backoff time.Duration
	// BeforeGossipStart runs when a node with an identity is about to start
	// gossip (a pause point: a test stops the node there).
	BeforeGossipStart func()
	// BeforeJoinAdmit runs on the data group's leader when it admits a
	// joining node (after the first version check, before any record is
	// written), with the joiner's listen address: a pause point.
	BeforeJoinAdmit func(listenAddr string)
	// BeforeRecoverStep runs on the coordinator of `kvnode node recover`
	// before each of its steps ("reform", "wipe", "admit", "group0",
	// "done"); an error stops the recovery there (package kv/loqrecovery).
	BeforeRecoverStep func(step string) error
	// Group0BeforeSchemaCheck runs in the upgrade's schema sync after the
	// merge is committed and before the nodes' catalogs are compared with
	// group 0 (a point where DDL through group 0 may move its state on).
	Group0BeforeSchemaCheck func(ctx context.Context)
	// BeforeRowWrite runs in every INSERT/UPSERT after its rows are
	// encoded and before they are written (sql.Config.TestingBeforeWrite).
	BeforeRowWrite func(ctx context.Context)
	// AddPKHeld runs in ALTER TABLE ADD PRIMARY KEY once the table's
	// writes are held, before its rows are copied
	// (sql.Config.TestingAddPKHeld).
	AddPKHeld func(ctx context.Context)
	// IndexWriteOnly runs in CREATE INDEX once the index is write-only,
	// before its backfill (sql.Config.TestingIndexWriteOnly).
	IndexWriteOnly func(ctx context.Context)
	// SchemaHoldTTL, if set, replaces how long a schema change's hold on a
	// table's writes lasts unrenewed (sql.Config.TestingHoldTTL).
	SchemaHoldTTL time.Duration
	// CopyBatchRows, if positive, replaces the rows per batch of COPY FROM
	// (sql.Config.TestingCopyBatchRows).
	CopyBatchRows int
	// DDLTxnStep runs after each step of the commit of a transaction with
	// DDL; an error stops the gateway there as a crash would
	// (sql.Config.TestingDDLTxnStep).
	DDLTxnStep func(sql.DDLTxnStep) error
	// PendingTTL, if set, replaces how long a gateway promises to decide
	// its transaction's pending tables (sql.Config.TestingPendingTTL).
	PendingTTL time.Duration
	// ResolverInterval, if set, replaces how often the resolver looks at
	// pending tables (10 s); negative, the resolver does not run.
	ResolverInterval time.Duration
}
