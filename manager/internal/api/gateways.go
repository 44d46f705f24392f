package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/calls"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/gateways"
	"github.com/knaight/knaight/manager/internal/tokens"
	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/policy"
)

// Gateway API paths: what a gateway's poller calls, with its credential.
const (
	// SnapshotPath serves a gateway its sealed, signed snapshot.
	SnapshotPath = "/api/v1/gateway/snapshot"
	// DecisionsPath receives a gateway's decision records.
	DecisionsPath = "/api/v1/gateway/decisions"
)

// MaxDecisionsBodyBytes bounds a decision batch: MaxBatch records of at
// most MaxRecordJSON bytes each.
const MaxDecisionsBodyBytes = decision.MaxBatch * decision.MaxRecordJSON

// PluginConfig is the filter's plugin configuration as far as the manager
// knows it: paste it into the Envoy (or Istio WasmPlugin) configuration.
// managerCluster is the name the Envoy configurations in envoy/ give the
// manager's cluster, managerAuthority the host of the manager's issuer URL,
// and resource the organization's default token audience; change them if
// the deployment differs.
type PluginConfig struct {
	Organization      string            `json:"organization" doc:"The organization's slug."`
	Environment       string            `json:"environment"`
	ManagerCluster    string            `json:"managerCluster" doc:"The Envoy cluster that reaches the manager."`
	ManagerAuthority  string            `json:"managerAuthority" doc:"The :authority of the gateway's calls to the manager."`
	GatewayCredential string            `json:"gatewayCredential" doc:"The gateway's credential, shown once."`
	SnapshotKeys      map[string]string `json:"snapshotKeys" doc:"The snapshot signing public keys by kid, base64."`
	Resource          string            `json:"resource,omitempty" doc:"The protected MCP resource: the organization's default token audience. Absent when the token settings name no audience."`
}

// ManagerCluster is the Envoy cluster name of the manager in the
// configurations under envoy/.
const ManagerCluster = "knaight_manager"

type registeredGateway struct {
	gateways.Gateway
	Credential   string                   `json:"credential" doc:"kngw.<gateway id>.<secret>: the gateway's bearer credential, and the secret its snapshots are sealed with. Shown only in this response; only its hash is stored."`
	SnapshotKeys []gateways.SnapshotKey   `json:"snapshotKeys" doc:"The keys gateways verify snapshots with."`
	UpstreamKey  *gateways.NewUpstreamKey `json:"upstreamKey,omitempty" doc:"Set when this registration created the environment's upstream signing key, with its secret, shown once: configure the upstream MCP server with it."`
	PluginConfig PluginConfig             `json:"pluginConfig" doc:"A ready-to-paste plugin configuration for the gateway."`
}

type registerGatewayInput struct {
	Body gateways.NewGateway
}

type registerGatewayOutput struct {
	Body registeredGateway
}

type gatewayOutput struct {
	Body gateways.Gateway
}

type gatewaysOutput struct {
	Body struct {
		Items []gateways.Gateway `json:"items"`
	}
}

type rotatedCredentialOutput struct {
	Body struct {
		gateways.Gateway
		Credential   string       `json:"credential" doc:"The new credential, shown only in this response. The previous one no longer authenticates."`
		PluginConfig PluginConfig `json:"pluginConfig"`
	}
}

type snapshotKeysOutput struct {
	Body struct {
		Items []gateways.SnapshotKey `json:"items"`
	}
}

type upstreamKeyInput struct {
	Body struct {
		Environment policy.Environment `json:"environment" enum:"development,staging,production"`
	}
}

type newUpstreamKeyOutput struct {
	Body gateways.NewUpstreamKey
}

type upstreamKeysOutput struct {
	Body struct {
		Items []gateways.UpstreamKey `json:"items"`
	}
}

// decisionsInput takes the batch as it came: calls.Decode reads it, as
// strictly as the API's schema validation but in one pass. The OpenAPI
// document still describes it as a decision.Batch (registerGateways).
type decisionsInput struct {
	RawBody []byte `contentType:"application/json"`
}

type decisionsOutput struct {
	Body calls.IngestResult
}

type listCallsInput struct {
	Agent  string    `query:"agent" maxLength:"1024" doc:"Only records of this ANS name."`
	Allow  string    `query:"allow" enum:"true,false" doc:"Only allowed (true) or denied (false) decisions."`
	Reason string    `query:"reason" maxLength:"64" doc:"Only records with this reason code."`
	Since  time.Time `query:"since" doc:"Only records decided at or after this time (RFC 3339)."`
	Cursor time.Time `query:"cursor" doc:"The nextCursor of the previous page."`
	Limit  int       `query:"limit" minimum:"1" maximum:"500" default:"100"`
}

