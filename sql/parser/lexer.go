package parser

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kvnode/kvnode/sql/pgerror"
)

// tokKind classifies a token.
type tokKind uint8

const (
	tokEOF tokKind = iota
	// tokIdent is a word: a keyword or an identifier. Unquoted words are
	// lowercased; the parser decides from context whether a word is a
	// keyword, so most keywords stay usable as column names.
	tokIdent
	tokString // '...', E'...'; val holds the decoded text
	tokBytes  // x'...', b'...'; val holds the decoded bytes
	tokInt    // digits only
	tokFloat  // digits with a '.' or an exponent
	tokPlaceholder
	tokOp // punctuation and operators; val holds the operator text
)

// token is one lexical unit. pos is the byte offset of its first byte in the
// whole query, so that errors in the third statement of a batch still point
// into the text the client sent.
type token struct {
	kind   tokKind
	val    string
	raw    string // the token as written, for error messages
	quoted bool   // tokIdent written as "..."
	pos    int
	end    int // byte offset just past the token
	n      int // tokPlaceholder: the number after '$'
}

// maxPlaceholder bounds $n like PostgreSQL, whose Bind message carries the
// parameter count in an int16.
const maxPlaceholder = 65535

// lexer turns a query string into tokens. It never panics: every malformed
// input becomes a positioned 42601 error.
type lexer struct {
	src string
	pos int
}

// charPos converts a byte offset into the 1-based character position that
// PostgreSQL reports in an ErrorResponse (psql draws its caret with it).
func charPos(src string, off int) int {
	if off > len(src) {
		off = len(src)
	}
	return utf8.RuneCountInString(src[:off]) + 1
}

// syntaxErrorAt builds the standard syntax error naming the offending text.
func syntaxErrorAt(src string, off int, near string) error {
	return pgerror.WithPosition(
		pgerror.Newf(pgerror.CodeSyntaxError, "at or near \"%s\": syntax error", near), charPos(src, off))
}

// lexErrorAt is a syntax error with a reason, for malformed tokens.
func lexErrorAt(src string, off int, near, reason string) error {
	return pgerror.WithPosition(
		pgerror.Newf(pgerror.CodeSyntaxError, "at or near \"%s\": syntax error: %s", near, reason), charPos(src, off))
}

// nearText is a short excerpt of the source from off, used in lexer errors.
func nearText(src string, off int) string {
	rest := src[off:]
	if i := strings.IndexAny(rest, " \t\r\n"); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) > 20 {
		rest = rest[:20]
		for !utf8.ValidString(rest) && len(rest) > 0 {
			rest = rest[:len(rest)-1]
		}
	}
	return rest
}

// skipSpaceAndComments advances over whitespace, "--" line comments and
// (nested, as in PostgreSQL) "/* */" block comments.
func (l *lexer) skipSpaceAndComments() error {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '-' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '-':
			if i := strings.IndexByte(l.src[l.pos:], '\n'); i >= 0 {
				l.pos += i + 1
			} else {
				l.pos = len(l.src)
			}
		case c == '/' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '*':
			start := l.pos
			depth := 0
			for {
				if l.pos+1 >= len(l.src) {
					return lexErrorAt(l.src, start, "/*", "unterminated comment")
				}
				two := l.src[l.pos : l.pos+2]
				switch two {
				case "/*":
					depth++
					l.pos += 2
				case "*/":
					depth--
					l.pos += 2
				default:
					l.pos++
				}
				if depth == 0 {
					break
				}
			}
		default:
			if c >= utf8.RuneSelf {
				r, size := utf8.DecodeRuneInString(l.src[l.pos:])
				if unicode.IsSpace(r) {
					l.pos += size
					continue
				}
			}
			return nil
		}
	}
	return nil
}

func isIdentStart(r rune) bool {
	return r == '_' || unicode.IsLetter(r)
}

