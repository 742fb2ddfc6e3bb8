package server_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/server"
)

// TestAdvertiseRefusals: a node listening on every interface with nothing
// to advertise, or advertising an address nobody can reach, refuses to
// start (before it binds anything) and names the flag that fixes it.
func TestAdvertiseRefusals(t *testing.T) {
	base := server.Config{Store: filepath.Join(t.TempDir(), "s"), ListenAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		SQLAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Insecure: true}
	for _, tc := range []struct {
		name      string
		set       func(*server.Config)
		want, fix string
	}{
		{"listen on 0.0.0.0", func(c *server.Config) { c.ListenAddr = "0.0.0.0:26999" }, "--listen-addr=0.0.0.0:26999", "--advertise-addr=HOST:PORT"},
		{"listen on every interface", func(c *server.Config) { c.ListenAddr = ":26999" }, "--listen-addr=:26999", "--advertise-addr=HOST:PORT"},
		{"gossip on ::", func(c *server.Config) { c.GossipAddr = "[::]:26998" }, "--gossip-addr=[::]:26998", "--advertise-addr"},
		{"SQL on 0.0.0.0", func(c *server.Config) { c.SQLAddr = "0.0.0.0:26997" }, "--sql-addr=0.0.0.0:26997", "--advertise-sql-addr"},
		{"advertise 0.0.0.0", func(c *server.Config) { c.AdvertiseAddr = "0.0.0.0:26999" }, "is not an address anyone can reach", "node1.example.com"},
		{"advertise without a port", func(c *server.Config) { c.AdvertiseSQLAddr = "node1" }, "invalid --advertise-sql-addr", "HOST:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.set(&cfg)
			_, err := server.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(errors.FlattenHints(err), tc.fix) {
				t.Fatalf("got %v (hint %q), want %q with a hint containing %q", err, errors.FlattenHints(err), tc.want, tc.fix)
			}
		})
	}
}
