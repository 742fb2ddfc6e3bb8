package security

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
// then get the new file, and be restarted, together (RotateGossipKey
// changes the key without a restart).
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

// MaxGossipKeys bounds the keys of one gossip.key (a rotation needs two).
const MaxGossipKeys = 4

// GossipKeys are the keys of gossip.key: Primary encrypts what this node
// sends; every key (Primary and Others) is accepted from peers. A file
// holds one key per line, the primary first; more than one line is a
// rotation in progress (SECURITY.md, "Rotating the gossip key").
type GossipKeys struct {
	Primary []byte
	Others  [][]byte
}

// All is Primary then Others.
func (k GossipKeys) All() [][]byte { return append([][]byte{k.Primary}, k.Others...) }

// Fingerprint names a key in logs without revealing it: the first 8 hex
// digits of its SHA-256.
func Fingerprint(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:4])
}

// LoadGossipKey reads certsDir's gossip.key and returns its primary key.
func LoadGossipKey(certsDir string) ([]byte, error) {
	k, err := LoadGossipKeys(certsDir)
	return k.Primary, err
}

// LoadGossipKeys reads certsDir's gossip.key: one key (base64 of 32 bytes)
// per line, the primary first, at most MaxGossipKeys, no duplicates.
func LoadGossipKeys(certsDir string) (GossipKeys, error) {
	p := filepath.Join(certsDir, GossipKeyFile)
	b, err := os.ReadFile(p)
	if err != nil {
		if oserror.IsNotExist(err) {
			return GossipKeys{}, errors.WithHintf(errors.Wrapf(ErrNoGossipKey, "%s", p),
				"create it once for the cluster with `kvnode cert create-gossip-key --certs-dir=%s` (`kvnode cert create-ca` creates one too) "+
					"and copy the same file to every node's certificates directory", certsDir)
		}
		return GossipKeys{}, errors.Wrapf(err, "reading %s", p)
	}
	keys, err := parseGossipKeys(b)
	if err != nil {
		return GossipKeys{}, errors.WithHintf(errors.Wrapf(err, "%s", p),
			"copy the cluster's gossip.key from another node, or create the cluster's first one with `kvnode cert create-gossip-key --certs-dir=%s`", certsDir)
	}
	return GossipKeys{Primary: keys[0], Others: keys[1:]}, nil
}

func parseGossipKeys(b []byte) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(key) != 32 {
			return nil, errors.Newf("line %d is not a gossip key (base64 of 32 bytes)", i+1)
		}
		for _, k := range keys {
			if bytes.Equal(k, key) {
				return nil, errors.Newf("line %d repeats a key", i+1)
			}
		}
		keys = append(keys, key)
	}
	switch {
	case len(keys) == 0:
		return nil, errors.New("not a gossip key file: it holds no key (base64 of 32 bytes)")
	case len(keys) > MaxGossipKeys:
		return nil, errors.Newf("%d keys, at most %d (finish the rotation in progress first)", len(keys), MaxGossipKeys)
	}
	return keys, nil
}

func writeGossipKeys(p string, keys [][]byte) error {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	return writeFile(p, []byte(b.String()), 0o600, true)
}

// GossipKeyStep is one step of a gossip key rotation (RotateGossipKey).
type GossipKeyStep string

// The steps of a rotation, in order. Each rewrites certsDir's gossip.key;
// the operator copies the file to every node and sends each SIGHUP before
// the next step, so that at every moment every node accepts the key every
// other node sends with.
const (
	// GossipKeyAdd appends a new random key: accepted, not yet used.
	GossipKeyAdd GossipKeyStep = "add"
	// GossipKeyUse makes the newest key (the last line) the primary.
	GossipKeyUse GossipKeyStep = "use"
	// GossipKeyRemove keeps the primary only: the old keys are refused.
	GossipKeyRemove GossipKeyStep = "remove"
)

// RotateGossipKey applies one step of a rotation to certsDir's gossip.key
// and returns the keys it now holds.
func RotateGossipKey(certsDir string, step GossipKeyStep) (GossipKeys, error) {
	if certsDir == "" {
		return GossipKeys{}, errors.WithHint(errors.New("--certs-dir is required"), "pass the certificates directory, e.g. --certs-dir=certs")
	}
	cur, err := LoadGossipKeys(certsDir)
	if err != nil {
		return GossipKeys{}, err
	}
	keys := cur.All()
	switch step {
	case GossipKeyAdd:
		if len(keys) >= MaxGossipKeys {
			return GossipKeys{}, errors.WithHint(errors.Newf("gossip.key already holds %d keys", len(keys)),
				"finish the rotation in progress (--step=use, then --step=remove) first")
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return GossipKeys{}, errors.Wrap(err, "generating the gossip key")
		}
		keys = append(keys, key)
	case GossipKeyUse:
		if len(keys) == 1 {
			return GossipKeys{}, errors.WithHint(errors.New("gossip.key holds one key: there is no new key to use"),
				"add one first with --step=add, copy the file to every node and SIGHUP them")
		}
		last := keys[len(keys)-1]
		keys = append([][]byte{last}, keys[:len(keys)-1]...)
	case GossipKeyRemove:
		keys = keys[:1]
	default:
		return GossipKeys{}, errors.WithHint(errors.Newf("unknown rotation step %q", step), "the steps are add, use and remove, in that order")
	}
	if err := writeGossipKeys(filepath.Join(certsDir, GossipKeyFile), keys); err != nil {
		return GossipKeys{}, err
	}
	return GossipKeys{Primary: keys[0], Others: keys[1:]}, nil
}
