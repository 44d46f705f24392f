package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/bundles"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/policies"
	"github.com/knaight/knaight/shared/policy"
)

type compileBundleInput struct {
	Body struct {
		OrganizationID uuid.UUID   `json:"organizationId" doc:"Must be the caller's organization."`
		Version        string      `json:"version" minLength:"1" maxLength:"100" pattern:"^[A-Za-z0-9][A-Za-z0-9._+-]*$" doc:"Unique per environment; the bundle's manifest revision."`
		Environment    string      `json:"environment,omitempty" enum:"development,staging,production" doc:"The environment the bundle is for. May be left out (as Milestone 3 clients do) when policies are named: it is then their common environment."`
		Artifacts      []string    `json:"artifacts,omitempty" maxItems:"64" doc:"What the bundle was compiled for (recorded)."`
		Policies       []uuid.UUID `json:"policies,omitempty" maxItems:"256" doc:"Ids of the policies to include, all of the environment; empty: every policy of the organization in the environment."`
		Controls       []string    `json:"controls,omitempty" maxItems:"64" doc:"Controls the bundle implements (recorded)."`
	}
}

type publishBundleInput struct {
	Body struct {
		BundleID uuid.UUID `json:"bundleId"`
		SignerID string    `json:"signerId" minLength:"1" maxLength:"200" doc:"Who approved the signature (recorded)."`
	}
}

type bundleIDInput struct {
	Body struct {
		BundleID uuid.UUID `json:"bundleId"`
	}
}

type bundleOutput struct {
	Body bundles.Bundle
}

type revokeBundleOutput struct {
	Body struct {
		bundles.Bundle
		RolledBackTo *bundles.Bundle `json:"rolledBackTo,omitempty" doc:"The bundle made ACTIVE again because the revoked one was active."`
	}
}

type listBundlesInput struct {
	Environment string `query:"environment" enum:"development,staging,production"`
	Status      string `query:"status" enum:"DRAFT,PUBLISHED,ACTIVE,INACTIVE,REVOKED"`
}

type bundlesOutput struct {
	Body struct {
		Items []bundles.Bundle `json:"items"`
	}
}

type tarballOutput struct {
	ContentType string `header:"Content-Type"`
	ETag        string `header:"ETag"`
	Body        []byte
}

type bundleKeyOutput struct {
	Body bundles.VerificationKey
}

