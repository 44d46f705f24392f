package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/policies"
	"github.com/knaight/knaight/manager/internal/trust"
	"github.com/knaight/knaight/shared/policy"
)

type recordSignalInput struct {
	ID   uuid.UUID `path:"id"`
	Body trust.SignalInput
}

type recordSignalOutput struct {
	Body struct {
		Signal trust.StoredSignal `json:"signal"`
		Trust  trustBrief         `json:"trust"`
	}
}

type trustBrief struct {
	Score float64           `json:"score"`
	Level policy.TrustLevel `json:"level"`
}

type signalsOutput struct {
	Body struct {
		Items []trust.StoredSignal `json:"items"`
	}
}

// trustSummary is the original design's trust response:
// { agentId, ans: { id, status }, trust: { score, level, sources[] }, policy: { requiredLevel, requiredScore } },
// with additive detail.
type trustSummary struct {
	AgentID      uuid.UUID              `json:"agentId"`
	ANS          ansBrief               `json:"ans"`
	Trust        trustDetail            `json:"trust"`
	Policy       requiredTrust          `json:"policy"`
	Environment  policy.Environment     `json:"environment"`
	RoleTemplate uuid.UUID              `json:"roleTemplateId"`
	Thresholds   trust.Thresholds       `json:"thresholds" doc:"The level lattice this agent is measured against."`
	Dimensions   []trust.DimensionScore `json:"dimensions"`
	Levels       []trust.LevelCheck     `json:"levels"`
}

type ansBrief struct {
	ID     string `json:"id" doc:"The agent's ANS name."`
	Status string `json:"status"`
}

type trustDetail struct {
	Score        float64           `json:"score" doc:"0 to 100."`
	Level        policy.TrustLevel `json:"level"`
	Sources      []trustSource     `json:"sources" doc:"Every signal on record and what it contributes now."`
	ModelVersion string            `json:"modelVersion"`
	AssessedAt   time.Time         `json:"assessedAt"`
	NextChange   *time.Time        `json:"nextChange,omitempty" doc:"When a signal expires or becomes live, changing the result."`
}

