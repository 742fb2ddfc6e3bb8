package keys

import (
	"encoding/binary"

	"github.com/kvnode/kvnode/nodeid"
)

// The system records, under 0x02. Each is a key (one record) or a prefix
// (one record per suffix). The byte after the shared word decides where a
// name sorts: '-' (0x2d) sorts before '/' (0x2f), so "\x02setting-version"
// and "\x02setting-changed/" lie outside the span of "\x02setting/".
const (
	// SystemPrefix is the first byte of every system record.
	SystemPrefix = "\x02"

	// NodeIDGen is the counter of node IDs (uint64BE of the last ID given).
	// Written by server: set to 1 at bootstrap, incremented by the Raft
	// leader when it admits a joining node. Read by server (a node waits
	// for it before it serves).
	NodeIDGen = SystemPrefix + "node-id-gen"

	// NodePrefix + uint32BE(node ID) is a node's record (JSON
	// server.NodeRecord: addresses and binary version). Written by server at
	// bootstrap, at join and when a node's addresses change; deleted at
	// decommission. Read by server (addresses for RPC, status, upgrade
	// finalization) and by the status page.
	NodePrefix = SystemPrefix + "node/"

	// Group0Formation is the group 0 formation record (JSON
	// group0.Formation: which group 0 is current). It lives in the data group
	// because it must be readable when group 0 is not. Written by server
	// (bootstrap, the 2.0 upgrade, the group 0 recovery) with a conditional
	// put; read by server on every node at start and by every coordinator of
	// the upgrade or of a recovery.
	Group0Formation = SystemPrefix + "group0/formation"

	// JobIDGen is the counter of migration job IDs (uint64BE). Written and
	// read by migrations.Runner only.
	JobIDGen = SystemPrefix + "job-id-gen"

	// JobPrefix + uint64BE(job ID) is a migration job (JSON migrations.Job:
	// status, progress, lease). Written by migrations.Runner (the
	// coordinator that holds the job's lease); read by it, by SHOW JOBS and
	// by the status page.
	JobPrefix = SystemPrefix + "job/"

	// LivenessPrefix + uint32BE(node ID) is a node's liveness record (JSON
	// liveness.Record). Created by server with the node record; updated by
	// package liveness (heartbeat, drain) and by server's decommission with
	// conditional puts. Read by liveness (who is live or dead), the upgrade
	// finalization, decommission and the status views.
	LivenessPrefix = SystemPrefix + "liveness/"

	// MigrationPrefix + version string (e.g. "1.1-step.2") maps a version's
	// migration to its job ID (uint64BE), created with a conditional put
	// (absent) so concurrent coordinators find one job. Written and read by
	// migrations.Runner only.
	MigrationPrefix = SystemPrefix + "migration/"

	// SettingChangedPrefix + setting name records when a setting was last
	// set, and to what (JSON settings.Change). Written by package settings in
	// the same batch as the value (deleted by RESET); read by
	// settings.LastChange for the status page. It lies outside
	// SettingPrefix's span on purpose, so the settings cache's refresh scan
	// never reads it.
	SettingChangedPrefix = SystemPrefix + "setting-changed/"

	// ClusterVersion is the replicated `version` setting: the cluster
	// version (text, e.g. "1.1"), written at bootstrap and by the upgrade
	// finalization with a conditional put once every node has persisted the
	// new version. Read by the upgrade finalization and by every node that
	// catches up with it. It is not a settings.Setting, and lies outside
	// SettingPrefix's span so the settings cache never reads it.
	ClusterVersion = SystemPrefix + "setting-version"

	// Downgrade is the replicated downgrade record (JSON
	// upgrademanager.DowngradeRecord: the target release and the version the
	// downgrade started from), present while a downgrade is under way. It is
	// created by upgrademanager with a conditional put in the same batch that
	// sets cluster.preserve_downgrade_option, and deleted once the target is
	// persisted everywhere. Read by upgrademanager, by every node's catch-up
	// (which stands still while it exists) and by the status views.
	Downgrade = SystemPrefix + "downgrade"

	// SettingPrefix + setting name is a cluster setting's value (canonical
	// text); absent means the default. Written by package settings (SET
	// writes, RESET deletes); read by every node's settings cache, which
	// scans the whole span every refresh.
	SettingPrefix = SystemPrefix + "setting/"
)

