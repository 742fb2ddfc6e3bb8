// Package parser turns SQL text into an abstract syntax tree for kvnode's SQL
// dialect: a small subset of PostgreSQL and CockroachDB syntax.
//
// # Contract
//
// Parse splits a query string into ';'-separated statements and returns one
// Statement per non-empty statement, holding its AST, its source text and the
// highest $n placeholder it uses. *Statement satisfies pgwire.Statement.
// Every failure is an error with SQLSTATE 42601 (or 0A000 for recognized but
// unsupported syntax such as joins, 54000 for absurd nesting) and the 1-based
// character position of the offending token, as PostgreSQL reports it
// ("at or near \"x\": syntax error"). Parse never panics, on any input; a fuzz
// test (FuzzParse) holds it to that and to a round-trip property: the
// canonical text of a parsed statement (Node.String) parses back to a tree
// with the same canonical text.
//
// # Layering
//
// The package imports only sql/types (to resolve type names such as INT8,
// TEXT, DOUBLE PRECISION at parse time) and sql/pgerror. It knows nothing
// of tables, columns or values: whether a name exists, what type an
// expression has, and what a placeholder's type is are questions for the
// executor's analyzer in package sql. Literals are kept as written (NumVal
// holds the text) so the analyzer can give an untyped literal the type its
// context asks for, like PostgreSQL does with '1' compared to an INT column.
//
// The lexer tokenizes the whole query first; the parser is a hand-written
// recursive descent with one function per precedence level. Words are
// lexed as identifiers and recognized as keywords by the parser from context,
// so only the reserved keywords (see IsReserved) are unavailable as bare
// column names; "key", "value", "version" and "name" work unquoted.
// Adding a statement means adding a node type in ast.go (with a Format that
// round-trips) and a case in parseStmt.
//
// # What it deliberately does not do
//
// No window frames or named windows, LATERAL, NATURAL joins,
// row constructors, or operators kvnode does not have (@>, ->, #):
// each is rejected with a positioned 0A000 error rather than misparsed.
// Operators are lexed as PostgreSQL lexes them (a<-1 is a < -1), strings
// may be dollar-quoted, and position/substring/trim accept the SQL
// standard's keyword syntax.
// Queries (select.go) have joins, derived tables, set operations, WITH
// [RECURSIVE],
// GROUP BY/HAVING and DISTINCT; expressions have subqueries, CASE, arrays,
// ANY/ALL, regular expressions, OPERATOR(pg_catalog.op), COLLATE and
// casts to the OID alias types (regclass, ...), which the executor gives
// meaning to. PostgreSQL's names of array types (_int8, _text) are
// int8[] and text[] in casts and column types; _int8[] is, as there, no type. Length modifiers in types (VARCHAR(10),
// CHAR(22)) are accepted and ignored, since kvnode's STRING has no length
// limit. Transaction modes after BEGIN are accepted and dropped (the
// executor refuses explicit transactions).
package parser
