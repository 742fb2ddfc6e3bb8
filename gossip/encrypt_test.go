package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/nodeid"
)

func withKey(k []byte) nodeOpt { return func(c *Config) { c.SecretKey = k } }

// TestEncryptedGossip: nodes sharing the cluster's key form a cluster; a
// node with another key, and one without any (an --insecure process), can
// neither join it nor be joined by it, and the cluster's node logs why.
func TestEncryptedGossip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	ours := startCluster(t, 2, withKey(key))
	eventually(t, "cluster formed", func() error { return seesAll(ours) })

	for _, tc := range []struct {
		name string
		id   nodeid.ID
		opts []nodeOpt
		log  string // what our node logs when it gets the intruder's message
	}{
		{"another key", 3, []nodeOpt{withKey(bytes.Repeat([]byte{8}, 32))}, "No installed keys could decrypt the message"},
		{"no key", 4, nil, "Encryption is configured but remote state is not encrypted"},
	} {
		intruder := startNode(t, tc.id, tc.opts...)
		if _, err := intruder.Join([]string{ours[0].Addr()}); err == nil {
			t.Fatalf("%s: joined the encrypted cluster", tc.name)
		}
		eventually(t, tc.name+": our node logs the refusal", func() error {
			if !strings.Contains(ours[0].logs.String(), "refused gossip: the peer does not have this cluster's gossip key") {
				return errors.New("no refusal line")
			}
			if !strings.Contains(strings.ToLower(ours[0].logs.String()), strings.ToLower(tc.log)) {
				return errors.New("no line " + tc.log)
			}
			return nil
		})
		if _, err := ours[1].Join([]string{intruder.Addr()}); err == nil {
			t.Fatalf("%s: the cluster joined the intruder", tc.name)
		}
		if len(tc.opts) == 0 {
			// The process without a key logs why too.
			eventually(t, "the intruder logs the refusal", func() error {
				if !strings.Contains(intruder.logs.String(), "refused gossip: the peer does not have this cluster's gossip key") {
					return errors.New("no refusal line")
				}
				return nil
			})
		}
		consistently(t, tc.name+": stays out", time.Second, func() error {
			for _, n := range ours {
				if _, ok := n.Member(tc.id); ok {
					return fmt.Errorf("%s admitted node %d", n.name, tc.id)
				}
			}
			if got := intruder.Members(); len(got) != 1 {
				return fmt.Errorf("the intruder sees %v", got)
			}
			return nil
		})
	}
	if _, err := New(testConfig(9, &logSink{t: t}, withKey([]byte("short")))); err == nil || !strings.Contains(err.Error(), "invalid gossip key") {
		t.Fatalf("a 5-byte key: %v", err)
	}
}
