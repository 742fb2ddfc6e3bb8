package member

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWipeDirIsAllOrNothing: wiping a store directory renames it aside
// before deleting it, so what a crash mid-deletion leaves is never under the
// store's own name, and the next start removes it.
func TestWipeDirIsAllOrNothing(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "group0")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "000001.sst"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A crash during an earlier deletion: the renamed directory, partly
	// deleted, is all that is left of it.
	left := dir + wipedSuffix + "1"
	if err := os.MkdirAll(filepath.Join(left, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := wipeDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the wiped store is still there: %v", err)
	}
	if err := removeWiped(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	// Wiping a store that does not exist is a no-op.
	if err := wipeDir(dir); err != nil {
		t.Fatal(err)
	}
}
