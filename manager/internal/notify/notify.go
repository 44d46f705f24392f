// Package notify wakes the manager's long polls when an organization's
// state changes, whichever replica made the change. The database tells
// every replica (triggers NOTIFY knaight_snapshot with the organization id
// when a change commits, see migration 004); one Hub per process holds a
// dedicated connection that LISTENs, and wakes the requests waiting on that
// organization: gateways polling their snapshot, OPA sidecars polling their
// bundle.
package notify

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// Channel is the NOTIFY channel the database announces changes on; the
// payload is the organization's id.
const Channel = "knaight_snapshot"

// Backoff bounds of reconnection: the first retry waits MinBackoff, each
// failure doubles the wait up to MaxBackoff.
const (
	MinBackoff = 250 * time.Millisecond
	MaxBackoff = 30 * time.Second
)

// Hub fans database notifications out to waiting requests. The zero value
// is not usable; use New. It is safe for concurrent use.
type Hub struct {
	log       *slog.Logger
	mu        sync.Mutex
	waiters   map[uuid.UUID]chan struct{}
	listening atomic.Bool
	stopOnce  sync.Once
	stopped   chan struct{}
}

// New returns a Hub that wakes nobody until Run listens.
func New(log *slog.Logger) *Hub {
	return &Hub{log: log, waiters: map[uuid.UUID]chan struct{}{}, stopped: make(chan struct{})}
}

// Changed returns a channel that is closed at the next change of org (or
// at the next reconnection of the listener, when changes may have been
// missed). Call it before reading the state it guards, then wait on it:
// a change that commits after the read then always wakes the waiter.
func (h *Hub) Changed(org uuid.UUID) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.waiters[org]
	if !ok {
		ch = make(chan struct{})
		h.waiters[org] = ch
	}
	return ch
}

// Notify wakes the waiters of org.
func (h *Hub) Notify(org uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.waiters[org]; ok {
		close(ch)
		delete(h.waiters, org)
	}
}

// NotifyAll wakes every waiter.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for org, ch := range h.waiters {
		close(ch)
		delete(h.waiters, org)
	}
}

// Stop releases every long poll for good, for a server that shuts down:
// Stopped is closed and waiters answer with what they have.
func (h *Hub) Stop() { h.stopOnce.Do(func() { close(h.stopped) }) }

// Stopped is closed once Stop was called.
func (h *Hub) Stopped() <-chan struct{} { return h.stopped }

// Listening reports whether the hub holds a listening connection now.
func (h *Hub) Listening() bool { return h.listening.Load() }

// Run listens until ctx ends, on connections made by connect, reconnecting
// with capped exponential backoff whenever the connection is lost. After
// every (re)connection it wakes every waiter, since notifications sent
// while it was not listening are lost.
func (h *Hub) Run(ctx context.Context, connect func(context.Context) (*pgx.Conn, error)) {
	var failures atomic.Int32
	l := &pgxlisten.Listener{
		// The listener's own fixed delay is off: connect waits instead, so
		// that the wait can grow with consecutive failures.
		ReconnectDelay: -1,
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			h.listening.Store(false)
			if n := failures.Load(); n > 0 {
				wait := min(MinBackoff<<min(n-1, 16), MaxBackoff)
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(wait):
				}
			}
			failures.Add(1)
			return connect(ctx)
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				h.log.WarnContext(ctx, "change notifications interrupted", "err", err, "retry", failures.Load())
			}
		},
	}
	l.Handle(Channel, handler{h, &failures})
	_ = l.Listen(ctx) // returns only when ctx ends
	h.listening.Store(false)
}

type handler struct {
	h        *Hub
	failures *atomic.Int32
}

// HandleBacklog runs once LISTEN succeeded on a new connection.
func (x handler) HandleBacklog(ctx context.Context, _ string, _ *pgx.Conn) error {
	if x.failures.Swap(0) > 1 {
		x.h.log.InfoContext(ctx, "change notifications resumed")
	}
	x.h.listening.Store(true)
	x.h.NotifyAll()
	return nil
}

func (x handler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	org, err := uuid.Parse(n.Payload)
	if err != nil {
		x.h.NotifyAll()
		return nil
	}
	x.h.Notify(org)
	return nil
}
