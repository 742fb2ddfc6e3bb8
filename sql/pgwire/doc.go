// Package pgwire is kvnode's PostgreSQL wire-protocol (v3) server. It turns
// bytes from psql, pgx or any other PostgreSQL driver into calls on a
// Session (session.go) and the Session's results back into protocol
// messages. It knows nothing about SQL beyond that contract: parsing,
// planning and execution live in the SQL layer, which server wires in
// through a SessionFactory.
//
// # Layering
//
//	Server            accept loop, connection registry, MaxConns, Drain/Close,
//	                  CancelRequest routing, metrics
//	  conn.Run        one per client connection:
//	    startup       SSLRequest ('S' and TLS in secure mode, else 'N'),
//	                  GSSENCRequest ('N'), CancelRequest,
//	                  StartupMessage → [secure mode, no certificate of the
//	                  user: SCRAM-SHA-256(-PLUS), auth.go] AuthenticationOk,
//	                  ParameterStatus…, BackendKeyData, ReadyForQuery
//	    readLoop      a goroutine that reads the socket through a buffer
//	                  (frames.go), decodes the messages with pgproto3's
//	                  types and queues every message of one read as one
//	                  batch, a bounded amount ahead; it notices a client
//	                  that hangs up while a statement runs and cancels
//	                  that statement
//	    serve         the only goroutine that talks to the Session and writes
//	                  to the client; one type switch (conn.handle) per message
//
// # Message flow
//
// Simple query: Query → for each statement: RowDescription (text), DataRow…,
// CommandComplete; the first error stops the rest; then ReadyForQuery. An empty
// query string gets EmptyQueryResponse. Placeholders are an error there.
//
// Extended query: Parse/Bind/Describe/Execute/Close are answered in order
// and buffered; Flush writes the buffer, Sync writes it followed by
// ReadyForQuery. After an error in any of them the connection discards every
// message except Sync and Terminate, exactly as PostgreSQL does, so that a
// pipelining client gets one error per batch rather than a cascade.
// ReadyForQuery is sent only after Sync or a simple query (and after the
// rarely used FunctionCall message, which PostgreSQL also ends with one).
// Execute with a row limit returns PortalSuspended and resumes on the next
// Execute. Outside a transaction block every Sync ends the implicit
// transaction, so it closes all portals (named ones too), as PostgreSQL does;
// inside one (Session.TxnStatus is not 'I') portals live on until the block
// ends. Prepared statements live until Close (or SQL's DEALLOCATE) or the
// end of the connection; SQL's PREPARE, EXECUTE and DEALLOCATE share their
// namespace (Statements, handed to the session in SessionArgs), as in
// PostgreSQL.
//
// Transactions are the Session's: ReadyForQuery reports its TxnStatus; a
// simple query is bracketed by BeginQuery/EndQuery (the session may refuse
// the whole string, and runs a string of several statements as one implicit
// transaction); every ErrorResponse is reported with Failed, which fails a
// transaction block; and while the status is not 'I' the connection waits
// for the client at most IdleInTransactionTimeout, then ends with FATAL 25P03.
//
// Parameters arrive in text or binary format and are decoded with
// types.ParseText / types.ParseBinary according to the prepared statement's
// parameter types; result columns are encoded with types.FormatText /
// types.FormatBinary in the format the client asked for in Bind.
//
// # Errors
//
// Every error the client sees is pgerror.Flatten'ed into an ErrorResponse with
// a SQLSTATE. A statement error (severity ERROR) leaves the connection usable.
// A protocol violation (unknown or malformed message, a message longer than
// MaxMessageSize) is answered with a FATAL 08P01 and the connection is closed,
// because the byte stream can no longer be trusted. A panic in the SQL layer
// is recovered per statement and reported as XX000; the stack goes to the log.
//
// # Cancellation
//
// Each statement runs under a context that is canceled when the client
// closes its end of the connection (nobody would read the result; this
// includes a client that sends Terminate and hangs up before its last
// statement finished), by a CancelRequest carrying the connection's
// BackendKeyData, and when the server is force-closed. The SQL layer must
// honor it: Close and a Drain past its deadline wait for statements to
// return.
//
// # Shutdown
//
// Drain stops accepting, lets statements in flight finish, and then closes
// each connection at its next idle point (after ReadyForQuery) with FATAL
// 57P01; at the context's deadline it cancels the remaining statements and
// closes their connections. Close does the latter at once.
//
// # Authentication
//
// In secure mode (Config.TLS) the connection must be TLS (plaintext is
// refused with 28000 and the fix). A certificate of the cluster's CA whose
// common name is the user authenticates it. Otherwise, once the
// SessionFactory offers passwords (PasswordAuth: a cluster at release 2.1),
// the client proves the user's password with SCRAM-SHA-256 (xdg-go/scram),
// or SCRAM-SHA-256-PLUS with tls-server-end-point channel binding when it
// can; a wrong password, an unknown user and a user without a password all
// get 28P01 "password authentication failed for user" after the same
// exchange (mock credentials for the last two), and the node's log says
// which. Only SCRAM verifiers (SCRAMVerifier, PostgreSQL's format) are
// stored, never passwords; the server never sees a password, only its
// proof. Before passwords exist, a client without the user's certificate
// gets 28000. In insecure mode every StartupMessage gets AuthenticationOk
// and SSLRequest gets 'N'; the SessionFactory may still refuse a user or
// database.
//
// # What it does not do (yet)
//
//   - No GSS encryption: GSSENCRequest is answered 'N'.
//   - COPY FROM STDIN and COPY TO STDOUT only in a simple query
//     (CopyInStatement, CopyOutStatement; 0A000 in the extended protocol):
//     incoming data streams to the statement through the bounded read-ahead
//     queue, outgoing data is flushed as it grows. CopyData/CopyDone/CopyFail
//     outside COPY are ignored, as in PostgreSQL (a client sends the rest of
//     its data after the server refused a COPY). COPY TO has no binary
//     format.
//   - No client_encoding other than UTF8: the server reports UTF8 whatever the
//     client asked for, and rejects text that is not valid UTF-8.
//   - Protocol 3.0 only: a client asking for 3.2 is answered with
//     NegotiateProtocolVersion and continues with 3.0.
package pgwire