// SQL's replicated counters, under 0x04.
const (
	// SQLPrefix is the first byte of SQL's replicated records other than
	// table data.
	SQLPrefix = "\x04"

	// TableIDGen is the counter of table IDs (uint64BE of the last ID
	// given). Written by the SQL executor's CREATE TABLE (Increment); read
	// by it only.
	TableIDGen = SQLPrefix + "sql/table-id-gen"

	// ColumnIDGenPrefix + uint64BE(table ID) is the table's counter of
	// column IDs: set by CREATE TABLE to the number of initial columns,
	// incremented by every ADD COLUMN, so column IDs are never reused, even
	// by two nodes adding columns at once. Written and read by the SQL
	// executor only.
	ColumnIDGenPrefix = SQLPrefix + "sql/column-id-gen/"

	// UserPrefix + name is a SQL user or role (JSON users.Record: may it
	// log in, its SCRAM-SHA-256 verifier). Created at bootstrap (2.1) or by
	// release 2.1's migration at 2.1-step.3 (root and the role admin);
	// written by CREATE/ALTER/DROP USER|ROLE. Read by sql/users only: the
	// executor's user cache and pgwire's password authentication through
	// it. No code of a release before 2.1 reads anything under 0x04
	// "sql/user", "sql/role-member" or "sql/grant" (see sql/users/doc.go).
	UserPrefix = SQLPrefix + "sql/user/"

	// RoleMemberPrefix + role + 0x00 + member records that member belongs
	// to role (JSON users.Membership). root's membership of admin is
	// created with root; GRANT role TO / REVOKE role FROM write the rest,
	// DROP USER deletes a user's. Read by sql/users only.
	RoleMemberPrefix = SQLPrefix + "sql/role-member/"

	// GrantPrefix + object + 0x00 + grantee holds the privileges grantee
	// has on object (JSON users.Grant), where object is "table/" + the
	// table ID in decimal or "database/" + the database name. Written by
	// GRANT/REVOKE, by CREATE TABLE of a non-admin (its creator gets ALL),
	// deleted by DROP TABLE (the table's) and DROP USER (the user's). Read
	// by sql/users only.
	GrantPrefix = SQLPrefix + "sql/grant/"

	// TableFencePrefix + uint64BE(table ID) is the table's schema fence
	// (release 2.1): uint64BE of the descriptor's WriteFence, absent for
	// 0, all 0xFF once the table is dropped. Every write to the table's
	// rows asserts it equals what the writer's descriptor says
	// (kvpb.OpCheck), so a schema change that moves the fence refuses
	// every write planned with an older descriptor (sql/schemachange.go).
	// Written by ALTER TABLE ADD PRIMARY KEY and DROP TABLE; read by the
	// data group's apply, inside every table write. Only 2.1 reads it; a
	// downgrade leaves it behind, unread.
	TableFencePrefix = SQLPrefix + "sql/fence/"

	// DDLDecisionPrefix + a transaction's 16-byte ID is the decision key
	// of a transaction that creates tables (release 2.1, txn/DESIGN.md
	// "DDL in a transaction"): "committed" or "aborted". The transaction
	// writes "committed" in the one data-group command that commits its
	// rows; a node that wants it not to commit (its gateway after an
	// ambiguous commit, the resolver after its promise ran out) CPuts
	// "aborted" expecting it absent: exactly one of the two applies.
	// Read by sql (ddltxn.go) to decide the pending records of group 0.
	// Only 2.1 writes or reads it.
	DDLDecisionPrefix = SQLPrefix + "sql/ddl-decision/"
)

