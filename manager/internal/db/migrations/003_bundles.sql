-- OPA policy bundles (the original design's PolicyBundle): compiled from the
-- organization's MCP policies, signed with the organization's bundle signing
-- key (ES256, sealed with the KEK), activated per environment with the
-- previous active bundle remembered for rollback.

CREATE TABLE bundle_signing_keys (
    kid             text PRIMARY KEY,
    organization_id uuid NOT NULL UNIQUE REFERENCES organizations (id),
    algorithm       text NOT NULL CHECK (algorithm IN ('ES256')),
    public_pem      text NOT NULL,
    private_sealed  bytea NOT NULL,
    created_at      timestamptz NOT NULL
);

CREATE TABLE policy_bundles (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    environment        text NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    version            text NOT NULL,
    status             text NOT NULL CHECK (status IN ('DRAFT', 'PUBLISHED', 'ACTIVE', 'INACTIVE', 'REVOKED')),
    revision           text NOT NULL,
    content_hash       text NOT NULL,
    tarball            bytea NOT NULL,
    policy_ids         uuid[] NOT NULL,
    artifacts          text[] NOT NULL,
    controls           text[] NOT NULL,
    signer_id          text,
    signing_kid        text REFERENCES bundle_signing_keys (kid),
    signed_at          timestamptz,
    published_at       timestamptz,
    activated_at       timestamptz,
    revoked_at         timestamptz,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL,
    previous_active_id uuid,
    UNIQUE (organization_id, environment, version),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, previous_active_id) REFERENCES policy_bundles (organization_id, id)
);
-- One active bundle per organization and environment.
CREATE UNIQUE INDEX policy_bundles_active ON policy_bundles (organization_id, environment) WHERE status = 'ACTIVE';
CREATE INDEX policy_bundles_list ON policy_bundles (organization_id, created_at DESC);
