package sql

import (
	"math"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// overload is one signature of a builtin function.
type overload struct {
	args []types.T
	ret  types.T
	fn   func(ec *evalCtx, args []types.Datum) (types.Datum, error)
}

// builtin is a scalar function. Unless nullCall is set, a NULL argument
// makes the result NULL without calling fn.
type builtin struct {
	name      string
	volatile  bool // a new value on every call: not constant, not a key bound
	nullCall  bool
	overloads []overload
	// relArg: PostgreSQL's first argument is a regclass, so a relation's
	// name (text) is cast to its OID, as pg_relation_size('t') is.
	relArg bool
}

func str1(f func(string) string) func(*evalCtx, []types.Datum) (types.Datum, error) {
	return func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return f(a[0].(string)), nil }
}

var builtins = map[string]*builtin{}

func init() {
	for _, b := range []*builtin{
		{name: "length", overloads: []overload{
			{[]types.T{types.String}, types.Int, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return int64(utf8.RuneCountInString(a[0].(string))), nil
			}},
			{[]types.T{types.Bytes}, types.Int, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return int64(len(a[0].([]byte))), nil
			}},
		}},
		{name: "octet_length", overloads: []overload{
			{[]types.T{types.String}, types.Int, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return int64(len(a[0].(string))), nil
			}},
			{[]types.T{types.Bytes}, types.Int, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return int64(len(a[0].([]byte))), nil
			}},
		}},
		{name: "lower", overloads: []overload{{[]types.T{types.String}, types.String, str1(strings.ToLower)}}},
		{name: "upper", overloads: []overload{{[]types.T{types.String}, types.String, str1(strings.ToUpper)}}},
		{name: "abs", overloads: []overload{
			{[]types.T{types.Int}, types.Int, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				v := a[0].(int64)
				if v == math.MinInt64 {
					return nil, errIntOutOfRange()
				}
				if v < 0 {
					v = -v
				}
				return v, nil
			}},
			{[]types.T{types.Float}, types.Float, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return math.Abs(a[0].(float64)), nil
			}},
			// Keeps the scale, as PostgreSQL's abs(numeric): abs(-0.50) is 0.50.
			{[]types.T{types.Decimal}, types.Decimal, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return new(apd.Decimal).Abs(a[0].(*apd.Decimal)), nil
			}},
		}},
		{name: "substr", overloads: []overload{
			{[]types.T{types.String, types.Int}, types.String, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return substr(a[0].(string), a[1].(int64), math.MaxInt64)
			}},
			{[]types.T{types.String, types.Int, types.Int}, types.String, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				return substr(a[0].(string), a[1].(int64), a[2].(int64))
			}},
		}},
		{name: "crdb_internal.node_executable_version", overloads: []overload{{nil, types.String, func(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
			return ec.exec.cfg.BinaryVersion, nil
		}}}},
		{name: "crdb_internal.node_id", overloads: []overload{{nil, types.Int, func(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
			return int64(ec.exec.cfg.NodeID()), nil
		}}}},
		{name: "unique_rowid", volatile: true, overloads: []overload{{nil, types.Int, func(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
			return ec.exec.uniqueRowID(), nil
		}}}},
		// now() is a TIMESTAMPTZ (release 2.1; it was an RFC 3339 STRING
		// before, and a STRING column still takes it as text).
		{name: "now", volatile: true, overloads: []overload{{nil, types.TimestampTZ, nowTZ}}},
		{name: "current_timestamp", volatile: true, overloads: []overload{{nil, types.TimestampTZ, nowTZ}}},
		{name: "transaction_timestamp", volatile: true, overloads: []overload{{nil, types.TimestampTZ, nowTZ}}},
		{name: "statement_timestamp", volatile: true, overloads: []overload{{nil, types.TimestampTZ, nowTZ}}},
		{name: "clock_timestamp", volatile: true, overloads: []overload{{nil, types.TimestampTZ, nowTZ}}},
		{name: "localtimestamp", volatile: true, overloads: []overload{{nil, types.Timestamp, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return types.MakeTimestamp(time.Now().UTC()), nil
		}}}},
		{name: "current_date", volatile: true, overloads: []overload{{nil, types.Date, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return types.DateFromTime(time.Now().UTC()), nil
		}}}},
		{name: "gen_random_uuid", volatile: true, overloads: []overload{{nil, types.UUID, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return types.NewRandomUUID(), nil
		}}}},
		{name: "random", volatile: true, overloads: []overload{{nil, types.Float, func(*evalCtx, []types.Datum) (types.Datum, error) {
			return rand.Float64(), nil
		}}}},
		{name: "current_user", volatile: true, overloads: []overload{{nil, types.String, sessionUser}}},
		{name: "session_user", volatile: true, overloads: []overload{{nil, types.String, sessionUser}}},
		{name: "current_schema", overloads: []overload{{nil, types.String, constString("public")}}},
	} {
		builtins[b.name] = b
	}
	builtins["char_length"] = builtins["length"]
	builtins["character_length"] = builtins["length"]
	builtins["substring"] = builtins["substr"]
	builtins["uuid_generate_v4"] = builtins["gen_random_uuid"]
}