// TxnMetaPrefix (0x06) is reserved for the records the data group's apply
// loop keeps for transactions from release 2.1 on (the log index of every
// write, range deletions, the index from which they are kept). Their layout
// is kv's own (kv/txn.go), as the Raft keys are; it is named here only so
// that no other record takes the prefix.
const TxnMetaPrefix = "\x06"

// TableDataPrefix is the first byte of every table data key: 0x88 |
// uint64BE(table ID) | the primary key as sql/rowenc encodes it. Written by
// the SQL executor (INSERT, UPDATE, DELETE, DROP and TRUNCATE delete a table's
// span) and by the 1.1 row rewrite migration; read by the SQL executor.
// Keeping all table data under one byte leaves the rest of the keyspace to
// the records above.
const TableDataPrefix byte = 0x88

// IndexDataPrefix is the first byte of every secondary index entry
// (release 2.1): 0x89 | uint64BE(table ID) | uint32BE(index ID) | the
// indexed columns as sql/rowenc encodes them [| the row's key]; the value is
// the row's key. Written by the SQL executor in the same atomic write as the
// row, by CREATE INDEX's backfill, and deleted with the table or the index;
// read by the SQL executor only. A downgrade below 2.1 is refused while an
// index exists, so no release before 2.1 finds anything here.
const IndexDataPrefix byte = 0x89

// NodeIDGenKey returns the key of the node ID counter.
func NodeIDGenKey() []byte { return []byte(NodeIDGen) }

// NodeKey returns the key of node id's record.
func NodeKey(id nodeid.ID) []byte {
	return binary.BigEndian.AppendUint32([]byte(NodePrefix), uint32(id))
}

// NodeSpan returns [start, end): every node record.
func NodeSpan() (start, end []byte) { return prefixSpan(NodePrefix) }

// Group0FormationKey returns the key of the group 0 formation record.
func Group0FormationKey() []byte { return []byte(Group0Formation) }

// JobIDGenKey returns the key of the job ID counter.
func JobIDGenKey() []byte { return []byte(JobIDGen) }

// JobKey returns the key of job id.
func JobKey(id int64) []byte { return binary.BigEndian.AppendUint64([]byte(JobPrefix), uint64(id)) }

// JobSpan returns [start, end): every job.
func JobSpan() (start, end []byte) { return prefixSpan(JobPrefix) }

// LivenessKey returns the key of node id's liveness record.
func LivenessKey(id nodeid.ID) []byte {
	return binary.BigEndian.AppendUint32([]byte(LivenessPrefix), uint32(id))
}

// LivenessSpan returns [start, end): every liveness record.
func LivenessSpan() (start, end []byte) { return prefixSpan(LivenessPrefix) }

// MigrationKey returns the key mapping the migration of version (its
// String form) to its job.
func MigrationKey(version string) []byte { return append([]byte(MigrationPrefix), version...) }

// SettingChangedKey returns the key of the record of setting name's last
// change.
func SettingChangedKey(name string) []byte { return append([]byte(SettingChangedPrefix), name...) }

// ClusterVersionKey returns the key of the replicated cluster version.
func ClusterVersionKey() []byte { return []byte(ClusterVersion) }

// DowngradeKey returns the key of the replicated downgrade record.
func DowngradeKey() []byte { return []byte(Downgrade) }

// SettingKey returns the key of setting name's value.
func SettingKey(name string) []byte { return append([]byte(SettingPrefix), name...) }

// SettingSpan returns [start, end): every setting's value (and nothing of
// SettingChangedPrefix or ClusterVersion).
func SettingSpan() (start, end []byte) { return prefixSpan(SettingPrefix) }

// TableIDGenKey returns the key of the table ID counter.
func TableIDGenKey() []byte { return []byte(TableIDGen) }

// ColumnIDGenKey returns the key of table tableID's column ID counter.
func ColumnIDGenKey(tableID int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(ColumnIDGenPrefix), uint64(tableID))
}

