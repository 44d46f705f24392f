package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/ledger"
)

type listAuditInput struct {
	Type      string    `query:"type" maxLength:"64" doc:"Only events of this type, e.g. AGENT_REGISTERED."`
	Actor     string    `query:"actor" maxLength:"200" doc:"Only events by this actor, e.g. apikey:abcd..."`
	SubjectID string    `query:"subjectId" maxLength:"200" doc:"Only events about this subject."`
	Since     time.Time `query:"since" doc:"Only events at or after this time (RFC 3339)."`
	Until     time.Time `query:"until" doc:"Only events before this time (RFC 3339)."`
	Cursor    int64     `query:"cursor" minimum:"0" doc:"The nextCursor of the previous page."`
	Limit     int       `query:"limit" minimum:"1" maximum:"500" default:"50"`
}

type listAuditOutput struct {
	Body struct {
		Items      []ledger.Event `json:"items"`
		NextCursor int64          `json:"nextCursor,omitempty" doc:"Pass as cursor for the next (older) page; absent on the last page."`
	}
}

type verifyAuditOutput struct {
	Body ledger.Report
}

func (s *Server) registerAudit() {
	register(s, perm(auth.ReadLedger), huma.Operation{
		OperationID: "list-audit-events",
		Method:      http.MethodGet,
		Path:        "/api/v1/audit",
		Summary:     "List ledger events, newest first",
		Tags:        []string{"Audit"},
	}, func(ctx context.Context, in *listAuditInput) (*listAuditOutput, error) {
		events, err := ledger.List(ctx, s.Pool, principal(ctx).OrganizationID, ledger.Filter{
			Type: in.Type, Actor: in.Actor, SubjectID: in.SubjectID, Since: in.Since, Until: in.Until,
			Before: in.Cursor, Limit: in.Limit + 1,
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &listAuditOutput{}
		if len(events) > in.Limit {
			events = events[:in.Limit]
			out.Body.NextCursor = events[len(events)-1].Seq
		}
		out.Body.Items = events
		return out, nil
	})
	register(s, perm(auth.ReadLedger), huma.Operation{
		OperationID: "verify-audit-chain",
		Method:      http.MethodGet,
		Path:        "/api/v1/audit/verify",
		Summary:     "Recompute the organization's hash chain",
		Description: "Recomputes every event's hash from its content and its predecessor's hash. ok is false when an event was edited, deleted or inserted; firstBroken names where.",
		Tags:        []string{"Audit"},
	}, func(ctx context.Context, _ *struct{}) (*verifyAuditOutput, error) {
		r, err := ledger.Verify(ctx, s.Pool, principal(ctx).OrganizationID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &verifyAuditOutput{Body: r}, nil
	})
}