type trustSource struct {
	trust.Contribution
	Value      float64    `json:"value"`
	ObservedAt time.Time  `json:"observedAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RecordedBy string     `json:"recordedBy"`
}

type requiredTrust struct {
	RequiredLevel *policy.TrustLevel `json:"requiredLevel" doc:"The minimum level of the agent's role template in its environment; null when no policy exists (everything is denied)."`
	RequiredScore *float64           `json:"requiredScore" doc:"The minimum score of that level."`
	PolicyID      *uuid.UUID         `json:"policyId,omitempty"`
	Satisfied     bool               `json:"satisfied" doc:"Whether the agent's level meets the policy's."`
}

type trustSummaryOutput struct {
	Body trustSummary
}

type kindsOutput struct {
	Body struct {
		ModelVersion string           `json:"modelVersion"`
		Items        []trust.KindSpec `json:"items"`
	}
}

// thresholdsBody is trust.Thresholds as the API schema shows it; it is
// decoded strictly by trust.ParseThresholds.
type thresholdsBody struct {
	Levels map[string]trust.LevelRequirement `json:"levels" doc:"Requirements of L2..L5: minScore (0-100) and per-dimension minima (0-1). Each level's requirements must be at least the level below's."`
}

type thresholdsOutput struct {
	Body struct {
		Thresholds trust.Thresholds `json:"thresholds"`
		Scope      string           `json:"scope" enum:"role_template,organization,default" doc:"Where the thresholds in effect come from."`
	}
}

type putThresholdsInput struct {
	Body thresholdsBody
}

type putRoleThresholdsInput struct {
	ID   uuid.UUID `path:"id"`
	Body thresholdsBody
}

type sourceInput struct {
	Body trust.SourceInput
}

type newSourceOutput struct {
	Body trust.NewSource
}

type sourcesOutput struct {
	Body struct {
		Items []trust.Source `json:"items"`
	}
}

type webhookInput struct {
	ID        uuid.UUID `path:"id"`
	Timestamp string    `header:"X-Knaight-Timestamp" required:"true" doc:"RFC 3339 time of sending; must be within the manager's webhook window."`
	Signature string    `header:"X-Knaight-Signature" required:"true" doc:"hmac-sha256=<hex of HMAC-SHA256(secret, timestamp + \".\" + body)>"`
	RawBody   []byte    `contentType:"application/json"`
}

type webhookOutput struct {
	Body struct {
		SignalID string `json:"signalId"`
	}
}

func (s *Server) webhook() trust.Webhook {
	return trust.Webhook{Sealer: s.Sealer, Window: s.WebhookWindow}
}

func (s *Server) registerTrust() {
	tags := []string{"Trust"}
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "record-signal", Method: http.MethodPost, Path: "/api/v1/agents/{id}/signals",
		Summary:     "Record a trust signal observed by an external source or attested by an admin",
		Description: "The signal is stored with the caller as its recorder, and the agent's trust is recomputed in the same transaction.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *recordSignalInput) (*recordSignalOutput, error) {
		p := principal(ctx)
		var out recordSignalOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			sig, a, err := trust.RecordSignal(ctx, tx, p.OrganizationID, in.ID, in.Body, nil, p.Actor(), s.Now())
			out.Body.Signal, out.Body.Trust = sig, trustBrief{Score: a.Score, Level: a.Level}
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-signals", Method: http.MethodGet, Path: "/api/v1/agents/{id}/signals",
		Summary: "List an agent's trust signals", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*signalsOutput, error) {
		org := principal(ctx).OrganizationID
		if _, err := agents.Get(ctx, s.Pool, org, in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		var out signalsOutput
		var err error
		out.Body.Items, err = trust.Signals(ctx, s.Pool, org, in.ID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-agent-trust", Method: http.MethodGet, Path: "/api/v1/agents/{id}/trust",
		Summary:     "An agent's trust now, and what its policy requires",
		Description: "Computed now from the live signals (docs/trust.md), so expiry and decay show at once.",
		Tags:        tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*trustSummaryOutput, error) {
		sum, err := s.trustSummary(ctx, principal(ctx).OrganizationID, in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &trustSummaryOutput{Body: sum}, nil
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-signal-kinds", Method: http.MethodGet, Path: "/api/v1/trust/kinds",
		Summary: "The signal kind catalogue of the trust model", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*kindsOutput, error) {
		out := &kindsOutput{}
		out.Body.ModelVersion, out.Body.Items = trust.ModelVersion, trust.Kinds()
		return out, nil
	})

	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-trust-thresholds", Method: http.MethodGet, Path: "/api/v1/trust/thresholds",
		Summary: "The organization's trust level thresholds", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*thresholdsOutput, error) {
		return s.thresholds(ctx, nil)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "set-trust-thresholds", Method: http.MethodPut, Path: "/api/v1/trust/thresholds",
		Summary:     "Set the organization's trust level thresholds",
		Description: "Every agent's level is recomputed in the same transaction.",
		Tags:        tags,
	}, func(ctx context.Context, in *putThresholdsInput) (*thresholdsOutput, error) {
		return s.setThresholds(ctx, nil, in.Body)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-role-trust-thresholds", Method: http.MethodGet, Path: "/api/v1/role-templates/{id}/trust-thresholds",
		Summary: "The trust thresholds in effect for a role template", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*thresholdsOutput, error) {
		return s.thresholds(ctx, &in.ID)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "set-role-trust-thresholds", Method: http.MethodPut, Path: "/api/v1/role-templates/{id}/trust-thresholds",
		Summary: "Give a role template thresholds of its own", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *putRoleThresholdsInput) (*thresholdsOutput, error) {
		return s.setThresholds(ctx, &in.ID, in.Body)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "clear-role-trust-thresholds", Method: http.MethodDelete, Path: "/api/v1/role-templates/{id}/trust-thresholds",
		Summary: "Make a role template use the organization's thresholds again", Tags: tags,
		DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*struct{}, error) {
		p := principal(ctx)
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			return trust.ClearThresholds(ctx, tx, p.OrganizationID, in.ID, p.Actor(), s.Now())
		})
		return nil, s.failIf(ctx, err)
	})

	tags = []string{"Trust sources"}
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "create-trust-source", Method: http.MethodPost, Path: "/api/v1/trust/sources",
		Summary:     "Register an external source that pushes signals through a signed webhook",
		Description: "The response carries the webhook secret; it is shown only once.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict},
	}, func(ctx context.Context, in *sourceInput) (*newSourceOutput, error) {
		p := principal(ctx)
		var out newSourceOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = trust.CreateSource(ctx, tx, s.Sealer, p.OrganizationID, in.Body, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-trust-sources", Method: http.MethodGet, Path: "/api/v1/trust/sources",
		Summary: "List trust sources", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*sourcesOutput, error) {
		var out sourcesOutput
		var err error
		out.Body.Items, err = trust.ListSources(ctx, s.Pool, principal(ctx).OrganizationID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "revoke-trust-source", Method: http.MethodDelete, Path: "/api/v1/trust/sources/{id}",
		Summary: "Revoke a trust source's webhook", Tags: tags, DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*struct{}, error) {
		p := principal(ctx)
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			return trust.RevokeSource(ctx, tx, p.OrganizationID, in.ID, p.Actor(), s.Now())
		})
		return nil, s.failIf(ctx, err)
	})
	register(s, nil, huma.Operation{
		OperationID: "deliver-trust-signal", Method: http.MethodPost, Path: "/api/v1/trust/sources/{id}/webhook",
		Summary:     "Signed webhook through which a source delivers one signal",
		Description: "Authenticated by the source's HMAC signature over timestamp + \".\" + body, not by an API key. Stale timestamps and bad signatures answer 401; a delivery seen before answers 409.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusUnauthorized, http.StatusConflict},
		// The signature covers the exact bytes; the body is decoded strictly
		// only after it verifies.
		SkipValidateBody: true,
	}, func(ctx context.Context, in *webhookInput) (*webhookOutput, error) {
		var out webhookOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			sig, err := s.webhook().Deliver(ctx, tx, in.ID, in.Timestamp, in.Signature, in.RawBody, s.Now())
			out.Body.SignalID = sig.ID
			return err
		})
		switch {
		case errors.Is(err, trust.ErrWebhookAuth):
			s.Log.WarnContext(ctx, "webhook delivery rejected", "source", in.ID)
			return nil, huma.Error401Unauthorized(err.Error())
		case errors.Is(err, trust.ErrWebhookReplay):
			s.Log.WarnContext(ctx, "webhook replay rejected", "source", in.ID)
			return nil, huma.Error409Conflict(err.Error())
		}
		return &out, s.failIf(ctx, err)
	})
}

func (s *Server) trustSummary(ctx context.Context, org, agent uuid.UUID) (trustSummary, error) {
	a, err := trust.AssessAgent(ctx, s.Pool, org, agent, s.Now())
	if err != nil {
		return trustSummary{}, err
	}
	sum := trustSummary{
		AgentID: agent, ANS: ansBrief{ID: a.ANSName, Status: a.ANSStatus},
		Trust: trustDetail{Score: a.Score, Level: a.Level, ModelVersion: a.ModelVersion, AssessedAt: a.AssessedAt, NextChange: a.NextChange,
			Sources: make([]trustSource, len(a.Signals))},
		Environment: a.Environment, RoleTemplate: a.RoleTemplateID, Thresholds: a.Thresholds,
		Dimensions: a.Assessment.Dimensions, Levels: a.Assessment.Levels,
	}
	for i, sig := range a.Signals {
		sum.Trust.Sources[i] = trustSource{Contribution: a.Contributions[i], Value: sig.Value, ObservedAt: sig.ObservedAt, ExpiresAt: sig.ExpiresAt, RecordedBy: sig.RecordedBy}
	}
	pol, err := policies.For(ctx, s.Pool, org, a.RoleTemplateID, a.Environment)
	switch {
	case errors.Is(err, fault.ErrNotFound):
	case err != nil:
		return sum, err
	default:
		level, score := pol.MinTrustLevel, a.Thresholds.MinScore(pol.MinTrustLevel)
		sum.Policy = requiredTrust{RequiredLevel: &level, RequiredScore: &score, PolicyID: &pol.ID, Satisfied: a.Level >= level}
	}
	return sum, nil
}

func (s *Server) thresholds(ctx context.Context, roleTemplate *uuid.UUID) (*thresholdsOutput, error) {
	org := principal(ctx).OrganizationID
	out := &thresholdsOutput{}
	if roleTemplate != nil {
		th, found, err := trust.StoredThresholds(ctx, s.Pool, org, roleTemplate)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if found {
			out.Body.Thresholds, out.Body.Scope = th, "role_template"
			return out, nil
		}
		if _, err := s.roleTemplate(ctx, org, *roleTemplate); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	th, found, err := trust.StoredThresholds(ctx, s.Pool, org, nil)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out.Body.Thresholds, out.Body.Scope = th, "organization"
	if !found {
		out.Body.Thresholds, out.Body.Scope = trust.DefaultThresholds(), "default"
	}
	return out, nil
}

func (s *Server) setThresholds(ctx context.Context, roleTemplate *uuid.UUID, body thresholdsBody) (*thresholdsOutput, error) {
	p := principal(ctx)
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	th, err := trust.ParseThresholds(raw)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	err = db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		return trust.SetThresholds(ctx, tx, p.OrganizationID, roleTemplate, th, p.Actor(), s.Now())
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return s.thresholds(ctx, roleTemplate)
}