// UserKey returns the key of user or role name.
func UserKey(name string) []byte { return append([]byte(UserPrefix), name...) }

// UserSpan returns [start, end): every user and role.
func UserSpan() (start, end []byte) { return prefixSpan(UserPrefix) }

// RoleMemberKey returns the key recording that member belongs to role.
func RoleMemberKey(role, member string) []byte {
	k := append([]byte(RoleMemberPrefix), role...)
	return append(append(k, 0), member...)
}

// RoleMemberSpan returns [start, end): every role membership.
func RoleMemberSpan() (start, end []byte) { return prefixSpan(RoleMemberPrefix) }

// GrantKey returns the key of grantee's privileges on object ("table/ID"
// or "database/NAME").
func GrantKey(object, grantee string) []byte {
	k := append([]byte(GrantPrefix), object...)
	return append(append(k, 0), grantee...)
}

// GrantObjectSpan returns [start, end): every grantee's privileges on
// object.
func GrantObjectSpan(object string) (start, end []byte) {
	return prefixSpan(GrantPrefix + object + "\x00")
}

// GrantSpan returns [start, end): every privilege record.
func GrantSpan() (start, end []byte) { return prefixSpan(GrantPrefix) }

// DDLDecisionKey returns the decision key of transaction id.
func DDLDecisionKey(id []byte) []byte { return append([]byte(DDLDecisionPrefix), id...) }

// DDLDecisionSpan is the span of every decision key.
func DDLDecisionSpan() (start, end []byte) { return prefixSpan(DDLDecisionPrefix) }

// TableFenceKey returns the key of table tableID's schema fence.
func TableFenceKey(tableID int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(TableFencePrefix), uint64(tableID))
}

// TablePrefix returns 0x88 | uint64BE(tableID): the prefix of every key of
// the table. The slice has room for a primary key to be appended.
func TablePrefix(tableID int64) []byte {
	b := make([]byte, 9, 32)
	b[0] = TableDataPrefix
	binary.BigEndian.PutUint64(b[1:], uint64(tableID))
	return b
}

// TableSpan returns [start, end): the keys of the table's rows, and nothing
// else. end is the prefix of table tableID+1.
func TableSpan(tableID int64) (start, end []byte) {
	return TablePrefix(tableID), TablePrefix(tableID + 1)
}

// IndexPrefix returns 0x89 | uint64BE(tableID) | uint32BE(indexID): the
// prefix of every entry of one secondary index.
func IndexPrefix(tableID int64, indexID int32) []byte {
	b := make([]byte, 13, 48)
	b[0] = IndexDataPrefix
	binary.BigEndian.PutUint64(b[1:], uint64(tableID))
	binary.BigEndian.PutUint32(b[9:], uint32(indexID))
	return b
}

// IndexSpan returns [start, end): the entries of one secondary index.
func IndexSpan(tableID int64, indexID int32) (start, end []byte) {
	p := IndexPrefix(tableID, indexID)
	return p, PrefixEnd(p)
}

// TableIndexesSpan returns [start, end): the entries of every secondary
// index of a table.
func TableIndexesSpan(tableID int64) (start, end []byte) {
	start = binary.BigEndian.AppendUint64([]byte{IndexDataPrefix}, uint64(tableID))
	return start, binary.BigEndian.AppendUint64([]byte{IndexDataPrefix}, uint64(tableID+1))
}

// AllTablesSpan returns [start, end): every table's rows.
func AllTablesSpan() (start, end []byte) {
	return []byte{TableDataPrefix}, []byte{TableDataPrefix + 1}
}

// PrefixEnd returns the smallest key greater than every key that has prefix
// b, or nil when there is none (b is empty or all 0xFF).
func PrefixEnd(b []byte) []byte {
	end := append([]byte(nil), b...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func prefixSpan(p string) (start, end []byte) { return []byte(p), PrefixEnd([]byte(p)) }