func (s *Server) registerBundles() {
	tags := []string{"Policy bundles"}
	keys := bundles.Keys{Sealer: s.Sealer}
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "compile-bundle", Method: http.MethodPost, Path: "/api/v1/enforcement/bundles/compile",
		Summary:     "Compile a DRAFT OPA bundle from MCP policies",
		Description: "An OPA bundle (root knaight): the policies as data.knaight.policies and the Rego library at knaight/policy/policy.rego, revision = version. Every policy must compile with the others.",
		Tags:        tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict},
	}, func(ctx context.Context, in *compileBundleInput) (*bundleOutput, error) {
		p := principal(ctx)
		if err := sameOrganization(ctx, in.Body.OrganizationID); err != nil {
			return nil, s.fail(ctx, err)
		}
		var out bundleOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			env, err := bundleEnvironment(ctx, tx, p.OrganizationID, in.Body.Environment, in.Body.Policies)
			if err != nil {
				return err
			}
			out.Body, err = bundles.Compile(ctx, tx, p.OrganizationID, bundles.CompileRequest{
				Version: in.Body.Version, Environment: env, PolicyIDs: in.Body.Policies,
				Artifacts: in.Body.Artifacts, Controls: in.Body.Controls,
			}, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "publish-bundle", Method: http.MethodPost, Path: "/api/v1/enforcement/bundles/publish",
		Summary:     "Sign a DRAFT bundle",
		Description: "Adds .signatures.json, signed with the organization's bundle signing key (ES256, see signing-key), and makes the bundle PUBLISHED.",
		Tags:        tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *publishBundleInput) (*bundleOutput, error) {
		p := principal(ctx)
		var out bundleOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = keys.Publish(ctx, tx, p.OrganizationID, in.Body.BundleID, in.Body.SignerID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "activate-bundle", Method: http.MethodPost, Path: "/api/v1/enforcement/bundles/activate",
		Summary:     "Make a PUBLISHED or INACTIVE bundle the active one of its environment",
		Description: "The previously active bundle becomes INACTIVE and is remembered as previousActiveId, for rollback.",
		Tags:        tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *bundleIDInput) (*bundleOutput, error) {
		p := principal(ctx)
		var out bundleOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = bundles.Activate(ctx, tx, p.OrganizationID, in.Body.BundleID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Operate), huma.Operation{
		OperationID: "revoke-bundle", Method: http.MethodPost, Path: "/api/v1/enforcement/bundles/revoke",
		Summary:     "Revoke a bundle",
		Description: "Revoking the active bundle rolls back to the bundle that was active before it, unless that one is revoked too.",
		Tags:        tags, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *bundleIDInput) (*revokeBundleOutput, error) {
		p := principal(ctx)
		var out revokeBundleOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body.Bundle, out.Body.RolledBackTo, err = bundles.Revoke(ctx, tx, p.OrganizationID, in.Body.BundleID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "list-bundles", Method: http.MethodGet, Path: "/api/v1/enforcement/bundles",
		Summary: "List policy bundles, newest first", Tags: tags,
	}, func(ctx context.Context, in *listBundlesInput) (*bundlesOutput, error) {
		var out bundlesOutput
		var err error
		out.Body.Items, err = bundles.List(ctx, s.Pool, principal(ctx).OrganizationID, policy.Environment(in.Environment), bundles.Status(in.Status))
		return &out, s.failIf(ctx, err)
	})
	// Registered before {id} so that the literal path wins.
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-bundle-signing-key", Method: http.MethodGet, Path: "/api/v1/enforcement/bundles/signing-key",
		Summary:     "The organization's bundle signing public key",
		Description: "For an OPA sidecar's configuration: keys.<keyId> = {algorithm, key: publicKey}, bundles.<name>.signing.keyid = keyId. The key is created on first use.",
		Tags:        tags,
	}, func(ctx context.Context, _ *struct{}) (*bundleKeyOutput, error) {
		p := principal(ctx)
		var out bundleKeyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) (err error) {
			out.Body, err = keys.Public(ctx, tx, p.OrganizationID, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-bundle", Method: http.MethodGet, Path: "/api/v1/enforcement/bundles/{id}",
		Summary: "A bundle's metadata (not its tarball)", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*bundleOutput, error) {
		var out bundleOutput
		var err error
		out.Body, err = bundles.Get(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		return &out, s.failIf(ctx, err)
	})
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "get-bundle-tarball", Method: http.MethodGet, Path: "/api/v1/enforcement/bundles/{id}/tarball",
		Summary:     "A bundle's tarball, as stored",
		Description: "The OPA bundle (gzipped tar), signed once published, so that it can be verified again. The ETag is its content hash.",
		Tags:        tags, Errors: []int{http.StatusNotFound},
		Responses: map[string]*huma.Response{"200": {Description: "The bundle tarball", Content: map[string]*huma.MediaType{bundles.MediaType: {}}}},
	}, func(ctx context.Context, in *idPath) (*tarballOutput, error) {
		t, err := bundles.Tarball(ctx, s.Pool, principal(ctx).OrganizationID, in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &tarballOutput{ContentType: bundles.MediaType, ETag: `"` + bundles.ContentHash(t) + `"`, Body: t}, nil
	})
}

// bundleEnvironment is the environment a compile request is for: the one it
// names, else the common environment of the policies it names.
func bundleEnvironment(ctx context.Context, tx pgx.Tx, org uuid.UUID, named string, ids []uuid.UUID) (policy.Environment, error) {
	if named != "" {
		return policy.Environment(named), nil
	}
	if len(ids) == 0 {
		return "", fault.Field("environment", "required when no policies are named", nil)
	}
	var env policy.Environment
	for i, id := range ids {
		pol, err := policies.Get(ctx, tx, org, id)
		if errors.Is(err, fault.ErrNotFound) {
			return "", fault.Field(fmt.Sprintf("policies[%d]", i), "no such policy in this organization", id)
		}
		if err != nil {
			return "", err
		}
		if env != "" && pol.Environment != env {
			return "", fault.Field(fmt.Sprintf("policies[%d]", i), fmt.Sprintf("is a %s policy, the others are %s: name the environment, and only its policies", pol.Environment, env), id)
		}
		env = pol.Environment
	}
	return env, nil
}
