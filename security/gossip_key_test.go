package security

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateGossipKey: add appends a key (accepted, not used), use makes it
// the primary with the old one still accepted, remove keeps the primary
// only; the steps refuse what makes no sense, and a broken file is refused
// on load with a hint.
func TestRotateGossipKey(t *testing.T) {
	dir := t.TempDir()
	if err := CreateGossipKey(Options{CertsDir: dir}); err != nil {
		t.Fatal(err)
	}
	orig, err := LoadGossipKeys(dir)
	if err != nil || len(orig.Others) != 0 {
		t.Fatalf("%v %v", orig, err)
	}
	if _, err := RotateGossipKey(dir, GossipKeyUse); err == nil || !strings.Contains(err.Error(), "no new key") {
		t.Fatalf("use with one key: %v", err)
	}
	added, err := RotateGossipKey(dir, GossipKeyAdd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(added.Primary, orig.Primary) || len(added.Others) != 1 {
		t.Fatalf("after add: primary changed or %d others", len(added.Others))
	}
	newKey := added.Others[0]
	used, err := RotateGossipKey(dir, GossipKeyUse)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(used.Primary, newKey) || len(used.Others) != 1 || !bytes.Equal(used.Others[0], orig.Primary) {
		t.Fatal("after use: the new key is not the primary, or the old one is not accepted")
	}
	if got, err := LoadGossipKeys(dir); err != nil || !bytes.Equal(got.Primary, newKey) {
		t.Fatalf("reload after use: %v", err)
	}
	if k, err := LoadGossipKey(dir); err != nil || !bytes.Equal(k, newKey) {
		t.Fatalf("LoadGossipKey is not the primary: %v", err)
	}
	removed, err := RotateGossipKey(dir, GossipKeyRemove)
	if err != nil || !bytes.Equal(removed.Primary, newKey) || len(removed.Others) != 0 {
		t.Fatalf("after remove: %v %v", removed, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, GossipKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("gossip.key mode: %v %v", fi.Mode(), err)
	}
	for i := 1; i < MaxGossipKeys; i++ {
		if _, err := RotateGossipKey(dir, GossipKeyAdd); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := RotateGossipKey(dir, GossipKeyAdd); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("a fifth key: %v", err)
	}
	if _, err := RotateGossipKey(dir, "later"); err == nil {
		t.Fatal("an unknown step was accepted")
	}
	p := filepath.Join(dir, GossipKeyFile)
	b, _ := os.ReadFile(p)
	first := strings.SplitN(string(b), "\n", 2)[0]
	for name, content := range map[string]string{
		"repeated": first + "\n" + first + "\n",
		"garbage":  first + "\nnot-a-key\n",
		"empty":    "\n\n",
	} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadGossipKeys(dir); err == nil {
			t.Fatalf("%s gossip.key was accepted", name)
		}
	}
	if Fingerprint(newKey) == "" || strings.Contains(string(b), Fingerprint(newKey)) {
		t.Fatal("a fingerprint must name a key without being part of it")
	}
}
