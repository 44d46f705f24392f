// Package ledger is the manager's audit ledger: every state change and every
// gateway decision becomes an event, appended in the same transaction as the
// change it records, to a per-organization chain in which each event's hash
// covers its content and its predecessor's hash. Editing or deleting a row
// breaks the chain, and Verify names the first event where it breaks.
package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/db"
)

// hashDomain separates ledger hashes from every other SHA-256 the product
// computes, and versions the canonical encoding.
const hashDomain = "knaight-ledger-v1\n"

// genesis is the prev_hash of an organization's first event.
var genesis = make([]byte, sha256.Size)

// ErrNoChain means the organization has no ledger head: it was not created
// through Init. It is a programming error, not a user error.
var ErrNoChain = errors.New("organization has no ledger chain")

// Entry is what a caller records: the event without its chain position.
type Entry struct {
	OrganizationID uuid.UUID
	Type           string
	Actor          string
	SubjectType    string
	SubjectID      string
	// Details is any JSON-encodable value. It must not hold secrets.
	Details any
}

// Event is a stored ledger event.
type Event struct {
	ID             uuid.UUID       `json:"id"`
	OrganizationID uuid.UUID       `json:"organizationId"`
	Seq            int64           `json:"seq"`
	Type           string          `json:"type"`
	Actor          string          `json:"actor"`
	SubjectType    string          `json:"subjectType"`
	SubjectID      string          `json:"subjectId"`
	Details        json.RawMessage `json:"details"`
	CreatedAt      time.Time       `json:"createdAt"`
	PrevHash       []byte          `json:"prevHash"`
	Hash           []byte          `json:"hash"`
}

// canonical is the hashed form of an event. Field order is fixed by the
// struct and json.Marshal is deterministic for it. Details are hashed as the
// stored text, so even a whitespace edit breaks the chain.
type canonical struct {
	ID             string `json:"id"`
	OrganizationID string `json:"org"`
	Seq            int64  `json:"seq"`
	Type           string `json:"type"`
	Actor          string `json:"actor"`
	SubjectType    string `json:"subjectType"`
	SubjectID      string `json:"subjectId"`
	Details        string `json:"details"`
	CreatedAt      string `json:"createdAt"`
}

// computeHash returns SHA-256(domain || prevHash || canonical JSON).
func computeHash(e *Event) ([]byte, error) {
	body, err := json.Marshal(canonical{
		ID:             e.ID.String(),
		OrganizationID: e.OrganizationID.String(),
		Seq:            e.Seq,
		Type:           e.Type,
		Actor:          e.Actor,
		SubjectType:    e.SubjectType,
		SubjectID:      e.SubjectID,
		Details:        string(e.Details),
		CreatedAt:      e.CreatedAt.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, fmt.Errorf("encode event %d: %w", e.Seq, err)
	}
	h := sha256.New()
	h.Write([]byte(hashDomain))
	h.Write(e.PrevHash)
	h.Write(body)
	return h.Sum(nil), nil
}

// Init starts an organization's chain. Call it in the transaction that
// creates the organization.
func Init(ctx context.Context, tx pgx.Tx, orgID uuid.UUID) error {
	_, err := tx.Exec(ctx, `INSERT INTO ledger_heads (organization_id, seq, hash) VALUES ($1, 0, $2)`, orgID, genesis)
	if err != nil {
		return fmt.Errorf("init ledger: %w", err)
	}
	return nil
}

// Append records e in tx. It locks the organization's chain head until tx
// ends, so concurrent writers queue behind each other and never fork the
// chain; the event commits or rolls back with the change it records.
func Append(ctx context.Context, tx pgx.Tx, e Entry, now time.Time) (Event, error) {
	details, err := json.Marshal(e.Details)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s details: %w", e.Type, err)
	}
	if e.Details == nil {
		details = []byte("{}")
	}
	ev := Event{
		ID:             uuid.New(),
		OrganizationID: e.OrganizationID,
		Type:           e.Type,
		Actor:          e.Actor,
		SubjectType:    e.SubjectType,
		SubjectID:      e.SubjectID,
		Details:        details,
		// PostgreSQL keeps microseconds; hash what will be read back.
		CreatedAt: now.UTC().Truncate(time.Microsecond),
	}
	err = tx.QueryRow(ctx, `SELECT seq, hash FROM ledger_heads WHERE organization_id = $1 FOR UPDATE`, e.OrganizationID).
		Scan(&ev.Seq, &ev.PrevHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, fmt.Errorf("append %s: %w", e.Type, ErrNoChain)
	}
	if err != nil {
		return Event{}, fmt.Errorf("append %s: lock chain: %w", e.Type, err)
	}
	ev.Seq++
	if ev.Hash, err = computeHash(&ev); err != nil {
		return Event{}, err
	}
	// One statement stores the event and moves the head: the head stays
	// locked, and every other writer of the organization waits, for one
	// round trip to PostgreSQL fewer.
	_, err = tx.Exec(ctx, `
		WITH event AS (
			INSERT INTO ledger_events (id, organization_id, seq, event_type, actor, subject_type, subject_id, details, created_at, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11))
		UPDATE ledger_heads SET seq = $3, hash = $11 WHERE organization_id = $2`,
		ev.ID, ev.OrganizationID, ev.Seq, ev.Type, ev.Actor, ev.SubjectType, ev.SubjectID, string(ev.Details), ev.CreatedAt, ev.PrevHash, ev.Hash)
	if err != nil {
		return Event{}, fmt.Errorf("append %s: %w", e.Type, err)
	}
	return ev, nil
}