func isIdentCont(r rune) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	if err := l.skipSpaceAndComments(); err != nil {
		return token{}, err
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tokEOF, pos: start, end: start, raw: "EOF"}, nil
	}
	c := l.src[l.pos]
	mk := func(kind tokKind, val string) token {
		return token{kind: kind, val: val, raw: l.src[start:l.pos], pos: start, end: l.pos}
	}

	// Prefixed string literals: E'..', X'..', B'..'. They must be checked
	// before identifiers, since E, X and B are also identifier starts.
	if (c == 'e' || c == 'E' || c == 'x' || c == 'X' || c == 'b' || c == 'B') &&
		l.pos+1 < len(l.src) && l.src[l.pos+1] == '\'' {
		l.pos++
		body, err := l.quoted('\'', start, c != 'x' && c != 'X')
		if err != nil {
			return token{}, err
		}
		switch c {
		case 'e', 'E':
			return mk(tokString, body), nil
		case 'x', 'X':
			b, err := hex.DecodeString(body)
			if err != nil {
				return token{}, lexErrorAt(l.src, start, l.src[start:l.pos], "invalid hexadecimal bytes literal")
			}
			return mk(tokBytes, string(b)), nil
		default:
			return mk(tokBytes, body), nil
		}
	}

	switch {
	case c == '\'':
		body, err := l.quoted('\'', start, false)
		if err != nil {
			return token{}, err
		}
		return mk(tokString, body), nil
	case c == '"':
		body, err := l.quoted('"', start, false)
		if err != nil {
			return token{}, err
		}
		if body == "" {
			return token{}, lexErrorAt(l.src, start, `""`, "zero-length delimited identifier")
		}
		t := mk(tokIdent, body)
		t.quoted = true
		return t, nil
	case c >= '0' && c <= '9' || c == '.' && l.pos+1 < len(l.src) && l.src[l.pos+1] >= '0' && l.src[l.pos+1] <= '9':
		return l.number(start)
	case c == '$' && l.pos+1 < len(l.src) && (l.src[l.pos+1] == '$' || isDollarTagStart(l.src[l.pos+1])):
		return l.dollarQuoted(start)
	case c == '$':
		l.pos++
		ds := l.pos
		for l.pos < len(l.src) && l.src[l.pos] >= '0' && l.src[l.pos] <= '9' {
			l.pos++
		}
		if ds == l.pos {
			return token{}, lexErrorAt(l.src, start, nearText(l.src, start), "a placeholder is written $1, $2, ...")
		}
		n, err := strconv.Atoi(l.src[ds:l.pos])
		if err != nil || n < 1 || n > maxPlaceholder {
			return token{}, lexErrorAt(l.src, start, l.src[start:l.pos],
				"placeholder numbers go from $1 to $65535")
		}
		t := mk(tokPlaceholder, l.src[start:l.pos])
		t.n = n
		return t, nil
	}

	r, size := utf8.DecodeRuneInString(l.src[l.pos:])
	if r == utf8.RuneError && size <= 1 {
		l.pos++
		return token{}, lexErrorAt(l.src, start, "\\x"+hex.EncodeToString([]byte{c}), "invalid UTF-8 in query")
	}
	if isIdentStart(r) {
		for l.pos < len(l.src) {
			r, size := utf8.DecodeRuneInString(l.src[l.pos:])
			if !isIdentCont(r) {
				break
			}
			l.pos += size
		}
		return mk(tokIdent, lowerIdent(l.src[start:l.pos])), nil
	}

	if strings.HasPrefix(l.src[l.pos:], "::") {
		l.pos += 2
		return mk(tokOp, "::"), nil
	}
	// An operator is a run of operator characters, as PostgreSQL lexes it
	// (scan.l): it stops before a comment, and a run of more than one
	// character does not end in + or - unless it holds one of ~!@#%^&|`?
	// (so a<-1 is a < -1). Operators kvnode does not have (@>, ->, #)
	// become tokens too, which the parser refuses with 0A000.
	if isOpChar(c) {
		end := l.pos
		for end < len(l.src) && isOpChar(l.src[end]) {
			if end > l.pos && (strings.HasPrefix(l.src[end:], "--") || strings.HasPrefix(l.src[end:], "/*")) {
				break
			}
			end++
		}
		op := l.src[l.pos:end]
		if len(op) > 1 && !strings.ContainsAny(op, "~!@#%^&|`?") {
			for len(op) > 1 && (op[len(op)-1] == '+' || op[len(op)-1] == '-') {
				op = op[:len(op)-1]
			}
		}
		l.pos += len(op)
		return mk(tokOp, op), nil
	}
	switch c {
	case '(', ')', ',', ';', '.', '[', ']', ':':
		l.pos++
		return mk(tokOp, string(c)), nil
	}
	l.pos += size
	return token{}, syntaxErrorAt(l.src, start, string(r))
}

// isOpChar reports whether c can be part of an operator (PostgreSQL's
// "self" and "op_chars" without the punctuation).
func isOpChar(c byte) bool {
	return strings.IndexByte("~!@#^&|`?+-*/%<>=", c) >= 0
}

func isDollarTagStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// dollarQuoted reads a dollar-quoted string: $$...$$ or $tag$...$tag$.
func (l *lexer) dollarQuoted(start int) (token, error) {
	end := strings.IndexByte(l.src[start+1:], '$')
	if end < 0 {
		return token{}, lexErrorAt(l.src, start, nearText(l.src, start), "unterminated dollar-quoted string")
	}
	tag := l.src[start : start+1+end+1]
	for _, r := range tag[1 : len(tag)-1] {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r >= utf8.RuneSelf) {
			return token{}, lexErrorAt(l.src, start, nearText(l.src, start), "a placeholder is written $1, $2, ...")
		}
	}
	bodyStart := start + len(tag)
	i := strings.Index(l.src[bodyStart:], tag)
	if i < 0 {
		return token{}, lexErrorAt(l.src, start, tag, "unterminated dollar-quoted string")
	}
	l.pos = bodyStart + i + len(tag)
	body := l.src[bodyStart : bodyStart+i]
	return token{kind: tokString, val: body, raw: l.src[start:l.pos], pos: start, end: l.pos}, nil
}

