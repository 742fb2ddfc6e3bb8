package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/datadriven"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestCatalogMatchesPostgres runs the same client commands against one
// kvnode node and a real PostgreSQL holding the same schema, and records in
// testdata/pg_compare where their outputs differ. The clients are
// unmodified: psql's describe commands (\d, \dt, \d TABLE, \di, \l, \dn,
// \du, \df), SQLAlchemy 1.4's inspector with psycopg2, and JDBC's
// DatabaseMetaData. Each case's expected output is the merged listing of
// both outputs (see diffLines): a line both print, and each line only one
// of them prints, marked. So every difference from PostgreSQL is written
// in the file, with its reason beside it, and a new difference, or one
// that went away, fails the test. Rewrite with -rewrite and review the
// diff: a '-' or '+' line is a difference from PostgreSQL.
func TestCatalogMatchesPostgres(t *testing.T) {
	psql, err := exec.LookPath("psql")
	requireClient(t, err == nil, "psql (Debian's postgresql-client)")
	// The expected outputs are those of psql 15 and PostgreSQL 15 (Debian
	// 12's): another release formats and answers differently.
	psqlVersion, _ := exec.Command(psql, "--version").Output()
	requireClient(t, strings.Contains(string(psqlVersion), "(PostgreSQL) 15."), "psql 15 (found "+strings.TrimSpace(string(psqlVersion))+")")
	pg := startRealPostgres(t)
	requireClient(t, strings.Contains(pg.Version, "(PostgreSQL) 15."), "PostgreSQL 15's server (found "+pg.Version+")")
	c := testcluster.Start(t, 1, testcluster.Options{})
	kvAddr := c.Nodes[0].Config.SQLAddr
	targets := []struct{ addr, url string }{{pg.Addr(), pg.URL("root", "defaultdb")}, {kvAddr, c.URL(0)}}
	home := t.TempDir()

	datadriven.RunTest(t, filepath.Join("testdata", "pg_compare"), func(t *testing.T, d *datadriven.TestData) string {
		var run func(addr, url string) string
		switch d.Cmd {
		case "psql":
			run = func(addr, _ string) string { return runPsqlScript(t, psql, home, addr, d.Input) }
		case "psql-tab":
			script, err := exec.LookPath("script")
			requireClient(t, err == nil, "script (util-linux), which runs psql on a terminal for its tab completion")
			run = func(addr, _ string) string { return runPsqlTerminal(t, script, psql, home, addr, d.Input) }
		case "sqlalchemy":
			requireClient(t, exists(debianPython), "Debian's python3 with python3-sqlalchemy and python3-psycopg2")
			run = func(_, url string) string {
				return runClientScript(t, d.Input, debianPython, filepath.Join("testdata", "clients", "sqlalchemy_catalog_dump.py"), url)
			}
		case "jdbc":
			requireClient(t, exists(jdbcJar), "Debian's libpostgresql-jdbc-java (and a JRE)")
			run = func(addr, _ string) string {
				return runClientScript(t, d.Input, "java", "-cp", jdbcJar, filepath.Join("testdata", "clients", "JdbcCatalogDump.java"),
					"jdbc:postgresql://"+addr+"/defaultdb?user=root&sslmode=disable")
			}
		default:
			d.Fatalf(t, "unknown command %q (psql, psql-tab, sqlalchemy, jdbc)", d.Cmd)
		}
		pgOut := normalizeOutput(run(targets[0].addr, targets[0].url))
		kvOut := normalizeOutput(run(targets[1].addr, targets[1].url))
		return diffLines(pgOut, kvOut)
	})
}

// runPsqlScript runs psql 15 with script on its standard input against the
// database defaultdb at addr as root (not quiet: psql reports a relation
// it did not find only then), and returns what it printed: its
// standard output, then its standard error (the line numbers of psql's
// messages are those of the script).
func runPsqlScript(t *testing.T, psql, home, addr, script string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, "-X", "-h", host, "-p", port, "-U", "root", "-d", "defaultdb", "-f", "-")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "PGCONNECT_TIMEOUT=10", "LC_ALL=C.UTF-8",
		"PGSSLMODE=disable", "PAGER=", "COLUMNS=200"}
	cmd.Stdin = strings.NewReader(script + "\n")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running psql: %v", err)
		}
		fmt.Fprintf(&errOut, "exit status %d\n", ee.ExitCode())
	}
	if errOut.Len() > 0 {
		out.WriteString("stderr:\n" + errOut.String())
	}
	return out.String()
}

