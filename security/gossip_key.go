package security

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/errors/oserror"
)

// GossipKeyFile is the cluster's gossip encryption key in a certificates
// directory: 32 random bytes (AES-256), base64, mode 0600. Every node of a
// secure cluster holds the same file; memberlist encrypts and authenticates
// every gossip message with it (AES-GCM), so a process without it can
// neither read membership nor inject any.
const GossipKeyFile = "gossip.key"

// ErrNoGossipKey: a secure node's certificates directory has no gossip.key.
var ErrNoGossipKey = errors.New("no gossip encryption key")

// CreateGossipKey writes a new gossip.key into o.CertsDir (o.CAKey is not
// needed). It refuses to replace one unless o.Overwrite: every node must
// then get the new file, and be restarted, together.
func CreateGossipKey(o Options) error {
	if o.CertsDir == "" {
		return errors.WithHint(errors.New("--certs-dir is required"), "pass the certificates directory, e.g. --certs-dir=certs")
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return errors.Wrap(err, "generating the gossip key")
	}
	if err := os.MkdirAll(o.CertsDir, 0o700); err != nil {
		return errors.Wrap(err, "creating the certificates directory")
	}
	p := filepath.Join(o.CertsDir, GossipKeyFile)
	if err := writeFile(p, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600, o.Overwrite); err != nil {
		if errors.Is(err, ErrExists) {
			return errors.WithHint(err, "the cluster already has a gossip key: copy this file to every node; "+
				"--overwrite replaces it, and every node must then get the new file")
		}
		return err
	}
	return nil
}

// LoadGossipKey reads certsDir's gossip.key.
func LoadGossipKey(certsDir string) ([]byte, error) {
	p := filepath.Join(certsDir, GossipKeyFile)
	b, err := os.ReadFile(p)
	if err != nil {
		if oserror.IsNotExist(err) {
			return nil, errors.WithHintf(errors.Wrapf(ErrNoGossipKey, "%s", p),
				"create it once for the cluster with `kvnode cert create-gossip-key --certs-dir=%s` (`kvnode cert create-ca` creates one too) "+
					"and copy the same file to every node's certificates directory", certsDir)
		}
		return nil, errors.Wrapf(err, "reading %s", p)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, errors.WithHintf(errors.Newf("%s is not a gossip key (base64 of 32 bytes)", p),
			"copy the cluster's gossip.key from another node, or create the cluster's first one with `kvnode cert create-gossip-key --certs-dir=%s`", certsDir)
	}
	return key, nil
}
