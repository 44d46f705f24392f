package tokens

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/ledger"
)

// Group issues the tokens that concurrent requests ask for together, in
// shared transactions (group commit). A token costs a transaction of round
// trips to PostgreSQL and a turn on its organization's ledger head, and
// concurrent issues of one organization queue on that head one
// transaction at a time; issued together, the requests waiting meanwhile
// share one transaction, one round trip for all their reads, one insert
// of their records and one append of their events to each ledger.
//
// Each request still stands alone where it can: a request refused (bad
// fields, an unknown or inactive agent) is refused on its own and changes
// nothing, and the others go on. An error of the transaction itself fails
// every request of the group; none of their tokens exists then.
//
// The zero Group is not usable; set Service and Pool.
type Group struct {
	Service Service
	Pool    *pgxpool.Pool

	mu      sync.Mutex
	queue   []*groupCall
	running bool
}

// MaxGroup bounds the requests issued in one transaction.
const MaxGroup = 256

type groupCall struct {
	org   uuid.UUID
	req   IssueRequest
	actor string
	now   time.Time

	done   chan struct{}
	issued Issued
	err    error
}

// Issue issues one token as Service.Issue does, with whatever other
// requests are waiting. It returns when the token's transaction has
// committed, or failed, or ctx ends; a token whose request ended first may
// still be issued, and is recorded like any other.
func (g *Group) Issue(ctx context.Context, org uuid.UUID, req IssueRequest, actor string, now time.Time) (Issued, error) {
	c := &groupCall{org: org, req: req, actor: actor, now: now, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.issued, c.err
	case <-ctx.Done():
		return Issued{}, ctx.Err()
	}
}

// run issues the waiting requests, a group at a time, until none wait.
// While one group's transaction runs, the requests arriving meanwhile
// gather into the next.
func (g *Group) run() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), MaxGroup)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		calls := slices.Clone(g.queue[:n])
		g.queue = slices.Delete(g.queue, 0, n)
		g.mu.Unlock()

		g.issueAll(calls)
		for _, c := range calls {
			close(c.done)
		}
	}
}

// issueAll issues calls in one transaction and sets each call's result.
func (g *Group) issueAll(calls []*groupCall) {
	// Requests of one organization together, organizations in one order:
	// every group locks the ledger heads it appends to in that order.
	slices.SortStableFunc(calls, func(a, b *groupCall) int { return bytes.Compare(a.org[:], b.org[:]) })
	// No request's context: one client going away must not fail the
	// others' tokens.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("issue tokens: panic: %v", p)
			}
		}()
		return pgx.BeginFunc(ctx, g.Pool, func(tx pgx.Tx) error { return g.issueIn(ctx, tx, calls) })
	}()
	if err != nil {
		// No token of the group exists; a request refused on its own keeps
		// its reason.
		for _, c := range calls {
			if c.err == nil {
				c.issued, c.err = Issued{}, err
			}
		}
	}
}

// issueIn issues calls in tx: their reads in one batch, each request
// checked and signed, then all records in one statement and each
// organization's events in one append. A refused call keeps its error.
func (g *Group) issueIn(ctx context.Context, tx pgx.Tx, calls []*groupCall) error {
	s := g.Service
	reads := make([]issueReads, len(calls))
	b := &pgx.Batch{}
	for i, c := range calls {
		s.queueReads(b, c.org, c.req.AgentID, &reads[i])
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("issue tokens: %w", err)
	}
	var issued []*groupCall
	var tokens []*Issued
	for i, c := range calls {
		c.err = reads[i].err
		if c.err != nil {
			continue
		}
		var checkedReq checked
		if checkedReq, c.err = check(c.req, &reads[i]); c.err != nil {
			continue
		}
		// The organization's first key: made once, kept in the reads of
		// its later requests in this group.
		k, err := s.signingKey(ctx, tx, c.org, &reads[i], c.actor, c.now)
		if err != nil {
			return err
		}
		for j := i + 1; j < len(calls) && calls[j].org == c.org; j++ {
			if reads[j].keys[k.alg] == nil {
				reads[j].keys[k.alg] = k
			}
		}
		if c.issued, c.err = s.sign(c.org, c.req, checkedReq, k, c.now); c.err != nil {
			continue
		}
		issued, tokens = append(issued, c), append(tokens, &c.issued)
	}
	if len(issued) == 0 {
		return nil
	}
	if err := record(ctx, tx, tokens); err != nil {
		return err
	}
	for start := 0; start < len(issued); {
		org, now := issued[start].org, issued[start].now
		end := start
		var entries []ledger.Entry
		for ; end < len(issued) && issued[end].org == org; end++ {
			entries = append(entries, issuedEntry(&issued[end].issued, issued[end].actor))
			now = later(now, issued[end].now)
		}
		if _, err := ledger.AppendBatch(ctx, tx, org, entries, now); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