func nowTZ(*evalCtx, []types.Datum) (types.Datum, error) {
	return types.MakeTimestampTZ(time.Now()), nil
}

// sessionUser is the user the session authenticated as.
func sessionUser(ec *evalCtx, _ []types.Datum) (types.Datum, error) {
	if s, ok := ec.ctx.Value(sessionKey{}).(*session); ok {
		return s.args.User, nil
	}
	return "root", nil
}

func constString(s string) func(*evalCtx, []types.Datum) (types.Datum, error) {
	return func(*evalCtx, []types.Datum) (types.Datum, error) { return s, nil }
}

// substr is PostgreSQL's substr: 1-based start, characters not bytes, a
// start before 1 eats into the length.
func substr(s string, start, length int64) (types.Datum, error) {
	if length < 0 {
		return nil, pgerror.Newf("22011", "negative substring length not allowed")
	}
	end := start + length
	if length == math.MaxInt64 || end < start {
		end = math.MaxInt64
	}
	if start < 1 {
		start = 1
	}
	var b strings.Builder
	pos := int64(1)
	for _, r := range s {
		if pos >= end {
			break
		}
		if pos >= start {
			b.WriteRune(r)
		}
		pos++
	}
	return b.String(), nil
}

// aggregate is one aggregate call of a query without GROUP BY.
type aggregate struct {
	kind     string      // count, sum, min, max, avg, string_agg, array_agg, bool_and, bool_or
	arg      texpr       // nil for count(*)
	sep      texpr       // string_agg's delimiter
	order    []orderItem // ORDER BY in the call, on the input row
	distinct bool
	filter   texpr // FILTER (WHERE ...): nil for every row
	t        types.T
	// sum and avg (sumavg.go): the result's declared width (FLOAT4 for
	// sum(float4)), the accumulator, and whether the types are
	// PostgreSQL's (cluster version 2.1).
	mod types.Mod
	acc accKind
	pg  bool
}

// aggState accumulates one aggregate over the rows.
type aggState struct {
	agg   *aggregate
	count int64
	isum  int64 // accInt's sum; accInt128's low word
	hi    int64 // accInt128's high word
	fsum  float64
	fsxx  float64 // accFloatAccum's sum of squared deviations
	f32   float32
	val   types.Datum
	seen  map[string]bool
	list  types.Array     // array_agg, string_agg
	seps  []string        // string_agg: the delimiter before each value
	keys  [][]types.Datum // with ORDER BY: each listed value's sort keys
	// keep, when not nil, copies what the state keeps of a value: the
	// values are borrowed (streamBorrowedRows) and valid only during add.
	keep *keeper
}

// kept returns d as the state may keep it past add.
func (s *aggState) kept(d types.Datum) types.Datum {
	if s.keep == nil {
		return d
	}
	return s.keep.own(d)
}

