package sql

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/txn"
)

// COPY t [(cols)] FROM STDIN, text and CSV formats.
//
// The data is read as it arrives and written in batches of copyBatchRows
// rows (or copyBatchBytes bytes), so a COPY of any size holds at most two
// batches in memory, three when it is staged (the wire server's read-ahead
// is bounded too).
//
// Outside a transaction, from release 2.1 on, a COPY is atomic, as
// PostgreSQL's (and CockroachDB's with copy_from_atomic_enabled): each batch
// is staged in the data group where no read sees it, checked as a
// multi-row INSERT is (a duplicate key fails at once), and the end of the
// data publishes every row at once, or the failure aborts the stage
// (copyStage; txn/DESIGN.md, "An atomic COPY outside a transaction").
// Batches are staged while the next one is read (copyFlight). A table with
// foreign keys stages, with each batch, a check of each parent key its
// rows reference (copyfk.go), decided when it is staged and again at the
// publish: so a COPY of any size is atomic there too. Below 2.1 each batch is one
// atomic conditional write of its own: the batches before a failing one
// stay written, and the error says how many rows were copied. Inside
// BEGIN ... COMMIT the rows join the transaction's writes and commit or
// roll back with it, bounded by the transaction's size limit.

const (
	// copyBatchRows: every batch costs a Raft round and an fsync, and one
	// of more than kv's bulkRows (4,096) writes leaves the row cache alone.
	// A COPY of 1,000,000 short rows on one node took 26 s in batches of
	// 1,000 and 20 s in batches of 10,000 (docs/benchmarks.md).
	copyBatchRows   = 10000
	copyFKBatchRows = 1000
	// copyBatchBytes bounds a batch's data, hence how long one write takes
	// to apply: a write unanswered for 10 s fails as ambiguous (40003). At
	// 1 MiB, batches of wide rows with two indexes took 0.4 s each on a
	// loaded machine, ten times longer under the race detector; 256 KiB
	// was no slower for either short or wide rows, and held less memory.
	copyBatchBytes = 256 << 10
	// copyMaxLine bounds one line (or CSV record) of COPY data.
	copyMaxLine = 16 << 20
	// copyStagedInFlight is how many batches of a staged COPY are in
	// flight at once (copyFlight).
	copyStagedInFlight = 2
	// copyAbortTimeout bounds the abort of a failed COPY's stage.
	copyAbortTimeout = 10 * time.Second
	// copyPublishTimeout bounds the wait for a COPY's publish when the
	// statement has no timeout of its own.
	copyPublishTimeout = 5 * time.Minute
)

const codeBadCopyFileFormat = "22P04"

type copyPlan struct {
	e       *Executor
	ti      *tableInfo
	stmt    *parser.CopyFrom
	targets []int // table column positions, in the data's column order
}

func (p *copyPlan) columns() []pgwire.Column { return nil }
func (p *copyPlan) stale() bool              { return p.e.isStale(p.ti) }

func (p *copyPlan) exec(context.Context, []types.Datum) (pgwire.Result, error) {
	return pgwire.Result{}, pgerror.WithHintf(unsupported("COPY FROM STDIN needs the simple query protocol"),
		"send the COPY statement as a simple Query message, as psql, pgx's CopyFrom and JDBC's CopyManager do")
}

func (e *Executor) analyzeCopy(sess *session, s *parser.CopyFrom, db string) (*copyPlan, error) {
	ti, err := e.resolveTable(sess, db, s.Table)
	if err != nil {
		return nil, err
	}
	p := &copyPlan{e: e, ti: ti, stmt: s}
	if s.Columns == nil {
		p.targets = ti.visible
		return p, nil
	}
	seen := map[int]bool{}
	for _, name := range s.Columns {
		i := ti.desc.ColumnIndex(name)
		if i < 0 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", name, ti.desc.Name)
		}
		if seen[i] {
			return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q specified more than once", name)
		}
		seen[i] = true
		p.targets = append(p.targets, i)
	}
	return p, nil
}

// copySource yields COPY records: one field per data column, nil for NULL.
type copySource interface {
	record() ([]*string, error)
	where() string // the current record's position, for errors
}

// copyReader splits COPY data into records of fields; a nil field is NULL.
type copyReader struct {
	r      *bufio.Reader
	csv    bool
	delim  byte
	null   string
	quote  byte
	escape byte
	line   int // the line the current record started on
	next   int // the next line's number
}