type listCallsOutput struct {
	Body struct {
		Items      []calls.Call `json:"items"`
		NextCursor *time.Time   `json:"nextCursor,omitempty" doc:"Pass as cursor for the next (older) page; absent on the last page."`
	}
}

func (s *Server) gateways() gateways.Service {
	return gateways.Service{Sealer: s.Sealer}
}

func (s *Server) pluginConfig(ctx context.Context, q db.Querier, org uuid.UUID, slug string, env policy.Environment, credential string, keys []gateways.SnapshotKey) (PluginConfig, error) {
	pc := PluginConfig{Organization: slug, Environment: string(env), ManagerCluster: ManagerCluster,
		GatewayCredential: credential, SnapshotKeys: map[string]string{}}
	if u, err := url.Parse(s.Issuer); err == nil {
		pc.ManagerAuthority = u.Host
	}
	for _, k := range keys {
		pc.SnapshotKeys[k.KID] = base64.StdEncoding.EncodeToString(k.PublicKey)
	}
	settings, err := tokens.GetSettings(ctx, q, org)
	if err != nil {
		return PluginConfig{}, err
	}
	if len(settings.Audiences) > 0 {
		pc.Resource = settings.Audiences[0]
	}
	return pc, nil
}

func orgSlug(ctx context.Context, q db.Querier, p auth.Principal) (string, error) {
	var slug string
	err := q.QueryRow(ctx, `SELECT slug FROM organizations WHERE id = $1`, p.OrganizationID).Scan(&slug)
	return slug, err
}