func (s *aggState) add(ec *evalCtx) error {
	if s.agg.filter != nil {
		d, err := ec.eval(s.agg.filter)
		if err != nil {
			return err
		}
		if d != true {
			return nil // FILTER: the row is not aggregated (false or NULL)
		}
	}
	if s.agg.arg == nil { // count(*)
		s.count++
		return nil
	}
	d, err := ec.eval(s.agg.arg)
	if err != nil {
		return err
	}
	if d == nil {
		if s.agg.kind == "array_agg" {
			s.list = append(s.list, nil) // array_agg keeps NULLs
			return s.addKeys(ec)
		}
		return nil
	}
	if s.agg.distinct {
		k, err := rowenc.AppendKey(nil, types.TypeOf(d), d)
		if err != nil {
			return err
		}
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		if s.seen[string(k)] {
			return nil
		}
		s.seen[string(k)] = true
	}
	s.count++
	switch s.agg.kind {
	case "array_agg":
		s.list = append(s.list, s.kept(d))
		return s.addKeys(ec)
	case "string_agg":
		sep, err := ec.eval(s.agg.sep)
		if err != nil {
			return err
		}
		sepStr, _ := sep.(string)
		if s.keep != nil {
			sepStr = strings.Clone(sepStr)
		}
		s.list = append(s.list, s.kept(d))
		s.seps = append(s.seps, sepStr)
		return s.addKeys(ec)
	case "bool_and", "every":
		if s.val == nil {
			s.val = true
		}
		s.val = s.val.(bool) && d.(bool)
	case "bool_or":
		if s.val == nil {
			s.val = false
		}
		s.val = s.val.(bool) || d.(bool)
	case "sum", "avg":
		return s.addSumAvg(d)
	case "min", "max":
		if s.val == nil {
			s.val = s.kept(d)
			return nil
		}
		c, err := compareDatums(d, s.val)
		if err != nil {
			return err
		}
		if (s.agg.kind == "min" && c < 0) || (s.agg.kind == "max" && c > 0) {
			s.val = s.kept(d)
		}
	}
	return nil
}

// addKeys records the sort keys of the value just listed, for an
// aggregate with ORDER BY.
func (s *aggState) addKeys(ec *evalCtx) error {
	if len(s.agg.order) == 0 {
		return nil
	}
	k := make([]types.Datum, len(s.agg.order))
	for i, o := range s.agg.order {
		d, err := ec.eval(o.e)
		if err != nil {
			return err
		}
		k[i] = s.kept(d)
	}
	s.keys = append(s.keys, k)
	return nil
}

// sortList orders the listed values by their ORDER BY keys, stably.
func (s *aggState) sortList() error {
	if len(s.agg.order) == 0 || len(s.list) < 2 {
		return nil
	}
	// Sort rows of [keys..., index] with sortRows, then permute.
	rows := make([][]types.Datum, len(s.list))
	order := make([]orderItem, len(s.agg.order))
	for i, o := range s.agg.order {
		order[i] = orderItem{e: &colExpr{idx: i}, desc: o.desc, nulls: o.nulls}
	}
	for i := range rows {
		rows[i] = append(append([]types.Datum{}, s.keys[i]...), int64(i))
	}
	if err := sortRows(&evalCtx{}, rows, order); err != nil {
		return err
	}
	list := make(types.Array, len(s.list))
	var seps []string
	if s.seps != nil {
		seps = make([]string, len(s.seps))
	}
	for i, r := range rows {
		j := r[len(r)-1].(int64)
		list[i] = s.list[j]
		if seps != nil {
			seps[i] = s.seps[j]
		}
	}
	s.list, s.seps = list, seps
	return nil
}

func (s *aggState) result() (types.Datum, error) {
	switch s.agg.kind {
	case "count":
		return s.count, nil
	case "sum", "avg":
		return s.sumAvgResult()
	case "array_agg":
		if len(s.list) == 0 {
			return nil, nil
		}
		return s.list, nil
	case "string_agg":
		if len(s.list) == 0 {
			return nil, nil
		}
		var b strings.Builder
		for i, d := range s.list {
			if i > 0 {
				b.WriteString(s.seps[i])
			}
			b.WriteString(d.(string))
		}
		return b.String(), nil
	}
	return s.val, nil
}

func isAggregateName(name string) bool {
	switch name {
	case "count", "sum", "min", "max", "avg", "string_agg", "array_agg", "bool_and", "bool_or", "every":
		return true
	}
	return false
}