// lowerIdent lowercases an unquoted identifier, without allocating in the
// common case where it already is lowercase ASCII.
func lowerIdent(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// quoted reads a quoted token whose opening quote is at l.pos; a doubled
// quote stands for one quote character. With escapes (E'...'), backslash
// sequences are decoded as in PostgreSQL.
func (l *lexer) quoted(q byte, start int, escapes bool) (string, error) {
	l.pos++ // opening quote
	var b strings.Builder
	for {
		if l.pos >= len(l.src) {
			what := "unterminated quoted string"
			if q == '"' {
				what = "unterminated quoted identifier"
			}
			return "", lexErrorAt(l.src, start, nearText(l.src, start), what)
		}
		c := l.src[l.pos]
		switch {
		case c == q:
			if l.pos+1 < len(l.src) && l.src[l.pos+1] == q {
				b.WriteByte(q)
				l.pos += 2
				continue
			}
			l.pos++
			return b.String(), nil
		case c == '\\' && escapes:
			if err := l.escape(&b, start); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
}

// escape decodes one backslash sequence of an E” string at l.pos.
func (l *lexer) escape(b *strings.Builder, start int) error {
	if l.pos+1 >= len(l.src) {
		return lexErrorAt(l.src, start, nearText(l.src, start), "unterminated quoted string")
	}
	c := l.src[l.pos+1]
	l.pos += 2
	switch c {
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
	case 'x':
		n := 0
		v := 0
		for n < 2 && l.pos < len(l.src) && isHex(l.src[l.pos]) {
			v = v*16 + hexVal(l.src[l.pos])
			l.pos++
			n++
		}
		if n == 0 {
			return lexErrorAt(l.src, start, nearText(l.src, start), `invalid escape sequence \x`)
		}
		b.WriteByte(byte(v))
	case 'u', 'U':
		width := 4
		if c == 'U' {
			width = 8
		}
		if l.pos+width > len(l.src) {
			return lexErrorAt(l.src, start, nearText(l.src, start), "invalid Unicode escape")
		}
		v, err := strconv.ParseUint(l.src[l.pos:l.pos+width], 16, 32)
		if err != nil || !utf8.ValidRune(rune(v)) {
			return lexErrorAt(l.src, start, nearText(l.src, start), "invalid Unicode escape")
		}
		b.WriteRune(rune(v))
		l.pos += width
	default:
		if c >= '0' && c <= '7' {
			v := int(c - '0')
			for n := 1; n < 3 && l.pos < len(l.src) && l.src[l.pos] >= '0' && l.src[l.pos] <= '7'; n++ {
				v = v*8 + int(l.src[l.pos]-'0')
				l.pos++
			}
			b.WriteByte(byte(v))
			return nil
		}
		// \\, \', and any other character stand for themselves.
		b.WriteByte(c)
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

// number reads an integer or float literal.
func (l *lexer) number(start int) (token, error) {
	isFloat := false
	digits := func() int {
		n := 0
		for l.pos < len(l.src) && l.src[l.pos] >= '0' && l.src[l.pos] <= '9' {
			l.pos++
			n++
		}
		return n
	}
	digits()
	if l.pos < len(l.src) && l.src[l.pos] == '.' &&
		// "1..2" is not a number followed by ".2"; keep it simple and
		// only take the dot when no second dot follows.
		!(l.pos+1 < len(l.src) && l.src[l.pos+1] == '.') {
		isFloat = true
		l.pos++
		digits()
	}
	if l.pos < len(l.src) && (l.src[l.pos] == 'e' || l.src[l.pos] == 'E') {
		save := l.pos
		l.pos++
		if l.pos < len(l.src) && (l.src[l.pos] == '+' || l.src[l.pos] == '-') {
			l.pos++
		}
		if digits() == 0 {
			l.pos = save
		} else {
			isFloat = true
		}
	}
	// "123abc" is an error in PostgreSQL 15+, and accepting it as "123 AS
	// abc" surprises people; reject it.
	if l.pos < len(l.src) {
		r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
		if isIdentStart(r) {
			return token{}, lexErrorAt(l.src, start, nearText(l.src, start), "trailing junk after numeric literal")
		}
	}
	text := l.src[start:l.pos]
	kind := tokInt
	if isFloat {
		kind = tokFloat
	}
	return token{kind: kind, val: text, raw: text, pos: start, end: l.pos}, nil
}

// tokenize lexes the whole query up front. Queries are short, and having
// every token lets the parser look ahead freely and report positions.
func tokenize(src string) ([]token, error) {
	l := lexer{src: src}
	// One token per ~4 bytes is generous for SQL; sizing up front avoids
	// repeated growth, the lexer's main cost.
	toks := make([]token, 0, len(src)/4+2)
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
	}
}