func (s *Server) registerGateways() {
	tags := []string{"Gateways"}
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "register-gateway", Method: http.MethodPost, Path: "/api/v1/gateways",
		Summary:     "Register a gateway",
		Description: "The response carries the gateway's credential and a ready-to-paste plugin configuration; the credential is never shown again. The organization's snapshot signing key and the environment's upstream key are created if they do not exist yet.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict},
	}, func(ctx context.Context, in *registerGatewayInput) (*registerGatewayOutput, error) {
		p := principal(ctx)
		var out registerGatewayOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			r, err := s.gateways().Register(ctx, tx, p.OrganizationID, in.Body, p.Actor(), s.Now())
			if err != nil {
				return err
			}
			slug, err := orgSlug(ctx, tx, p)
			if err != nil {
				return err
			}
			pc, err := s.pluginConfig(ctx, tx, p.OrganizationID, slug, r.Environment, r.Credential, r.SnapshotKeys)
			out.Body = registeredGateway{Gateway: r.Gateway, Credential: r.Credential, SnapshotKeys: r.SnapshotKeys, UpstreamKey: r.UpstreamKey,
				PluginConfig: pc}
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-gateways", Method: http.MethodGet, Path: "/api/v1/gateways",
		Summary: "List the organization's gateways, revoked ones included", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*gatewaysOutput, error) {
		var out gatewaysOutput
		var err error
		out.Body.Items, err = gateways.List(ctx, s.Pool, principal(ctx).OrganizationID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-gateway", Method: http.MethodGet, Path: "/api/v1/gateways/{id}",
		Summary: "A gateway (never its credential)", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*gatewayOutput, error) {
		var out gatewayOutput
		var err error
		out.Body, err = gateways.Get(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "revoke-gateway", Method: http.MethodDelete, Path: "/api/v1/gateways/{id}",
		Summary:     "Revoke a gateway",
		Description: "Its credential stops authenticating at once; it keeps enforcing its last snapshot until that is older than the maximum staleness, then fails closed.",
		Tags:        tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *idPath) (*gatewayOutput, error) {
		p := principal(ctx)
		var out gatewayOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = gateways.Revoke(ctx, tx, p.OrganizationID, in.ID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "rotate-gateway-credential", Method: http.MethodPost, Path: "/api/v1/gateways/{id}/credential",
		Summary:     "Replace a gateway's credential",
		Description: "The previous credential stops authenticating at once. The new one is shown only in this response.",
		Tags:        tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *idPath) (*rotatedCredentialOutput, error) {
		p := principal(ctx)
		var out rotatedCredentialOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			g, cred, err := s.gateways().RotateCredential(ctx, tx, p.OrganizationID, in.ID, p.Actor(), s.Now())
			if err != nil {
				return err
			}
			keys, err := s.gateways().SnapshotKeys(ctx, tx, p.OrganizationID, s.Now())
			if err != nil {
				return err
			}
			slug, err := orgSlug(ctx, tx, p)
			if err != nil {
				return err
			}
			out.Body.Gateway, out.Body.Credential = g, cred
			out.Body.PluginConfig, err = s.pluginConfig(ctx, tx, p.OrganizationID, slug, g.Environment, cred, keys)
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-snapshot-keys", Method: http.MethodGet, Path: "/api/v1/gateway/snapshot-keys",
		Summary:     "The keys gateways verify snapshots with",
		Description: "The active key and those retired within the overlap. The first key is created on first use.",
		Tags:        tags,
	}, func(ctx context.Context, _ *struct{}) (*snapshotKeysOutput, error) {
		p := principal(ctx)
		var out snapshotKeysOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body.Items, err = s.gateways().EnsureSnapshotKeys(ctx, tx, p.OrganizationID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "rotate-snapshot-key", Method: http.MethodPost, Path: "/api/v1/gateway/snapshot-keys/rotate",
		Summary:     "Replace the snapshot signing key",
		Description: "Snapshots are signed with the new key at once; the old one stays listed for the overlap. Gateways keep enforcing their last snapshot until it is older than the maximum staleness: add the new key to their snapshotKeys before then.",
		Tags:        tags, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, _ *struct{}) (*snapshotKeysOutput, error) {
		p := principal(ctx)
		var out snapshotKeysOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body.Items, err = s.gateways().RotateSnapshotKey(ctx, tx, p.OrganizationID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Administer), huma.Operation{
		OperationID: "set-upstream-key", Method: http.MethodPost, Path: "/api/v1/gateway/upstream-keys",
		Summary:     "Create or replace an environment's upstream signing key",
		Description: "Gateways of the environment sign forwarded requests with it from their next snapshot on. The secret is shown only in this response.",
		Tags:        tags, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *upstreamKeyInput) (*newUpstreamKeyOutput, error) {
		p := principal(ctx)
		var out newUpstreamKeyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = s.gateways().SetUpstreamKey(ctx, tx, p.OrganizationID, in.Body.Environment, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-upstream-keys", Method: http.MethodGet, Path: "/api/v1/gateway/upstream-keys",
		Summary: "The organization's upstream signing keys, without secrets", Tags: tags,
	}, func(ctx context.Context, _ *struct{}) (*upstreamKeysOutput, error) {
		var out upstreamKeysOutput
		var err error
		out.Body.Items, err = gateways.ListUpstreamKeys(ctx, s.Pool, principal(ctx).OrganizationID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-enforcement-calls", Method: http.MethodGet, Path: "/api/v1/enforcement/calls",
		Summary: "Decision records reported by gateways, newest first", Tags: tags,
	}, func(ctx context.Context, in *listCallsInput) (*listCallsOutput, error) {
		f := calls.Filter{Agent: in.Agent, Reason: in.Reason, Since: in.Since, Before: in.Cursor, Limit: in.Limit + 1}
		if in.Allow != "" {
			allow := in.Allow == "true"
			f.Allow = &allow
		}
		items, err := calls.List(ctx, s.Pool, principal(ctx).OrganizationID, f)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		var out listCallsOutput
		if len(items) > in.Limit {
			items = items[:in.Limit]
			next := items[len(items)-1].Time
			out.Body.NextCursor = &next
		}
		out.Body.Items = items
		return &out, nil
	})

	registerGateway(s, huma.Operation{
		OperationID: "report-decisions", Method: http.MethodPost, Path: DecisionsPath,
		Summary:      "Report a gateway's decision records",
		Description:  "Authenticated by the gateway's credential, never an API key. Each record is stored and appended to the ledger once, keyed by its id: a batch may be retried until it is acknowledged. Records must name the gateway's organization (slug) and environment.",
		Tags:         tags,
		MaxBodyBytes: MaxDecisionsBodyBytes, BodyReadTimeout: 5 * time.Second, SkipValidateBody: true,
	}, func(ctx context.Context, in *decisionsInput) (*decisionsOutput, error) {
		gw := gatewayPrincipal(ctx)
		recs, err := calls.Decode(in.RawBody)
		if errors.Is(err, calls.ErrMalformed) {
			return nil, huma.Error400BadRequest(err.Error())
		}
		if err == nil {
			err = calls.Validate(gw, recs)
		}
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		var out decisionsOutput
		err = db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = calls.Ingest(ctx, tx, gw, recs, s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	// Document the raw body as the batch it is.
	body := s.api.OpenAPI().Paths[DecisionsPath].Post.RequestBody
	body.Content["application/json"].Schema = s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[decision.Batch](), true, "")
}