// checkFunc type-checks a function call: aggregates, coalesce and concat
// specially, everything else by overload resolution.
func (a *analyzer) checkFunc(v *parser.FuncCall, desired types.T) (texpr, error) {
	name := strings.TrimPrefix(v.FuncName(), "pg_catalog.")
	if v.Filter != nil && !isAggregateName(name) {
		if v.Over != nil {
			return nil, unsupported("FILTER is not implemented for non-aggregate window functions")
		}
		return nil, pgerror.Newf(pgerror.CodeWrongObjectType, "FILTER specified, but %s is not an aggregate function", name)
	}
	if v.Over != nil {
		return a.checkWindow(name, v)
	}
	if isAggregateName(name) {
		return a.checkAggregate(name, v)
	}
	if v.Star || v.Distinct || len(v.OrderBy) > 0 {
		return nil, pgerror.Newf(pgerror.CodeSyntaxError, "%s(*), %s(DISTINCT ...) and ORDER BY in a call are only valid for aggregates", name, name)
	}
	switch name {
	case "nullif":
		if len(v.Args) != 2 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "nullif takes exactly two arguments")
		}
		return a.check(&parser.CaseExpr{
			Whens: []*parser.When{{Cond: &parser.ComparisonExpr{Op: parser.CmpEQ, Left: v.Args[0], Right: v.Args[1]}, Val: &parser.NullVal{}}},
			Else:  v.Args[0],
		}, desired)
	case "coalesce", "ifnull", "greatest", "least":
		if len(v.Args) == 0 {
			return nil, pgerror.Newf(pgerror.CodeSyntaxError, "%s needs at least one argument", name)
		}
		// Like IN: the arguments share one type, found from the best
		// ranked one.
		in, err := a.checkIn(&parser.InExpr{Expr: v.Args[0], List: v.Args[1:]})
		if err != nil {
			return nil, err
		}
		ie := in.(*inExpr)
		args := append([]texpr{ie.e}, ie.list...)
		t := types.Unknown
		for _, x := range args {
			t = hint(t, x.typ())
		}
		t = hint(t, desired)
		if (name == "greatest" || name == "least") && t == types.Unknown {
			t = types.String // PostgreSQL resolves unknown literals to text
		}
		for i := range args {
			if args[i], err = a.settle(v.Args[i], args[i], t); err != nil {
				return nil, err
			}
		}
		fn := coalesceBuiltin
		switch name {
		case "greatest":
			fn = greatestBuiltin
		case "least":
			fn = leastBuiltin
		}
		return &funcExpr{fn: fn, args: args, t: t}, nil
	case "pg_typeof":
		if len(v.Args) != 1 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "pg_typeof takes exactly one argument")
		}
		x, err := a.check(v.Args[0], types.Unknown)
		if err != nil {
			return nil, err
		}
		return &constExpr{t: types.String, d: pgTypeName(x)}, nil
	case "json_build_object":
		if len(v.Args)%2 != 0 {
			return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "argument list must have even number of elements")
		}
		args := make([]texpr, len(v.Args))
		for i, x := range v.Args {
			c, err := a.check(x, types.String)
			if err != nil {
				return nil, err
			}
			args[i] = c
		}
		return &funcExpr{fn: jsonBuildObjectBuiltin, args: args, t: types.String}, nil
	case "jsonb_build_object", "jsonb_build_array", "json_build_array", "to_jsonb", "to_json":
		args := make([]texpr, len(v.Args))
		for i, x := range v.Args {
			c, err := a.check(x, types.Unknown)
			if err != nil {
				return nil, err
			}
			if c, err = a.settle(x, c, types.String); err != nil {
				return nil, err
			}
			args[i] = c
		}
		return &funcExpr{fn: &builtin{name: name, nullCall: true, overloads: []overload{{ret: types.JSONB, fn: func(_ *evalCtx, d []types.Datum) (types.Datum, error) {
			return evalJSONBuild(name, d)
		}}}}, args: args, t: types.JSONB}, nil
	case "concat":
		args := make([]texpr, len(v.Args))
		for i, x := range v.Args {
			c, err := a.check(x, types.String)
			if err != nil {
				return nil, err
			}
			args[i] = c
		}
		return &funcExpr{fn: concatBuiltin, args: args, t: types.String}, nil
	}
	if isSRFName(name) {
		return nil, pgerror.WithHintf(unsupported("set-returning function %s() is supported only as a whole select-list item or in FROM", name),
			"write SELECT %s(...) or SELECT ... FROM %s(...) AS x", name, name)
	}
	b, ok := builtins[name]
	if !ok {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown function: %s()", v.FuncName()),
			"SELECT proname FROM pg_catalog.pg_proc lists kvnode's functions")
	}
	// With a single candidate, its argument types are what the arguments
	// should be (lower($1) makes $1 a STRING).
	var args []texpr
	for i, x := range v.Args {
		want := types.Unknown
		if len(b.overloads) == 1 && i < len(b.overloads[0].args) {
			want = b.overloads[0].args[i]
		}
		if i == 0 && b.relArg {
			want = types.Unknown
		}
		c, err := a.check(x, want)
		if err != nil {
			return nil, err
		}
		if i == 0 && b.relArg && (c.typ() == types.String || c.typ() == types.Unknown) {
			c = &regCastExpr{e: settleTo(c, types.String), kind: "regclass"}
		}
		args = append(args, c)
	}
	for oi := range b.overloads {
		ov := &b.overloads[oi]
		if len(ov.args) != len(args) {
			continue
		}
		conv := make([]texpr, len(args))
		match := true
		for i, x := range args {
			if x.typ() == types.Unknown && a.rank(v.Args[i]) == 3 {
				// An untyped placeholder takes the first overload's type.
				var err error
				if x, err = a.check(v.Args[i], ov.args[i]); err != nil {
					return nil, err
				}
				args[i] = x
			}
			switch t := x.typ(); {
			case t == ov.args[i]:
				conv[i] = x
			case t == types.Unknown:
				conv[i] = &castExpr{e: x, to: ov.args[i]}
			case t == types.Int && ov.args[i] == types.Float:
				conv[i] = &castExpr{e: x, to: types.Float}
			case t == types.Int && ov.args[i] == types.Decimal:
				conv[i] = castTo(x, types.Decimal)
			default:
				match = false
			}
		}
		if match {
			return &funcExpr{fn: &builtin{name: b.name, volatile: b.volatile, overloads: []overload{*ov}}, args: conv, t: ov.ret}, nil
		}
	}
	var got []string
	for _, x := range args {
		got = append(got, typeName(x.typ()))
	}
	var have []string
	for _, ov := range b.overloads {
		var ts []string
		for _, t := range ov.args {
			ts = append(ts, typeName(t))
		}
		have = append(have, name+"("+strings.Join(ts, ", ")+")")
	}
	err := pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: %s(%s)", name, strings.Join(got, ", "))
	if first := b.overloads[0].args; len(first) > 0 {
		var ex []string
		for i, t := range first {
			ex = append(ex, string(rune('x'+i%3))+"::"+typeName(t))
		}
		return nil, pgerror.WithHintf(err, "kvnode has %s; cast the arguments to match one, for example %s(%s)",
			strings.Join(have, ", "), name, strings.Join(ex, ", "))
	}
	return nil, err
}

