-- The manager's core schema: organizations and their admin API keys, role
-- templates and role agents with their ANS registrations and HMAC keys,
-- trust signals, sources and thresholds, MCP policies, and the hash-linked
-- audit ledger. Every tenant table carries organization_id, and every query
-- of tenant data filters on it.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    slug        text NOT NULL UNIQUE,
    ans_domain  text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id              text PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
    secret_hash     bytea NOT NULL,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);
CREATE INDEX api_keys_org ON api_keys (organization_id, created_at);

CREATE TABLE role_templates (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, id)
);

CREATE TABLE role_agents (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    role_template_id  uuid NOT NULL,
    name              text NOT NULL,
    description       text NOT NULL DEFAULT '',
    environment       text NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    trust_score       double precision NOT NULL DEFAULT 0,
    trust_level       smallint NOT NULL DEFAULT 1,
    trust_computed_at timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, role_template_id) REFERENCES role_templates (organization_id, id)
);

-- The built-in ANS registry: one registration per agent.
CREATE TABLE ans_registrations (
    agent_id        uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    name            text NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('PENDING', 'ACTIVE', 'SUSPENDED', 'DEPRECATED', 'REVOKED', 'EXPIRED')),
    status_reason   text NOT NULL DEFAULT '',
    registered_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    FOREIGN KEY (organization_id, agent_id) REFERENCES role_agents (organization_id, id)
);

-- HMAC request-signing keys. The secret is sealed with the key-encryption
-- key; expires_at is set when a rotation starts the overlap of the old key.
CREATE TABLE agent_hmac_keys (
    kid             text PRIMARY KEY,
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    secret_sealed   bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    FOREIGN KEY (organization_id, agent_id) REFERENCES role_agents (organization_id, id)
);
CREATE INDEX agent_hmac_keys_agent ON agent_hmac_keys (organization_id, agent_id, created_at);

-- Trust level thresholds: one row per organization (role_template_id NULL)
-- and optional overrides per role template.
CREATE TABLE role_trust_thresholds (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    role_template_id uuid,
    thresholds       jsonb NOT NULL,
    updated_at       timestamptz NOT NULL,
    FOREIGN KEY (organization_id, role_template_id) REFERENCES role_templates (organization_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX role_trust_thresholds_scope
    ON role_trust_thresholds (organization_id, coalesce(role_template_id, '00000000-0000-0000-0000-000000000000'));

-- External sources allowed to push signals through the signed webhook.
CREATE TABLE trust_sources (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    kinds           text[] NOT NULL,
    secret_sealed   bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    UNIQUE (organization_id, name)
);

CREATE TABLE signals (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    source          text NOT NULL,
    source_id       uuid REFERENCES trust_sources (id),
    kind            text NOT NULL,
    value           double precision NOT NULL,
    observed_at     timestamptz NOT NULL,
    expires_at      timestamptz,
    evidence        jsonb NOT NULL DEFAULT '{}',
    recorded_by     text NOT NULL,
    created_at      timestamptz NOT NULL,
    FOREIGN KEY (organization_id, agent_id) REFERENCES role_agents (organization_id, id)
);
CREATE INDEX signals_agent ON signals (organization_id, agent_id, observed_at);

-- Signatures of accepted webhook deliveries, kept for the replay window.
CREATE TABLE webhook_deliveries (
    source_id    uuid NOT NULL REFERENCES trust_sources (id),
    signature    bytea NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (source_id, signature)
);

CREATE TABLE mcp_policies (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL,
    role_template_id  uuid NOT NULL,
    environment       text NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    min_trust_level   smallint NOT NULL CHECK (min_trust_level BETWEEN 1 AND 5),
    min_loa           smallint NOT NULL CHECK (min_loa BETWEEN 1 AND 4),
    required_scopes   text[] NOT NULL,
    allowed_endpoints text[] NOT NULL,
    constraints       jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (organization_id, role_template_id, environment),
    FOREIGN KEY (organization_id, role_template_id) REFERENCES role_templates (organization_id, id)
);

-- The audit ledger: one hash chain per organization. ledger_heads holds the
-- chain's tip; appending locks it, so concurrent writers queue instead of
-- forking the chain.
CREATE TABLE ledger_heads (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    seq             bigint NOT NULL,
    hash            bytea NOT NULL
);

CREATE TABLE ledger_events (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    seq             bigint NOT NULL,
    event_type      text NOT NULL,
    actor           text NOT NULL,
    subject_type    text NOT NULL,
    subject_id      text NOT NULL,
    details         text NOT NULL,
    created_at      timestamptz NOT NULL,
    prev_hash       bytea NOT NULL,
    hash            bytea NOT NULL,
    UNIQUE (organization_id, seq)
);
CREATE INDEX ledger_events_type ON ledger_events (organization_id, event_type, seq);
CREATE INDEX ledger_events_subject ON ledger_events (organization_id, subject_id, seq);