func newCopyReader(r io.Reader, s *parser.CopyFrom) *copyReader {
	cr := &copyReader{r: bufio.NewReaderSize(r, 64<<10), csv: s.CSV, delim: '\t', null: `\N`, quote: '"', next: 1}
	if s.CSV {
		cr.delim, cr.null = ',', ""
	}
	if s.Delimiter != "" {
		cr.delim = s.Delimiter[0]
	}
	if s.NullSet {
		cr.null = s.Null
	}
	if s.Quote != "" {
		cr.quote = s.Quote[0]
	}
	cr.escape = cr.quote
	if s.Escape != "" {
		cr.escape = s.Escape[0]
	}
	return cr
}

// readLine returns the next line without its newline (and a \r before it);
// io.EOF at the end of the data.
func (cr *copyReader) readLine() (string, error) {
	var buf []byte
	for {
		chunk, err := cr.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > copyMaxLine {
			return "", pgerror.Newf(pgerror.CodeProgramLimitExceeded, "COPY line %d is longer than %d bytes", cr.next, copyMaxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(buf) > 0 {
			err = nil
		}
		if err != nil {
			return "", err
		}
		cr.next++
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		return string(buf), nil
	}
}

func (cr *copyReader) where() string { return fmt.Sprintf("line %d", cr.line) }

// record returns the next record's fields, or io.EOF after the last one
// (or at the end-of-data marker \.).
func (cr *copyReader) record() ([]*string, error) {
	cr.line = cr.next
	line, err := cr.readLine()
	if err != nil {
		return nil, err
	}
	if line == `\.` {
		return nil, io.EOF
	}
	if cr.csv {
		return cr.csvFields(line)
	}
	return cr.textFields(line)
}

func (cr *copyReader) textFields(line string) ([]*string, error) {
	var fields []*string
	var b strings.Builder
	raw := 0 // start of the field in line, to compare it with the NULL string
	emit := func(end int) {
		if line[raw:end] == cr.null {
			fields = append(fields, nil)
		} else {
			s := b.String()
			fields = append(fields, &s)
		}
		b.Reset()
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == cr.delim:
			emit(i)
			raw = i + 1
		case c == '\\' && i+1 < len(line):
			i++
			switch e := line[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'v':
				b.WriteByte('\v')
			case 'x':
				j := i + 1
				for j < len(line) && j < i+3 && isHex(line[j]) {
					j++
				}
				if j == i+1 {
					b.WriteByte('x')
					break
				}
				v, _ := strconv.ParseUint(line[i+1:j], 16, 8)
				b.WriteByte(byte(v))
				i = j - 1
			case '0', '1', '2', '3', '4', '5', '6', '7':
				j := i
				for j < len(line) && j < i+3 && line[j] >= '0' && line[j] <= '7' {
					j++
				}
				v, _ := strconv.ParseUint(line[i:j], 8, 16)
				b.WriteByte(byte(v))
				i = j - 1
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	emit(len(line))
	return fields, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// csvFields splits a CSV record; a quoted field may span lines. An
// unquoted field equal to the NULL string is NULL; a quoted one never is.
func (cr *copyReader) csvFields(line string) ([]*string, error) {
	var fields []*string
	var b strings.Builder
	quoted, inQuotes := false, false
	raw := 0
	for i := 0; ; i++ {
		if i >= len(line) {
			if !inQuotes {
				break
			}
			more, err := cr.readLine()
			if err == io.EOF {
				return nil, pgerror.Newf(codeBadCopyFileFormat, "unterminated CSV quoted field")
			}
			if err != nil {
				return nil, err
			}
			b.WriteByte('\n')
			line = line[:i] + "\n" + more
			continue
		}
		c := line[i]
		switch {
		case inQuotes && c == cr.escape && i+1 < len(line) && line[i+1] == cr.quote:
			b.WriteByte(cr.quote)
			i++
		case inQuotes && c == cr.quote:
			inQuotes = false
		case inQuotes:
			b.WriteByte(c)
		case c == cr.quote:
			inQuotes, quoted = true, true
		case c == cr.delim:
			fields = cr.csvEmit(fields, &b, quoted, line[raw:i])
			quoted, raw = false, i+1
		default:
			b.WriteByte(c)
		}
	}
	return cr.csvEmit(fields, &b, quoted, line[raw:]), nil
}

func (cr *copyReader) csvEmit(fields []*string, b *strings.Builder, quoted bool, raw string) []*string {
	defer b.Reset()
	if !quoted && raw == cr.null {
		return append(fields, nil)
	}
	s := b.String()
	return append(fields, &s)
}

// CopyIn reads the data and writes the rows; see the top of the file.
func (p *copyPlan) copyIn(ctx context.Context, data io.Reader) (pgwire.Result, error) {
	if err := p.e.checkSchemaForWrite(p.ti); err != nil {
		return pgwire.Result{}, err
	}
	ti := p.ti
	var src copySource
	if p.stmt.Binary {
		src = newBinaryCopyReader(data, ti, p.targets)
	} else {
		src = newCopyReader(data, p.stmt)
	}
	fks := p.e.copyChecksFKs(ti)
	_, inTxn := p.e.kv(ctx).(*txn.Txn)
	// Outside a transaction at 2.1 a COPY is atomic: its batches are
	// staged and published at the end (copyStage), with their foreign key
	// checks. Below 2.1 each batch commits on its own.
	var stage *copyStage
	if !inTxn {
		if st, ok := p.e.cfg.DB.(kvpb.CopyStager); ok && st.AtomicCopy() {
			stage = &copyStage{st: st, id: rand.Uint64() | 1}
			if fks {
				var err error
				if stage.fks, err = p.e.newCopyFKChecks(ti); err != nil {
					return pgwire.Result{}, err
				}
			}
		}
	}
	ec := &evalCtx{ctx: ctx, exec: p.e}
	// In a transaction, a table that references itself has its foreign
	// keys checked at the end of the COPY, as PostgreSQL does: a row may
	// reference one further down the data. (The transaction's limits bound
	// the rows kept meanwhile.) Other tables' parents cannot be in the COPY:
	// each batch checks its own.
	var stmtFKs *fkChanges
	if inTxn && fks && referencesItself(ti.desc) {
		stmtFKs = &fkChanges{}
	}
	batchRows := copyBatchRows
	if fks && stage == nil && !inTxn {
		// A batch checks its foreign keys in a transaction of its own,
		// whose validation grows with its reads.
		batchRows = copyFKBatchRows
	}
	if n := p.e.cfg.TestingCopyBatchRows; n > 0 {
		batchRows = n
	}
	var (
		copied   int64
		rows     [][]types.Datum
		keys     [][]byte
		batchLen int
		// Outside a transaction, unless a transaction of its own checks
		// its foreign keys, a batch is written by a goroutine of its own
		// while the next one is parsed (inflight, oldest first): at most
		// depth are in flight (see copyFlight).
		overlap  = !inTxn && (!fks || stage != nil)
		depth    = 1
		inflight []*copyFlight
		spare    copyBatch // the slices of a batch written, for reuse
		batchErr error     // the first error of a batch in flight
	)
	if stage != nil && stage.fks == nil {
		// A staged COPY with foreign keys keeps one: its batches share
		// the memo of the parents staged (copyFKChecks).
		depth = copyStagedInFlight
	}
	// await waits for the oldest batch in flight, if any, and counts its
	// rows if it was written.
	await := func() error {
		if len(inflight) == 0 {
			return nil
		}
		f := inflight[0]
		inflight = inflight[1:]
		err := <-f.done
		if err == nil {
			copied += int64(len(f.b.rows))
		} else if batchErr == nil {
			batchErr = err
		}
		spare = copyBatch{rows: f.b.rows[:0], keys: f.b.keys[:0]}
		return err
	}
	// awaitAll waits for every batch in flight and returns the first
	// error of one, in the order they were sent.
	awaitAll := func() error {
		for len(inflight) > 0 {
			_ = await()
		}
		return batchErr
	}
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		b := copyBatch{rows: rows, keys: keys}
		if overlap {
			// Below 2.1 the previous batch must have been written before
			// this one is proposed: if it failed, nothing after it may be
			// written. A staged batch that fails fails the whole COPY,
			// whichever others were staged meanwhile (the abort deletes
			// them all).
			for len(inflight) >= depth {
				if err := await(); err != nil {
					return err
				}
			}
			f := &copyFlight{b: b, done: make(chan error, 1)}
			go func() {
				var err error
				defer func() { f.done <- err }()
				defer recoverInternal(&err)
				err = p.writeBatch(ctx, b, stage, nil)
			}()
			inflight = append(inflight, f)
			rows, keys, batchLen = spare.rows, spare.keys, 0
			spare = copyBatch{}
			return nil
		}
		var err error
		if fks && !inTxn && stage == nil {
			// Checking foreign keys needs a transaction: one per batch.
			_, err = p.e.runInTxn(ctx, func(tctx context.Context) (pgwire.Result, error) {
				return pgwire.Result{}, p.writeBatch(tctx, b, nil, nil)
			})
		} else {
			err = p.writeBatch(ctx, b, stage, stmtFKs)
		}
		if err != nil {
			return err
		}
		copied += int64(len(rows))
		rows, keys, batchLen = rows[:0], keys[:0], 0
		return nil
	}
	fail := func(err error) (pgwire.Result, error) {
		// A batch in flight was sent before the rows that led to err
		// were read: its error comes first, as if it had been written
		// before they were read. The stage is aborted once no batch is
		// in flight any more.
		if werr := awaitAll(); werr != nil {
			err = werr
		}
		switch {
		case stage != nil:
			abortStage(ctx, stage)
		case copied > 0 && !inTxn:
			err = errors.WithDetailf(err, "%d rows were copied and committed before the error", copied)
		}
		return pgwire.Result{}, err
	}
	if p.stmt.Header {
		if _, err := src.record(); err != nil && err != io.EOF {
			return fail(err)
		}
	}
	for {
		fields, err := src.record()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		if len(fields) > len(p.targets) {
			return fail(pgerror.Newf(codeBadCopyFileFormat, "extra data after last expected column (COPY %s, %s)", ti.desc.Name, src.where()))
		}
		if len(fields) < len(p.targets) {
			return fail(pgerror.Newf(codeBadCopyFileFormat, "missing data for column %q (COPY %s, %s)",
				ti.cols[p.targets[len(fields)]].Name, ti.desc.Name, src.where()))
		}
		row := make([]types.Datum, len(ti.cols))
		filled := make([]bool, len(ti.cols))
		for j, f := range fields {
			i := p.targets[j]
			filled[i] = true
			if f == nil {
				continue
			}
			c := &ti.cols[i]
			batchLen += len(*f)
			var d types.Datum
			var err error
			if p.stmt.Binary {
				// Clients encode each field as the type the table's columns
				// are described with (pgx's CopyFrom asks first).
				d, err = types.ParseBinary(c.Type, types.ColumnOID(c.Type, c.Mod), []byte(*f))
			} else {
				d, err = types.ParseText(c.Type, []byte(*f))
			}
			if err == nil {
				d, err = types.Assign(d, c.Type, c.Mod)
				err = assignErr(err)
			}
			if err != nil {
				code := pgerror.GetCode(err)
				if code == pgerror.CodeInternal {
					code = pgerror.CodeInvalidTextRepresentation
				}
				return fail(pgerror.WithCode(errors.Wrapf(err, "COPY %s, %s, column %s", ti.desc.Name, src.where(), c.Name), code))
			}
			row[i] = d
		}
		for i := range ti.cols {
			if filled[i] || ti.defaults[i] == nil {
				continue
			}
			d, err := ec.eval(ti.defaults[i])
			if err != nil {
				return fail(err)
			}
			row[i] = d
		}
		if err := checkRow(ctx, p.e, ti, row); err != nil {
			return fail(errors.Wrapf(err, "COPY %s, %s", ti.desc.Name, src.where()))
		}
		key, err := ti.layout.EncodeKey(row)
		if err != nil {
			return fail(err)
		}
		rows = append(rows, row)
		keys = append(keys, key)
		if len(rows) >= batchRows || batchLen >= copyBatchBytes {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
		if err := ctx.Err(); err != nil {
			return fail(kvError(err))
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	if err := awaitAll(); err != nil {
		return fail(err)
	}
	if stmtFKs != nil {
		if err := stmtFKs.finish(ec); err != nil {
			return fail(err)
		}
	}
	if stage != nil && copied > 0 {
		if err := p.publishStage(ctx, stage); err != nil {
			return fail(err)
		}
	}
	return pgwire.Result{Tag: fmt.Sprintf("COPY %d", copied)}, nil
}

// copyStage is an atomic COPY's stage (kvpb.CopyStager; txn/DESIGN.md, "An
// atomic COPY outside a transaction"): each batch is staged where no read
// sees it, and the publish at the end makes every row visible at once, or
// none.
type copyStage struct {
	st     kvpb.CopyStager
	id     uint64
	writes atomic.Uint64 // rows and index entries staged
	fks    *copyFKChecks // the foreign keys to check; nil: none
}

// publishStage publishes the COPY's stage.
func (p *copyPlan) publishStage(ctx context.Context, stage *copyStage) error {
	if _, ok := ctx.Deadline(); !ok {
		// The publish takes time in proportion to the rows (seconds for
		// a million): more than kv's default deadline for a write.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, copyPublishTimeout)
		defer cancel()
	}
	err := stage.st.PublishCopy(ctx, stage.id, stage.writes.Load())
	var cf *kvpb.ConditionFailedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cf):
		ti := p.ti
		if bytes.Equal(cf.Key, fenceCheck(ti.desc).Key) {
			return kvError(p.e.fenceMoved(ctx, ti.desc, cf))
		}
		if !cf.Exists && stage.fks != nil {
			// A present check: a parent deleted since its stage, or a
			// row of the COPY referencing one that is nowhere.
			if verr, ok := stage.fks.violation(cf.Key, nil); ok {
				return verr
			}
		}
		if verr, ok := indexViolation(ti, cf.Key); ok {
			return verr
		}
		return duplicateKeyAt(ti, cf.Key)
	case errors.Is(err, kvpb.ErrCopyStageGone):
		return pgerror.WithCode(err, pgerror.CodeObjectNotInPrerequisiteState)
	}
	return kvError(err)
}

// abortStage deletes what the COPY staged, on a context of its own: the
// statement's may be canceled or past its timeout. Best effort: a stage
// left behind is collected after the transaction history (kv).
func abortStage(ctx context.Context, stage *copyStage) {
	if stage.writes.Load() == 0 {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), copyAbortTimeout)
	defer cancel()
	_ = stage.st.AbortCopy(actx, stage.id)
}

// duplicateKeyAt is duplicateKey for a row known only by its key.
func duplicateKeyAt(ti *tableInfo, key []byte) error {
	row := make([]types.Datum, len(ti.cols))
	rest, ok := bytes.CutPrefix(key, rowenc.TablePrefix(ti.desc.ID))
	for _, i := range ti.pk {
		if !ok {
			break
		}
		var err error
		if row[i], rest, err = rowenc.DecodeKey(rest, ti.cols[i].Type); err != nil {
			ok = false
		}
	}
	if !ok {
		return pgerror.Newf(pgerror.CodeUniqueViolation, "duplicate key value violates unique constraint %q", ti.desc.PrimaryKeyName())
	}
	return duplicateKey(ti, row)
}

// copyBatch is one batch of a COPY's rows, with their primary keys.
type copyBatch struct {
	rows [][]types.Datum
	keys [][]byte
}

// copyFlight is a batch being written while the COPY reads the next one:
// the rows are parsed, checked and encoded on the statement's goroutine
// while the previous batch is replicated and applied, so that the two
// overlap. Below 2.1 only one batch is in flight, and the next is proposed
// only once it has been applied: a batch that fails (a duplicate key) is
// the last one written, as when every batch is written before the next is
// read, and a COPY holds at most two batches in memory. A staged COPY
// (2.1) without foreign keys has copyStagedInFlight batches in flight (one
// with foreign keys, whose batches share a memo of the parents staged,
// keeps one), so that the data group
// always has the next one to append while it applies one (on one node, an
// entry's append and fsync and the apply of the one before it share a
// Raft Ready); a failed batch fails the COPY, and the abort, sent once
// none is in flight, deletes whatever the others staged.
type copyFlight struct {
	b    copyBatch
	done chan error // the write's outcome, once
}

// writeBatch writes the rows of b in one atomic write (in ctx's
// transaction, if any). Their foreign keys are checked at the end of the
// batch, or with stmtFKs (in a transaction) at the end of the COPY.
func (p *copyPlan) writeBatch(ctx context.Context, b copyBatch, stage *copyStage, stmtFKs *fkChanges) error {
	ti := p.ti
	rows, keys := b.rows, b.keys
	ec := &evalCtx{ctx: ctx, exec: p.e}
	// Staged, the foreign keys are checks of the stage; else the
	// statement's transaction reads the parents (fkChanges).
	fks := p.e.copyChecksFKs(ti) && (stage == nil || stage.fks == nil)
	release := p.e.holdRowEncoding()
	defer release()
	ops := make([]kvpb.Op, len(rows))
	var ix indexChanges
	fc := stmtFKs
	if fc == nil {
		fc = &fkChanges{}
	}
	seen := make(map[string]bool, len(rows))
	for r, row := range rows {
		if seen[string(keys[r])] {
			return duplicateKey(ti, row)
		}
		seen[string(keys[r])] = true
		val, err := p.e.encodeRow(ti, keys[r], row, nil)
		if err != nil {
			return err
		}
		ops[r] = kvpb.Op{Kind: kvpb.OpCPut, Key: keys[r], Value: val, ExpectAbsent: true}
		if fks {
			if err := fc.add(ec, ti, nil, row); err != nil {
				return err
			}
		}
		if err := ix.row(ti, nil, nil, keys[r], row); err != nil {
			return err
		}
	}
	ops = ix.appendTo(ops)
	var checked copyFKBatch
	if stage != nil && stage.fks != nil {
		var err error
		if ops, checked, err = stage.fks.appendChecks(ops, rows); err != nil {
			return err
		}
	}
	write := p.e.kv(ctx).Write
	if st := stage; st != nil {
		write = func(ctx context.Context, ops []kvpb.Op) error {
			if err := st.st.StageCopy(ctx, st.id, ops); err != nil {
				var cf *kvpb.ConditionFailedError
				if errors.As(err, &cf) && !cf.Exists {
					if fp, ok := checked[string(cf.Key)]; ok {
						if verr, ok := st.fks.violation(cf.Key, fp); ok {
							return verr
						}
					}
				}
				return err
			}
			if st.fks != nil {
				st.fks.stagedBatch(checked)
			}
			for _, op := range ops {
				if op.Kind != kvpb.OpCheck {
					st.writes.Add(1)
				}
			}
			return nil
		}
	}
	if err := p.e.writeTableWith(ctx, ti, ops, write); err != nil {
		var cf *kvpb.ConditionFailedError
		if errors.As(err, &cf) {
			for r := range keys {
				if bytes.Equal(keys[r], cf.Key) {
					return duplicateKey(ti, rows[r])
				}
			}
			return pgerror.WithCode(errors.Wrap(err, "copying"), pgerror.CodeUniqueViolation)
		}
		return kvError(err)
	}
	if fc == stmtFKs {
		return nil
	}
	return fc.finish(ec)
}

// preparedCopy is a prepared COPY FROM STDIN: the wire server recognizes
// it (pgwire.CopyInStatement) and hands it the data.
type preparedCopy struct {
	*prepared
}

var _ pgwire.CopyInStatement = (*preparedCopy)(nil)

// CopyColumns implements pgwire.CopyInStatement.
func (p *preparedCopy) CopyColumns() int { return len(p.plan.(*copyPlan).targets) }

// CopyBinary implements pgwire.CopyInStatement.
func (p *preparedCopy) CopyBinary() bool { return p.plan.(*copyPlan).stmt.Binary }

// CopyIn implements pgwire.CopyInStatement. It runs with the checks of
// Exec: privileges, the transaction state, the statement timeout.
func (p *preparedCopy) CopyIn(ctx context.Context, data io.Reader) (_ pgwire.Result, err error) {
	defer recoverInternal(&err)
	if p.plan.stale() {
		pl, ps, err := p.s.analyze(p.stmt.AST, p.declared, p.n)
		if err != nil {
			return pgwire.Result{}, err
		}
		p.plan, p.params.access = pl, ps.access
	}
	cp := p.plan.(*copyPlan)
	if err := p.s.checkAccess(ctx, p.params.access); err != nil {
		return pgwire.Result{}, err
	}
	if err := p.s.checkInTxn(cp); err != nil {
		return pgwire.Result{}, err
	}
	if t := p.s.txn.t; t != nil {
		ctx = withTxn(ctx, t)
	}
	if timeout := p.s.statementTimeout(); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return cp.copyIn(withSession(ctx, p.s), data)
}

// binaryCopyReader reads PostgreSQL's binary COPY format: the signature
// PGCOPY\n\377\r\n\0, flags and a header extension, then per tuple a 16-bit
// field count and each field's 32-bit length (-1: NULL) and bytes, ended by
// a count of -1. Fields are in each column's binary wire format.
type binaryCopyReader struct {
	r      *bufio.Reader
	header bool
	tuple  int
}

var binaryCopySignature = []byte("PGCOPY\n\xff\r\n\x00")

func newBinaryCopyReader(r io.Reader, _ *tableInfo, _ []int) *binaryCopyReader {
	return &binaryCopyReader{r: bufio.NewReaderSize(r, 64<<10)}
}

func (br *binaryCopyReader) where() string { return fmt.Sprintf("tuple %d", br.tuple) }

func badBinaryCopy(format string, args ...any) error {
	return pgerror.Newf(codeBadCopyFileFormat, "invalid binary COPY data: "+format, args...)
}

func (br *binaryCopyReader) read(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(br.r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, badBinaryCopy("unexpected end of data")
		}
		return nil, err
	}
	return b, nil
}

func (br *binaryCopyReader) record() ([]*string, error) {
	if !br.header {
		sig, err := br.read(len(binaryCopySignature) + 8)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(sig[:len(binaryCopySignature)], binaryCopySignature) {
			return nil, badBinaryCopy("COPY signature not recognized")
		}
		ext := int(int32(binary.BigEndian.Uint32(sig[len(binaryCopySignature)+4:])))
		if ext < 0 || ext > copyMaxLine {
			return nil, badBinaryCopy("bad header extension length %d", ext)
		}
		if _, err := br.read(ext); err != nil {
			return nil, err
		}
		br.header = true
	}
	br.tuple++
	// The trailer (-1) is optional: the end of the data at a tuple's start
	// ends it too, as in PostgreSQL (pgx sends no trailer).
	if _, err := br.r.Peek(1); err == io.EOF {
		return nil, io.EOF
	}
	nb, err := br.read(2)
	if err != nil {
		return nil, err
	}
	n := int16(binary.BigEndian.Uint16(nb))
	if n == -1 {
		return nil, io.EOF
	}
	if n < 0 {
		return nil, badBinaryCopy("bad field count %d", n)
	}
	fields := make([]*string, n)
	for i := range fields {
		lb, err := br.read(4)
		if err != nil {
			return nil, err
		}
		l := int32(binary.BigEndian.Uint32(lb))
		if l == -1 {
			continue
		}
		if l < 0 || l > copyMaxLine {
			return nil, badBinaryCopy("bad field length %d", l)
		}
		b, err := br.read(int(l))
		if err != nil {
			return nil, err
		}
		s := string(b)
		fields[i] = &s
	}
	return fields, nil
}

// ---- COPY ... TO STDOUT ----

// copyOutPlan is COPY t [(cols)] TO STDOUT, which streams the table in key
// order in batches (bounded memory), or COPY (query) TO STDOUT, which runs
// the query like a SELECT (materialized).
type copyOutPlan struct {
	e       *Executor
	stmt    *parser.CopyTo
	ti      *tableInfo // table form
	targets []int
	query   *queryPlan // query form
}

func (p *copyOutPlan) columns() []pgwire.Column { return nil }
func (p *copyOutPlan) stale() bool {
	if p.ti != nil {
		return p.e.isStale(p.ti)
	}
	return p.query.stale()
}

func (p *copyOutPlan) exec(context.Context, []types.Datum) (pgwire.Result, error) {
	return pgwire.Result{}, pgerror.WithHintf(unsupported("COPY TO STDOUT needs the simple query protocol"),
		"send the COPY statement as a simple Query message, as psql does")
}

func (e *Executor) analyzeCopyOut(s *parser.CopyTo, params *paramSet) (*copyOutPlan, error) {
	p := &copyOutPlan{e: e, stmt: s}
	if s.Query != nil {
		q, err := e.analyzeQueryPlan(s.Query, params)
		if err != nil {
			return nil, err
		}
		p.query = q
		return p, nil
	}
	in, err := e.analyzeCopy(params.s, &s.CopyFrom, params.db)
	if err != nil {
		return nil, err
	}
	p.ti, p.targets = in.ti, in.targets
	return p, nil
}

func (p *copyOutPlan) numColumns() int {
	if p.query != nil {
		return len(p.query.cols)
	}
	return len(p.targets)
}

// copyFormatter renders rows in COPY's text or CSV format.
type copyFormatter struct {
	csv    bool
	delim  byte
	null   string
	quote  byte
	escape byte
}

func newCopyFormatter(s *parser.CopyFrom) *copyFormatter {
	f := &copyFormatter{csv: s.CSV, delim: '\t', null: `\N`, quote: '"'}
	if s.CSV {
		f.delim, f.null = ',', ""
	}
	if s.Delimiter != "" {
		f.delim = s.Delimiter[0]
	}
	if s.NullSet {
		f.null = s.Null
	}
	if s.Quote != "" {
		f.quote = s.Quote[0]
	}
	f.escape = f.quote
	if s.Escape != "" {
		f.escape = s.Escape[0]
	}
	return f
}

func (f *copyFormatter) field(b []byte, d types.Datum) []byte {
	if d == nil {
		return append(b, f.null...)
	}
	v := types.FormatText(d)
	if f.csv {
		needs := len(v) == 0 && f.null == "" || string(v) == f.null || bytes.IndexByte(v, f.delim) >= 0 ||
			bytes.IndexByte(v, f.quote) >= 0 || bytes.ContainsAny(v, "\r\n")
		if !needs {
			return append(b, v...)
		}
		b = append(b, f.quote)
		for _, c := range v {
			if c == f.quote || c == f.escape {
				b = append(b, f.escape)
			}
			b = append(b, c)
		}
		return append(b, f.quote)
	}
	for _, c := range v {
		switch c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\v':
			b = append(b, '\\', 'v')
		default:
			if c == f.delim {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
	}
	return b
}

func (f *copyFormatter) row(row []types.Datum) []byte {
	var b []byte
	for i, d := range row {
		if i > 0 {
			b = append(b, f.delim)
		}
		b = f.field(b, d)
	}
	return append(b, '\n')
}

func (p *copyOutPlan) copyOut(ctx context.Context, send func([]byte) error) (pgwire.Result, error) {
	f := newCopyFormatter(&p.stmt.CopyFrom)
	var n int64
	if p.stmt.Header {
		var names []types.Datum
		if p.query != nil {
			for _, c := range p.query.cols {
				names = append(names, c.Name)
			}
		} else {
			for _, i := range p.targets {
				names = append(names, p.ti.cols[i].Name)
			}
		}
		if err := send(f.row(names)); err != nil {
			return pgwire.Result{}, err
		}
	}
	if p.query != nil {
		res, err := p.query.exec(ctx, nil)
		if err != nil {
			return pgwire.Result{}, err
		}
		for _, r := range res.Rows {
			if err := send(f.row(r)); err != nil {
				return pgwire.Result{}, err
			}
			n++
		}
		return pgwire.Result{Tag: fmt.Sprintf("COPY %d", n)}, nil
	}
	ti := p.ti
	out := make([]types.Datum, len(p.targets))
	// sendErr keeps the row's or the client's error apart from the
	// store's, which kvError translates.
	var sendErr error
	emit := func(k, v []byte) error {
		row, _, err := ti.layout.Decode(k, v)
		if err != nil {
			sendErr = err
			return err
		}
		for j, i := range p.targets {
			out[j] = row[i]
		}
		if sendErr = send(f.row(out)); sendErr != nil {
			return sendErr
		}
		n++
		return nil
	}
	if err := p.scanTable(ctx, emit); err != nil {
		if sendErr != nil {
			return pgwire.Result{}, sendErr
		}
		return pgwire.Result{}, kvError(err)
	}
	return pgwire.Result{Tag: fmt.Sprintf("COPY %d", n)}, nil
}

// scanTable calls emit with every row of the table, in key order, all read
// from one state of it, as PostgreSQL's COPY TO reads one snapshot: the
// transaction's, in one; else a snapshot of the data group (2.1), read in
// batches; else one iterator over the applied state. Batches read one
// after the other outside a transaction would each see a different state
// (TestCopyToReadsOneState).
func (p *copyOutPlan) scanTable(ctx context.Context, emit func(k, v []byte) error) error {
	span0, span1 := rowenc.TableSpan(p.ti.desc.ID)
	db := p.e.kv(ctx)
	batches := func(scan func(start, end []byte, limit int) ([]kvpb.KeyValue, error)) error {
		for {
			batch, err := scan(span0, span1, addPKBatchRows)
			if err != nil {
				return err
			}
			for _, kv := range batch {
				if err := emit(kv.Key, kv.Value); err != nil {
					return err
				}
			}
			if len(batch) < addPKBatchRows {
				return nil
			}
			span0 = append(append([]byte(nil), batch[len(batch)-1].Key...), 0)
		}
	}
	if _, inTxn := db.(*txn.Txn); !inTxn {
		if tdb := p.e.cfg.Txns; tdb != nil && p.e.txnsActive() {
			snap, err := tdb.Snapshot(ctx)
			if err == nil {
				defer snap.Close()
				return batches(func(start, end []byte, limit int) ([]kvpb.KeyValue, error) {
					return snap.Scan(start, end, limit, false)
				})
			}
			if !errors.Is(err, kvpb.ErrTxnsDisabled) {
				return err
			}
		}
		if s, ok := db.(kvpb.Streamer); ok {
			return s.ScanFunc(ctx, span0, span1, 0, false, emit)
		}
	}
	return batches(func(start, end []byte, limit int) ([]kvpb.KeyValue, error) {
		return db.Scan(ctx, start, end, limit, false)
	})
}

// preparedCopyOut is a prepared COPY TO STDOUT (pgwire.CopyOutStatement).
type preparedCopyOut struct {
	*prepared
}

var _ pgwire.CopyOutStatement = (*preparedCopyOut)(nil)

// CopyOutColumns implements pgwire.CopyOutStatement.
func (p *preparedCopyOut) CopyOutColumns() int { return p.plan.(*copyOutPlan).numColumns() }

// CopyOut implements pgwire.CopyOutStatement, with Exec's checks.
func (p *preparedCopyOut) CopyOut(ctx context.Context, send func([]byte) error) (_ pgwire.Result, err error) {
	defer recoverInternal(&err)
	if p.plan.stale() {
		pl, ps, err := p.s.analyze(p.stmt.AST, p.declared, p.n)
		if err != nil {
			return pgwire.Result{}, err
		}
		p.plan, p.params.access = pl, ps.access
	}
	cp := p.plan.(*copyOutPlan)
	if err := p.s.checkAccess(ctx, p.params.access); err != nil {
		return pgwire.Result{}, err
	}
	if err := p.s.checkInTxn(cp); err != nil {
		return pgwire.Result{}, err
	}
	if t := p.s.txn.t; t != nil {
		ctx = withTxn(ctx, t)
	}
	if timeout := p.s.statementTimeout(); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return cp.copyOut(withSession(ctx, p.s), send)
}