// Sentinels for the two variadic builtins, evaluated specially.
var (
	coalesceBuiltin = &builtin{name: "coalesce", nullCall: true}
	greatestBuiltin = &builtin{name: "greatest", nullCall: true}
	leastBuiltin    = &builtin{name: "least", nullCall: true}
	concatBuiltin   = &builtin{name: "concat", nullCall: true}
)

func (ec *evalCtx) evalFunc(v *funcExpr) (types.Datum, error) {
	switch v.fn {
	case coalesceBuiltin:
		for _, x := range v.args {
			d, err := ec.eval(x)
			if err != nil || d != nil {
				return d, err
			}
		}
		return nil, nil
	case greatestBuiltin, leastBuiltin:
		// The largest or smallest argument; NULLs are ignored, as in
		// PostgreSQL, and the result is NULL only if every one is.
		var best types.Datum
		for _, x := range v.args {
			d, err := ec.eval(x)
			if err != nil {
				return nil, err
			}
			if d == nil {
				continue
			}
			if best == nil {
				best = d
				continue
			}
			c, err := compareDatums(d, best)
			if err != nil {
				return nil, err
			}
			if c > 0 && v.fn == greatestBuiltin || c < 0 && v.fn == leastBuiltin {
				best = d
			}
		}
		return best, nil
	case jsonBuildObjectBuiltin:
		args := make([]types.Datum, len(v.args))
		for i, x := range v.args {
			d, err := ec.eval(x)
			if err != nil {
				return nil, err
			}
			args[i] = d
		}
		return v.fn.overloads[0].fn(ec, args)
	case concatBuiltin:
		var b strings.Builder
		for _, x := range v.args {
			d, err := ec.eval(x)
			if err != nil {
				return nil, err
			}
			b.Write(types.FormatText(d))
		}
		return b.String(), nil
	}
	args := make([]types.Datum, len(v.args))
	for i, x := range v.args {
		d, err := ec.eval(x)
		if err != nil {
			return nil, err
		}
		if d == nil && !v.fn.nullCall {
			return nil, nil
		}
		args[i] = d
	}
	return v.fn.overloads[0].fn(ec, args)
}

