package pgerror

import (
	"context"
	"fmt"

	"github.com/cockroachdb/errors"
)

// SQLSTATE codes used by kvnode (PostgreSQL Appendix A).
const (
	CodeSuccessfulCompletion            = "00000"
	CodeFeatureNotSupported             = "0A000"
	CodeInvalidParameterValue           = "22023"
	CodeDataException                   = "22000"
	CodeNumericValueOutOfRange          = "22003"
	CodeDivisionByZero                  = "22012"
	CodeInvalidArgumentForLog           = "2201E"
	CodeInvalidArgumentForPowerFunction = "2201F"
	CodeInvalidTextRepresentation       = "22P02"
	CodeNotNullViolation                = "23502"
	CodeUniqueViolation                 = "23505"
	CodeProtocolViolation               = "08P01"
	CodeInvalidSQLStatementName         = "26000"
	CodeInvalidCursorName               = "34000"
	CodeInvalidCatalogName              = "3D000"
	CodeSyntaxError                     = "42601"
	CodeUndefinedColumn                 = "42703"
	CodeUndefinedTable                  = "42P01"
	CodeUndefinedObject                 = "42704"
	CodeUndefinedFunction               = "42883"
	CodeDuplicateTable                  = "42P07"
	CodeDuplicateDatabase               = "42P04"
	CodeDuplicatePreparedStatement      = "42P05"
	CodeInvalidName                     = "42602"
	CodeDuplicateColumn                 = "42701"
	CodeDatatypeMismatch                = "42804"
	CodeWrongObjectType                 = "42809"
	CodeInvalidTableDefinition          = "42P16"
	CodeAmbiguousColumn                 = "42702"
	CodeInvalidColumnReference          = "42P10"
	CodeIndeterminateDatatype           = "42P18"
	CodeInvalidAuthorization            = "28000"
	CodeInvalidPassword                 = "28P01"
	CodeDuplicateObject                 = "42710"
	CodeReservedName                    = "42939"
	CodeInvalidGrantOperation           = "0LP01"
	CodeObjectInUse                     = "55006"
	CodeDependentObjectsStillExist      = "2BP01"
	CodeForeignKeyViolation             = "23503"
	CodeInvalidForeignKey               = "42830"
	CodeQueryCanceled                   = "57014"
	CodeAdminShutdown                   = "57P01"
	CodeCannotConnectNow                = "57P03"
	CodeStatementCompletionUnknown      = "40003"
	CodeSerializationFailure            = "40001"
	CodeInternal                        = "XX000"
	CodeDataCorrupted                   = "XX001"
	CodeUnavailable                     = "58000"
	CodeObjectNotInPrerequisiteState    = "55000"
	CodeInsufficientPrivilege           = "42501"
	CodeTooManyConnections              = "53300"
	CodeProgramLimitExceeded            = "54000"
	CodeActiveSQLTransaction            = "25001"
	CodeNoActiveSQLTransaction          = "25P01"
	CodeInFailedSQLTransaction          = "25P02"
	CodeInvalidTransactionState         = "25000"
	CodeReadOnlySQLTransaction          = "25006"
	CodeInvalidSavepointSpec            = "3B001"
)

// codeErr is a wrapper carrying a SQLSTATE.
type codeErr struct {
	cause error
	code  string
}

func (e *codeErr) Error() string { return e.cause.Error() }
func (e *codeErr) Unwrap() error { return e.cause }

// posErr is a wrapper carrying a 1-based character position in the query.
type posErr struct {
	cause error
	pos   int
}

func (e *posErr) Error() string { return e.cause.Error() }
func (e *posErr) Unwrap() error { return e.cause }

// Newf builds an error with a SQLSTATE code.
func Newf(code string, format string, args ...any) error {
	return &codeErr{cause: errors.NewWithDepthf(1, format, args...), code: code}
}

// WithCode attaches a SQLSTATE to an existing error. The outermost code wins.
func WithCode(err error, code string) error {
	if err == nil {
		return nil
	}
	return &codeErr{cause: err, code: code}
}

// WithPosition attaches a 1-based character position within the query text,
// reported in the ErrorResponse's P field (psql draws a caret under it).
func WithPosition(err error, pos int) error {
	if err == nil {
		return nil
	}
	return &posErr{cause: err, pos: pos}
}

// WithHintf attaches a hint telling the user what to do; it is a thin
// shorthand for errors.WithHintf so callers need import only this package.
func WithHintf(err error, format string, args ...any) error {
	return errors.WithHintf(err, format, args...)
}

// Error is the flattened form of an error, as sent to a client.
type Error struct {
	Code     string
	Message  string
	Detail   string
	Hint     string
	Position int // 0 if none
}

func (e *Error) Error() string { return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code) }

// GetCode returns the outermost SQLSTATE attached to err, or XX000 (internal
// error) if none is. Context cancellation maps to 57014.
func GetCode(err error) string {
	var ce *codeErr
	if errors.As(err, &ce) {
		return ce.code
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return CodeQueryCanceled
	}
	return CodeInternal
}

// Flatten turns any error into the fields a client receives.
func Flatten(err error) *Error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	out := &Error{Code: GetCode(err), Message: err.Error()}
	var pe *posErr
	if errors.As(err, &pe) {
		out.Position = pe.pos
	}
	hints := errors.GetAllHints(err)
	if len(hints) > 0 {
		out.Hint = hints[0]
		for _, h := range hints[1:] {
			out.Hint += "\n" + h
		}
	}
	details := errors.GetAllDetails(err)
	if len(details) > 0 {
		out.Detail = details[0]
		for _, d := range details[1:] {
			out.Detail += "\n" + d
		}
	}
	if out.Code == CodeInternal && errors.HasAssertionFailure(err) {
		out.Hint = "this is a bug in kvnode; please report it with the node's log"
	}
	return out
}