// LockChain locks the organization's chain head until tx ends, as Append
// does, for a writer that must serialise with the chain's other writers
// before it appends (gateway registration and key creation take it first,
// so that each organization's keys are created once).
func LockChain(ctx context.Context, tx pgx.Tx, orgID uuid.UUID) (seq int64, hash []byte, err error) {
	err = tx.QueryRow(ctx, `SELECT seq, hash FROM ledger_heads WHERE organization_id = $1 FOR UPDATE`, orgID).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, ErrNoChain
	}
	if err != nil {
		return 0, nil, fmt.Errorf("lock chain: %w", err)
	}
	return seq, hash, nil
}

// AppendBatch records entries, all of one organization, in tx and in order,
// exactly as that many Append calls would, but with one lock of the chain
// head, the chain computed in memory, one COPY of the events and one move
// of the head. Details that are already JSON may be given as
// json.RawMessage; they are stored as given.
func AppendBatch(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, entries []Entry, now time.Time) ([]Event, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	seq, prev, err := LockChain(ctx, tx, orgID)
	if err != nil {
		return nil, fmt.Errorf("append batch: %w", err)
	}
	at := now.UTC().Truncate(time.Microsecond)
	events := make([]Event, len(entries))
	rows := make([][]any, len(entries))
	for i, e := range entries {
		if e.OrganizationID != orgID {
			return nil, fmt.Errorf("append batch: entry %d is of organization %s, the batch of %s", i, e.OrganizationID, orgID)
		}
		var details []byte
		switch d := e.Details.(type) {
		case nil:
			details = []byte("{}")
		case json.RawMessage:
			details = d
		default:
			if details, err = json.Marshal(d); err != nil {
				return nil, fmt.Errorf("encode %s details: %w", e.Type, err)
			}
		}
		seq++
		ev := &events[i]
		*ev = Event{ID: uuid.New(), OrganizationID: orgID, Seq: seq, Type: e.Type, Actor: e.Actor, SubjectType: e.SubjectType,
			SubjectID: e.SubjectID, Details: details, CreatedAt: at, PrevHash: prev}
		if ev.Hash, err = computeHash(ev); err != nil {
			return nil, err
		}
		prev = ev.Hash
		rows[i] = []any{ev.ID, ev.OrganizationID, ev.Seq, ev.Type, ev.Actor, ev.SubjectType, ev.SubjectID, string(ev.Details), ev.CreatedAt, ev.PrevHash, ev.Hash}
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"ledger_events"},
		[]string{"id", "organization_id", "seq", "event_type", "actor", "subject_type", "subject_id", "details", "created_at", "prev_hash", "hash"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return nil, fmt.Errorf("append batch: copy: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE ledger_heads SET seq = $2, hash = $3 WHERE organization_id = $1`, orgID, seq, prev); err != nil {
		return nil, fmt.Errorf("append batch: move head: %w", err)
	}
	return events, nil
}

// Filter selects events for List. Zero fields do not filter.
type Filter struct {
	Type      string
	Actor     string
	SubjectID string
	Since     time.Time
	Until     time.Time
	// Before returns only events with seq < Before (the pagination cursor).
	Before int64
	Limit  int
}

const selectEvents = `SELECT id, organization_id, seq, event_type, actor, subject_type, subject_id, details, created_at, prev_hash, hash FROM ledger_events`

func scanEvent(rows pgx.CollectableRow) (Event, error) {
	var e Event
	var details string
	err := rows.Scan(&e.ID, &e.OrganizationID, &e.Seq, &e.Type, &e.Actor, &e.SubjectType, &e.SubjectID, &details, &e.CreatedAt, &e.PrevHash, &e.Hash)
	e.Details = json.RawMessage(details)
	e.CreatedAt = e.CreatedAt.UTC()
	return e, err
}

// List returns the organization's events matching f, newest first.
func List(ctx context.Context, q db.Querier, orgID uuid.UUID, f Filter) ([]Event, error) {
	sql := selectEvents + ` WHERE organization_id = $1
		AND ($2 = '' OR event_type = $2)
		AND ($3 = '' OR actor = $3)
		AND ($4 = '' OR subject_id = $4)
		AND ($5::timestamptz IS NULL OR created_at >= $5)
		AND ($6::timestamptz IS NULL OR created_at < $6)
		AND ($7 = 0 OR seq < $7)
		ORDER BY seq DESC LIMIT $8`
	rows, err := q.Query(ctx, sql, orgID, f.Type, f.Actor, f.SubjectID, nullTime(f.Since), nullTime(f.Until), f.Before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Break describes where a chain stops verifying.
type Break struct {
	Seq     int64     `json:"seq"`
	EventID uuid.UUID `json:"eventId,omitzero"`
	Reason  string    `json:"reason"`
}

// Report is the outcome of Verify.
type Report struct {
	OK          bool   `json:"ok"`
	Events      int64  `json:"events"`
	HeadSeq     int64  `json:"headSeq"`
	HeadHash    []byte `json:"headHash"`
	FirstBroken *Break `json:"firstBroken,omitempty"`
}

// Verify recomputes the organization's whole chain from its first event and
// compares it with the stored hashes and the chain head. It reports the first
// event that was edited, deleted or inserted out of order.
func Verify(ctx context.Context, q db.Querier, orgID uuid.UUID) (Report, error) {
	var r Report
	err := q.QueryRow(ctx, `SELECT seq, hash FROM ledger_heads WHERE organization_id = $1`, orgID).Scan(&r.HeadSeq, &r.HeadHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("verify: %w", ErrNoChain)
	}
	if err != nil {
		return r, fmt.Errorf("verify: read head: %w", err)
	}
	rows, err := q.Query(ctx, selectEvents+` WHERE organization_id = $1 ORDER BY seq`, orgID)
	if err != nil {
		return r, fmt.Errorf("verify: %w", err)
	}
	defer rows.Close()
	prev := genesis
	var want int64 = 1
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return r, fmt.Errorf("verify: %w", err)
		}
		r.Events++
		if r.FirstBroken != nil {
			continue
		}
		r.FirstBroken = check(&e, want, prev)
		prev, want = e.Hash, e.Seq+1
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("verify: %w", err)
	}
	if r.FirstBroken == nil {
		switch {
		case want-1 != r.HeadSeq:
			r.FirstBroken = &Break{Seq: want, Reason: fmt.Sprintf("chain ends at event %d but the head records %d events: events were deleted", want-1, r.HeadSeq)}
		case !bytes.Equal(prev, r.HeadHash):
			r.FirstBroken = &Break{Seq: r.HeadSeq, Reason: "last event's hash differs from the chain head"}
		}
	}
	r.OK = r.FirstBroken == nil
	return r, nil
}

func check(e *Event, want int64, prev []byte) *Break {
	switch {
	case e.Seq != want:
		return &Break{Seq: want, Reason: fmt.Sprintf("event %d is missing (next stored event is %d): it was deleted", want, e.Seq)}
	case !bytes.Equal(e.PrevHash, prev):
		return &Break{Seq: e.Seq, EventID: e.ID, Reason: "prev_hash does not match the previous event's hash"}
	}
	h, err := computeHash(e)
	if err != nil {
		return &Break{Seq: e.Seq, EventID: e.ID, Reason: err.Error()}
	}
	if !bytes.Equal(h, e.Hash) {
		return &Break{Seq: e.Seq, EventID: e.ID, Reason: "content does not match its hash: the event was edited"}
	}
	return nil
}
