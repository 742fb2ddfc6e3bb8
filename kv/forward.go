package kv

import (
	"context"
	"encoding/binary"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Forwarding a follower's proposals to the leader, idempotently.
//
// A follower hands its proposals to the leader of term T with
// Transport.Forward, and the leader appends them only while its term is T
// (flushProposals explains why that makes a later retry safe). If the call
// fails, the follower cannot tell whether the leader appended them: the
// request may have been lost, or only the answer. It used to leave them
// pending until the term changed or its caller's deadline ran out (an
// ambiguous result), which on a healthy cluster meant a ten-second hang.
//
// Now the follower sends the same proposals again, to the same leader and
// term, for up to forwardRetryWindow and while a caller still waits for one
// of them, through a method of its own
// (ProposeRetry, which a build without what follows answers with
// Unimplemented: the follower then stops retrying), and the leader makes the
// retry harmless: it remembers the IDs of the forwarded commands it appended
// in its current term, and answers a command it has seen with "appended"
// instead of appending it twice. The leader keeps an ID for at least forwardIDRetention,
// far longer than a retry can arrive after the first attempt (the window,
// plus one call's timeout, plus the 15 s after which gRPC's keepalive gives
// up on a connection that stalls), and it ignores a request whose caller has
// given up already, and a retried command whose ID it cannot read. A new
// term forgets every ID: a retry for an old term is refused anyway.
const (
	forwardRetryWindow = 10 * time.Second
	forwardCallTimeout = 5 * time.Second
	forwardIDRetention = time.Minute
)

// forward hands props (encoded as datas) to leader, the leader of term, and
// settles the proposals it refuses. It runs on its own goroutine.
func (r *Replica) forward(leader, term uint64, props []*proposal, datas [][]byte) {
	if k := r.cfg.Testing; k != nil && k.ForwardDone != nil {
		defer k.ForwardDone(datas)
	}
	giveUp := time.Now().Add(forwardRetryWindow)
	backoff := 20 * time.Millisecond
	for retry := false; ; retry = true {
		if retry && allGone(props) {
			return // every caller was told the outcome is unknown
		}
		ctx, cancel := context.WithTimeout(context.Background(), forwardCallTimeout)
		acc, err := r.cfg.Transport.Forward(ctx, leader, term, datas, retry)
		cancel()
		if err == nil {
			r.reportWait(func() { r.settleForwarded(props, acc, retry) })
			return
		}
		r.log.Debug("forwarding proposals to the leader failed", "leader", leader, "term", term,
			"proposals", len(datas), "retry", retry, "err", err)
		if status.Code(err) == codes.Unimplemented {
			return // a leader of an older build: it could append them twice
		}
		if time.Now().Add(backoff).After(giveUp) || r.Status().Term != term {
			// Unknown whether the leader appended them: the term rule
			// (failLostProposals) or the caller's deadline settles it.
			return
		}
		select {
		case <-time.After(backoff):
		case <-r.stopC:
			return
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func allGone(props []*proposal) bool {
	for _, p := range props {
		if !p.gone.Load() {
			return false
		}
	}
	return true
}

// settleForwarded fails, for retry, the forwarded proposals the leader did
// not append. After a failed attempt a refusal proves nothing (the leader
// refuses every request once its term has moved on, including one whose
// earlier attempt it appended), so those are left to the term rule.
func (r *Replica) settleForwarded(props []*proposal, acc []bool, retried bool) {
	if retried {
		return
	}
	for i, p := range props {
		if i < len(acc) && acc[i] {
			continue
		}
		if r.pending[p.cmd.ID] == p {
			delete(r.pending, p.cmd.ID)
			p.done <- result{err: errNotProposed}
		}
	}
}

// proposeForwarded appends proposals forwarded by a follower, if this node
// is still the leader of the term the follower saw and the follower is still
// a member (a node removed by decommissioning must not write). A command
// appended this term already (the follower is retrying) counts as appended
// and is not appended again.
func (r *Replica) proposeForwarded(f *fwdReq) []bool {
	acc := make([]bool, len(f.datas))
	if f.ctx.Err() != nil {
		return acc // the caller has given up; it may retry already
	}
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.Term != f.term {
		return acc
	}
	if cs := r.applied.ConfState; !slices.Contains(cs.Voters, f.from) && !slices.Contains(cs.Learners, f.from) {
		r.log.Warn("refusing proposals forwarded by a node that is not a member", "from", f.from)
		return acc
	}
	r.forwarded.setTerm(st.Term)
	for i, d := range f.datas {
		id, ok := commandID(d)
		if ok && r.forwarded.seen(id) {
			acc[i] = true
			continue
		}
		if !ok && f.retry {
			continue // no ID to recognize it by: it may be appended already
		}
		if !r.mayAppend(d) {
			// Refused for good, like a proposal a leader of another term
			// refuses: the follower retries it until its caller's deadline
			// and then reports the write as not done (see downgrade.go).
			continue
		}
		if r.rn.Propose(d) == nil {
			acc[i] = true
			if ok {
				r.forwarded.add(id)
			}
		}
	}
	return acc
}

// commandID reads a command's ID without decoding the rest.
func commandID(data []byte) (uint64, bool) {
	if len(data) < 9 || data[0] != commandVersion {
		return 0, false
	}
	return binary.BigEndian.Uint64(data[1:9]), true
}

// forwardedIDs is the leader's memory of the forwarded commands it appended
// in term: two generations, the older dropped every forwardIDRetention, so
// an ID stays for between one and two retention periods. Owned by the Ready
// loop.
type forwardedIDs struct {
	term      uint64
	cur, prev map[uint64]struct{}
	rotated   time.Time
}

func (f *forwardedIDs) setTerm(term uint64) {
	if f.term != term {
		*f = forwardedIDs{term: term, rotated: time.Now()}
	}
}

func (f *forwardedIDs) seen(id uint64) bool {
	_, inCur := f.cur[id]
	_, inPrev := f.prev[id]
	return inCur || inPrev
}

func (f *forwardedIDs) add(id uint64) {
	if f.cur == nil {
		f.cur = map[uint64]struct{}{}
	}
	f.cur[id] = struct{}{}
}

func (f *forwardedIDs) rotate(now time.Time) {
	if now.Sub(f.rotated) >= forwardIDRetention {
		f.prev, f.cur, f.rotated = f.cur, nil, now
	}
}
