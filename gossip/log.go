package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// newMemberlistLogger adapts memberlist's *log.Logger output to slog.
//
// memberlist formats every line as "[LEVEL] memberlist: message". The
// writer maps the level to slog's; [DEBUG] lines (memberlist logs every
// stream connection and failed UDP ping at that level) go to slog's Debug
// level, so the handler's level filters them, and they cost nothing unless
// debug logging is on.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&slogWriter{l: l}, "", 0)
}

type slogWriter struct{ l *slog.Logger }

// Write is called by log.Logger, which serializes calls; slog handlers are
// safe for concurrent use, so the writer needs no lock of its own.
func (w *slogWriter) Write(p []byte) (int, error) {
	n := len(p)
	level, msg := parseMemberlistLine(p)
	ctx := context.Background()
	if !w.l.Enabled(ctx, level) {
		return n, nil
	}
	if isKeyMismatch(msg) {
		w.l.Log(ctx, slog.LevelWarn, "refused gossip: the peer does not have this cluster's gossip key "+
			"(another cluster, a node started --insecure, or a gossip.key that differs from this node's: every node needs the same file)",
			slog.String("component", "memberlist"), slog.String("detail", msg))
		return n, nil
	}
	w.l.Log(ctx, level, msg, slog.String("component", "memberlist"))
	return n, nil
}

// isKeyMismatch recognizes memberlist's errors for a message it could not
// decrypt, or a plaintext one where gossip is encrypted (and the reverse).
func isKeyMismatch(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "could decrypt") || strings.Contains(m, "decrypt packet failed") ||
		strings.Contains(m, "remote state is not encrypted") || strings.Contains(m, "encryption is not configured")
}

var memberlistLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// refusalText is how every refusal by vet begins. memberlist repeats such
// an error in its own lines ("ignoring alive message for ...", "Failed
// push/pull merge: ...") on every retransmission, at Warn and Error; vet
// already logged it, rate limited and with both cluster IDs, so memberlist's
// copies are demoted to Debug.
var refusalText = []byte(refusalPrefix)

func parseMemberlistLine(p []byte) (slog.Level, string) {
	p = bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	for _, l := range memberlistLevels {
		if rest, ok := bytes.CutPrefix(p, []byte(l.prefix)); ok {
			level, p = l.level, bytes.TrimLeft(rest, " ")
			break
		}
	}
	p, _ = bytes.CutPrefix(p, []byte("memberlist: "))
	if level > slog.LevelDebug && bytes.Contains(p, refusalText) {
		level = slog.LevelDebug
	}
	return level, string(p)
}
