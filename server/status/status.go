package status

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/console"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/upgrademanager"
)

// Node is what the status surface needs of the node it runs on.
type Node interface {
	NodeID() nodeid.ID
	ClusterID() string
	BinaryVersion() clusterversion.Version
	// ActiveVersion is the cluster version the node acts on.
	ActiveVersion() clusterversion.Version
	// PersistedVersion is the cluster version the node has persisted
	// (false before it has joined a cluster).
	PersistedVersion() (clusterversion.Version, bool)
	// Readiness says whether the node serves SQL, and if not, why.
	Readiness() (ready bool, why string)
	Draining() bool
	// Replica is the node's data replica (nil before it has joined).
	Replica() *kv.Replica
	AdvertisedRPCAddr() string
	AdvertisedHTTPAddr() string
	// ConsoleClock is the clock-offset monitor's verdict for the page (nil
	// before its first measurement).
	ConsoleClock() *console.Clock
	// UpgradeStatus is SHOW UPGRADE STATUS (linearizable reads).
	UpgradeStatus(ctx context.Context) (*UpgradeStatus, error)
	// UpgradePlan is SHOW UPGRADE PLAN [FOR VERSION target].
	UpgradePlan(ctx context.Context, target clusterversion.Version) (*upgrademanager.Plan, error)
	// LocalNodeStatuses is every node's status from this node's applied
	// state, without reading through Raft.
	LocalNodeStatuses() []nodeapi.NodeStatus
	// Group0 is the node's member of group 0.
	Group0() Group0
	// Group0StoredState is the group 0 upgrade state in the node's store
	// ("" if none, or if the store is closing).
	Group0StoredState() (group0.State, error)
	// Users answers for the users store; nil while SQL is not started.
	Users() Users
}

// Group0 is what the status surface reads of the node's member of group 0
// (group0/member.Member).
type Group0 interface {
	State() group0.State
	Enabled() bool
	Replica() *kv.Replica
	Isolated() bool
}

// Users is what the login needs of the users store (sql.Executor).
type Users interface {
	IsAdmin(ctx context.Context, user string) (bool, error)
	UserAuth(ctx context.Context, user string) (pgwire.UserAuth, error)
	CheckLogin(ctx context.Context, user string) error
}

// Config is what New needs.
type Config struct {
	Node Node
	// Secure: the node runs in secure mode, and all but /health, /metrics
	// and the login need an admin.
	Secure bool
	// Registry is the node's metrics registry, served at /metrics.
	Registry *prometheus.Registry
	// LoginLimiter throttles failed password logins (SQL and HTTP share it).
	LoginLimiter *pgwire.LoginLimiter
	Log          *slog.Logger
}

// Status is the node's status surface: its HTTP handler, the status
// page's logins, the shared cache of the upgrade status and the metrics
// collector.
type Status struct {
	cfg  Config
	node Node
	// sessions are the status page's logins (httpauth.go).
	sessions httpSessions
	// cache shares UpgradeStatus between the console and /metrics
	// (cache.go).
	cache statusCache
}

// New returns the node's status surface; it serves nothing until the
// server serves Handler.
func New(cfg Config) *Status {
	return &Status{cfg: cfg, node: cfg.Node}
}

// Collector is the prometheus.Collector of the operator's metrics no part
// owns (metrics.go).
func (s *Status) Collector() prometheus.Collector { return metricsCollector{s} }
