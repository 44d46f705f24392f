-- Gateway tokens: per-organization token settings, the manager-generated
-- signing keys (sealed with the KEK), every issued token's record (never the
-- token), agents' OAuth client credentials, and the replay memory of
-- private_key_jwt assertions and of /enforcement/verify signatures.

ALTER TABLE organizations
    ADD COLUMN token_algorithm text NOT NULL DEFAULT 'EdDSA' CHECK (token_algorithm IN ('EdDSA', 'HS256')),
    ADD COLUMN token_default_ttl_seconds integer NOT NULL DEFAULT 900,
    ADD COLUMN token_max_ttl_seconds integer NOT NULL DEFAULT 3600,
    ADD COLUMN token_audiences text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT organizations_token_ttl CHECK (token_default_ttl_seconds BETWEEN 60 AND token_max_ttl_seconds AND token_max_ttl_seconds <= 86400);

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    algorithm       text NOT NULL CHECK (algorithm IN ('EdDSA', 'HS256')),
    public_key      bytea,
    private_sealed  bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    retired_at      timestamptz
);
-- One active key per organization and algorithm.
CREATE UNIQUE INDEX signing_keys_active ON signing_keys (organization_id, algorithm) WHERE retired_at IS NULL;

CREATE TABLE gateway_tokens (
    jti             uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    kid             text NOT NULL REFERENCES signing_keys (kid),
    audience        text NOT NULL,
    scopes          text[] NOT NULL,
    loa             smallint NOT NULL CHECK (loa BETWEEN 1 AND 4),
    artifact_id     text NOT NULL DEFAULT '',
    artifact_type   text NOT NULL DEFAULT '',
    issuer_id       text NOT NULL,
    client_id       text,
    issued_at       timestamptz NOT NULL,
    not_before      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    revoked_by      text,
    FOREIGN KEY (organization_id, agent_id) REFERENCES role_agents (organization_id, id)
);
CREATE INDEX gateway_tokens_live ON gateway_tokens (organization_id, agent_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX gateway_tokens_kid ON gateway_tokens (kid, expires_at);
CREATE INDEX gateway_tokens_revoked ON gateway_tokens (organization_id, expires_at) WHERE revoked_at IS NOT NULL;

-- Agents as OAuth machine clients (client_credentials).
CREATE TABLE oauth_clients (
    client_id       text PRIMARY KEY,
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    auth_method     text NOT NULL CHECK (auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')),
    secret_hash     bytea,
    jwks            jsonb,
    loa             smallint NOT NULL CHECK (loa BETWEEN 1 AND 4),
    scopes          text[] NOT NULL,
    created_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    FOREIGN KEY (organization_id, agent_id) REFERENCES role_agents (organization_id, id),
    CHECK ((auth_method = 'private_key_jwt') = (jwks IS NOT NULL AND secret_hash IS NULL))
);
CREATE INDEX oauth_clients_agent ON oauth_clients (organization_id, agent_id);

-- jti of accepted private_key_jwt client assertions, until they expire.
CREATE TABLE client_assertions (
    client_id  text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- Signatures accepted by POST /api/v1/enforcement/verify, until their
-- window closes: each is accepted once.
CREATE TABLE verify_replays (
    signature  bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