// runPsqlTerminal types input into psql 15 running on a terminal (a
// pseudo-terminal that script(1) makes), where psql reads it with readline
// and completes names on TAB by querying the server, exactly as for a user;
// "<TAB>" in input stands for the key. It returns what the terminal showed,
// without the escape sequences readline moves the cursor with. psql quits at
// the end of input.
func runPsqlTerminal(t *testing.T, script, psql, home, addr, input string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmdline := strings.Join([]string{psql, "-X", "-h", host, "-p", port, "-U", "root", "-d", "defaultdb"}, " ")
	cmd := exec.CommandContext(ctx, script, "--quiet", "--return", "--command", cmdline, "/dev/null")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "PGCONNECT_TIMEOUT=10", "LC_ALL=C.UTF-8",
		"PGSSLMODE=disable", "PAGER=", "COLUMNS=200", "TERM=dumb", "INPUTRC=/dev/null"}
	cmd.Stdin = strings.NewReader(strings.ReplaceAll(input, "<TAB>", "\t") + "\n\\q\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql on a terminal: %v\n%s", err, out)
	}
	// What the terminal echoed of the input typed ahead, and psql's banner
	// (which names the server's version), come before psql's own help line.
	text := terminalText(string(out))
	const help = "Type \"help\" for help.\n"
	if i := strings.Index(text, help); i >= 0 {
		text = text[i+len(help):]
	}
	return text
}

// terminalText is what a terminal shows of out: escape sequences and
// carriage returns dropped, each backspace erasing the character before it.
func terminalText(out string) string {
	var b []rune
	for i := 0; i < len(out); i++ {
		switch c := out[i]; {
		case c == 0x1b: // ESC [ ... final byte
			if i+1 < len(out) && out[i+1] == '[' {
				i += 2
				for i < len(out) && (out[i] < 0x40 || out[i] > 0x7e) {
					i++
				}
			} else {
				i++
			}
		case c == '\r', c == 0x07:
		case c == '\b':
			if len(b) > 0 {
				b = b[:len(b)-1]
			}
		default:
			r, size := utf8.DecodeRuneInString(out[i:])
			b = append(b, r)
			i += size - 1
		}
	}
	return string(b)
}

// runClientScript runs a client program with input on its standard input
// and returns its output; it fails the test if the program fails.
func runClientScript(t *testing.T, input string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(input + "\n")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// normalizeOutput is the one normalization of both outputs: trailing
// spaces on each line (psql pads its last column; a file keeps none) and
// trailing blank lines are dropped. Everything else is compared as
// printed: PostgreSQL has the same user (root) and database (defaultdb)
// as kvnode, so owners and names need no rewriting.
func normalizeOutput(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// diffLines merges PostgreSQL's lines (a) and kvnode's (b) along their
// longest common subsequence: a line both print is prefixed "  ", a line
// only PostgreSQL prints "- ", a line only kvnode prints "+ ". At each
// difference PostgreSQL's lines come first.
func diffLines(a, b []string) string {
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	line := func(prefix, s string) {
		sb.WriteString(strings.TrimRight(prefix+s, " "))
		sb.WriteByte('\n')
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			line("  ", a[i])
			i, j = i+1, j+1
		case j == len(b) || (i < len(a) && lcs[i+1][j] >= lcs[i][j+1]):
			line("- ", a[i])
			i++
		default:
			line("+ ", b[j])
			j++
		}
	}
	return sb.String()
}

// TestDiffLines checks the merge the comparison's expected outputs are
// written in.
func TestDiffLines(t *testing.T) {
	for _, tc := range []struct {
		a, b []string
		want string
	}{
		{nil, nil, ""},
		{[]string{"x", "y"}, []string{"x", "y"}, "  x\n  y\n"},
		{[]string{"x", "y", "z"}, []string{"x", "z"}, "  x\n- y\n  z\n"},
		{[]string{"x", "z"}, []string{"x", "y", "z"}, "  x\n+ y\n  z\n"},
		{[]string{"a", "b"}, []string{"c"}, "- a\n- b\n+ c\n"},
		{[]string{" padded"}, []string{""}, "-  padded\n+\n"},
	} {
		if got := diffLines(tc.a, tc.b); got != tc.want {
			t.Errorf("diffLines(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}
