package sql

import (
	"context"
	"fmt"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/txn"
)

// SQLSTATEs used here that package pgerror does not name.
const (
	codeCardinalityViolation = "21000"
	codeGroupingError        = "42803"
)

// maxRetries bounds the read-compute-conditional-write loop of a statement
// that lost a race with concurrent writers.
const maxRetries = 50

func undefinedTable(name string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeUndefinedTable, "relation %q does not exist", name),
		"SHOW TABLES lists the tables this node knows; a table created on another node moments ago may not have reached this node yet")
}

func undefinedColumn(name string) error {
	return pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q does not exist", name)
}

func notNullViolation(table, col string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeNotNullViolation, "null value in column %q of relation %q violates not-null constraint", col, table),
		"give column %q a value", col)
}

func unsupported(format string, args ...any) error {
	return pgerror.Newf(pgerror.CodeFeatureNotSupported, format, args...)
}

// kvError maps an error from the replicated store to what a client sees.
func kvError(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, kvpb.ErrAmbiguous):
		return pgerror.WithHintf(pgerror.WithCode(err, pgerror.CodeStatementCompletionUnknown),
			"the statement may or may not have been applied; check the data before retrying it")
	case errors.Is(err, kvpb.ErrUnavailable):
		return pgerror.WithHintf(pgerror.WithCode(err, pgerror.CodeUnavailable),
			"a majority of the nodes must be live; check the cluster's nodes and retry")
	case errors.Is(err, txn.ErrTooLarge):
		return pgerror.WithCode(err, pgerror.CodeProgramLimitExceeded)
	case errors.Is(err, kvpb.ErrCommandRefused):
		return pgerror.WithCode(err, pgerror.CodeFeatureNotSupported)
	case errors.Is(err, kvpb.ErrTxnsDisabled):
		return pgerror.WithHintf(pgerror.WithCode(err, pgerror.CodeFeatureNotSupported),
			"transactions need cluster version 2.1; finalize the upgrade with SET CLUSTER SETTING version = '2.1'")
	case errors.As(err, new(*kvpb.TxnConflictError)):
		return txnRetryError(err)
	case errors.As(err, new(*schemaMovedError)):
		// Where the statement cannot be planned again (COPY).
		var sm *schemaMovedError
		errors.As(err, &sm)
		return sm.asRetryError()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return pgerror.WithCode(errors.Wrap(err, "query canceled"), pgerror.CodeQueryCanceled)
	}
	if pgerror.GetCode(err) != pgerror.CodeInternal {
		return err
	}
	return pgerror.WithCode(errors.Wrap(err, "key-value store"), pgerror.CodeInternal)
}

func retryExhausted(table string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeSerializationFailure,
			"restart transaction: the rows of %q kept changing under the statement (%d attempts)", table, maxRetries),
		"retry the statement; heavy contention on the same rows causes this")
}

// formatDatumForDetail renders a value as PostgreSQL does in error details.
func formatDatumForDetail(d types.Datum) string {
	if d == nil {
		return "NULL"
	}
	return string(types.FormatText(d))
}

// duplicateKey builds the 23505 error for a row whose key exists.
func duplicateKey(desc *tableInfo, row []types.Datum) error {
	var cols, vals []string
	for _, i := range desc.pk {
		cols = append(cols, desc.cols[i].Name)
		vals = append(vals, formatDatumForDetail(row[i]))
	}
	err := pgerror.Newf(pgerror.CodeUniqueViolation,
		"duplicate key value violates unique constraint %q", desc.desc.PrimaryKeyName())
	return errors.WithDetail(err, fmt.Sprintf("Key (%s)=(%s) already exists.", strings.Join(cols, ", "), strings.Join(vals, ", ")))
}

func typeName(t types.T) string {
	if t == types.Unknown {
		return "unknown"
	}
	return t.String()
}

func quoteName(s string) string { return parser.QuotedIdent(s) }
