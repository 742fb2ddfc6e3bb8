package txnworkload

import (
	"slices"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestCommitOutcome pins down which COMMIT errors mean "not committed"
// (fail) and which leave the outcome unknown (info): calling an
// ambiguous commit failed would hide a lost or duplicated write from the
// checkers, and calling a failed one ambiguous would weaken G1a.
func TestCommitOutcome(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		definite bool
	}{
		{"restart transaction", &pgconn.PgError{Code: "40001", Message: "restart transaction: read changed"}, true},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"aborted transaction", &pgconn.PgError{Code: "25P02"}, true},
		{"server answered ROLLBACK", pgx.ErrTxCommitRollback, true},
		{"wrapped restart", errors.Wrap(&pgconn.PgError{Code: "40001"}, "commit"), true},
		{"result is ambiguous", &pgconn.PgError{Code: "40003", Message: "result is ambiguous"}, false},
		{"unavailable", &pgconn.PgError{Code: "58000"}, false},
		{"shutting down", &pgconn.PgError{Code: "57P01"}, false},
		{"connection lost", errors.Wrap(pgconn.ErrConnClosed, "commit"), false},
		{"timeout", errors.New("context deadline exceeded"), false},
	} {
		if got := definite(tc.err); got != tc.definite {
			t.Errorf("%s: definite = %v, want %v", tc.name, got, tc.definite)
		}
	}
}

func TestListText(t *testing.T) {
	for _, l := range [][]int{nil, {1}, {3, 1, 2}} {
		got, err := parseList(formatList(l))
		if err != nil || !slices.Equal(got, l) {
			t.Fatalf("%v -> %q -> %v, %v", l, formatList(l), got, err)
		}
	}
	if _, err := parseList("1,x"); err == nil {
		t.Fatal("parseList accepted garbage")
	}
}