func (a *analyzer) checkAggregate(name string, v *parser.FuncCall) (texpr, error) {
	if !a.allowAggs {
		return nil, pgerror.Newf(codeGroupingError, "aggregate functions are not allowed in %s", a.clauseName())
	}
	if a.inAgg {
		return nil, pgerror.Newf(codeGroupingError, "aggregate function calls cannot be nested")
	}
	agg, err := a.buildAggregate(name, v, false)
	if err != nil {
		return nil, err
	}
	a.aggs = append(a.aggs, agg)
	if a.aggsInRow {
		return &aggRef{idx: a.aggBase + len(a.aggs) - 1, t: agg.t, mod: agg.mod, inRow: true}, nil
	}
	return &aggRef{idx: len(a.aggs) - 1, t: agg.t, mod: agg.mod}, nil
}

// buildAggregate types an aggregate call. Over a window (window), its
// arguments are checked where the call stands, so that they may hold the
// query's own aggregates (sum(sum(x)) OVER ()), as in PostgreSQL.
func (a *analyzer) buildAggregate(name string, v *parser.FuncCall, window bool) (*aggregate, error) {
	inAgg := !window
	agg := &aggregate{kind: name, distinct: v.Distinct}
	switch {
	case v.Star:
		if name != "count" {
			return nil, pgerror.Newf(pgerror.CodeSyntaxError, "%s(*) is not valid; only count(*) is", name)
		}
		agg.t = types.Int
	case name == "string_agg":
		if len(v.Args) != 2 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "string_agg takes two arguments: the value and the delimiter")
		}
		a.inAgg = inAgg
		arg, err := a.check(v.Args[0], types.String)
		if err == nil {
			agg.sep, err = a.check(v.Args[1], types.String)
		}
		a.inAgg = false
		if err != nil {
			return nil, err
		}
		if arg.typ() != types.String && arg.typ() != types.Unknown || agg.sep.typ() != types.String && agg.sep.typ() != types.Unknown {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: string_agg(%s, %s)", typeName(arg.typ()), typeName(agg.sep.typ()))
		}
		agg.arg, agg.t = arg, types.String
	case len(v.Args) != 1:
		return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "%s takes exactly one argument", name)
	default:
		a.inAgg = inAgg
		arg, err := a.check(v.Args[0], types.Unknown)
		a.inAgg = false
		if err != nil {
			return nil, err
		}
		at := arg.typ()
		switch name {
		case "count":
			agg.t = types.Int
		case "sum", "avg":
			agg.pg = a.qb != nil && a.qb.e.pgAggregateTypes()
			if agg.t, agg.mod, agg.acc, err = sumAvgType(name, arg, agg.pg); err != nil {
				return nil, err
			}
		case "array_agg":
			if at.IsArray() {
				return nil, unsupported("array_agg of arrays is not supported")
			}
			agg.t = types.ArrayOf(hint(at, types.String))
		case "bool_and", "bool_or", "every":
			if at != types.Bool && at != types.Unknown {
				return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: %s(%s)", name, typeName(at))
			}
			agg.t = types.Bool
		default: // min, max
			if at == types.Unknown {
				at = types.String
			}
			agg.t = at
		}
		agg.arg = arg
	}
	if len(v.OrderBy) > 0 {
		if v.Distinct {
			return nil, unsupported("DISTINCT with ORDER BY in an aggregate is not supported")
		}
		a.inAgg = inAgg
		for _, o := range v.OrderBy {
			oe, err := a.check(o.Expr, types.Unknown)
			if err != nil {
				a.inAgg = false
				return nil, err
			}
			agg.order = append(agg.order, orderItem{e: oe, desc: o.Desc, nulls: o.Nulls})
		}
		a.inAgg = false
	}
	if v.Filter != nil {
		// Checked in a clause of its own, where neither aggregates nor
		// window functions may appear (PostgreSQL's errors).
		clause, allowAggs, allowWindows := a.clause, a.allowAggs, a.allowWindows
		a.clause, a.allowAggs, a.allowWindows = "FILTER", false, false
		f, err := a.checkBool(v.Filter, "FILTER")
		a.clause, a.allowAggs, a.allowWindows = clause, allowAggs, allowWindows
		if err != nil {
			return nil, err
		}
		agg.filter = f
	}
	return agg, nil
}
