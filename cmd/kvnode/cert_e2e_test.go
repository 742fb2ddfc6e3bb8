package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runKvnode runs the real binary and returns its combined output.
func runKvnode(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(kvnodeBin, args...).CombinedOutput()
	return string(out), err
}

// TestCertCommands runs `kvnode cert` as an operator does: create a CA, a
// node and a client certificate, list them, and see each refusal (overwrite,
// missing and foreign CA key) with its hint.
func TestCertCommands(t *testing.T) {
	d := t.TempDir()
	certs, caKey := filepath.Join(d, "certs"), filepath.Join(d, "safe", "ca.key")
	flags := []string{"--certs-dir=" + certs, "--ca-key=" + caKey}
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := runKvnode(t, args...)
		if err != nil {
			t.Fatalf("kvnode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustFail := func(wantErr, wantHint string, args ...string) {
		t.Helper()
		out, err := runKvnode(t, args...)
		_, hint, _ := strings.Cut(out, "HINT: ")
		if err == nil || !strings.Contains(out, wantErr) || !strings.Contains(hint, wantHint) {
			t.Fatalf("kvnode %s: err %v, want %q and hint %q; output:\n%s", strings.Join(args, " "), err, wantErr, wantHint, out)
		}
	}
	mustRun(append([]string{"cert", "create-ca"}, flags...)...)
	mustRun(append([]string{"cert", "create-node", "localhost", "127.0.0.1"}, flags...)...)
	mustRun(append([]string{"cert", "create-client", "root"}, flags...)...)
	for _, f := range []string{"node.key", "client.root.key"} {
		fi, err := os.Stat(filepath.Join(certs, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	out := mustRun("cert", "list", "--certs-dir="+certs)
	for _, want := range []string{"CA  ", "ca.crt", "node.crt", "node.key", "CN=node", "localhost,127.0.0.1", "client.root.crt", "CN=root"} {
		if !strings.Contains(out, want) {
			t.Errorf("cert list lacks %q:\n%s", want, out)
		}
	}

	mustFail("already exists", "--overwrite", append([]string{"cert", "create-ca"}, flags...)...)
	mustFail("already exists", "--overwrite", append([]string{"cert", "create-node", "localhost"}, flags...)...)
	mustRun(append([]string{"cert", "create-node", "localhost", "--overwrite"}, flags...)...)
	mustFail("CA key not found", "create-ca", "cert", "create-client", "alice", "--certs-dir="+certs, "--ca-key="+filepath.Join(d, "nope.key"))
	other := filepath.Join(d, "other")
	mustRun("cert", "create-ca", "--certs-dir="+other, "--ca-key="+filepath.Join(other, "ca.key"))
	mustFail("CA key does not match ca.crt", "--ca-key", "cert", "create-client", "alice", "--certs-dir="+certs, "--ca-key="+filepath.Join(other, "ca.key"))
	mustFail("--ca-key is required", "--ca-key=", "cert", "create-client", "alice", "--certs-dir="+certs)
	mustFail("at least one host", "every name and address", append([]string{"cert", "create-node", "--overwrite"}, flags...)...)
}
