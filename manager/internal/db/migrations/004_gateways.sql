-- Gateways (the Envoy filters enforcing an organization's environment):
-- their credentials, the keys the manager signs snapshots and upstream
-- requests with, the decision records they report (the original design's
-- EnforcementCall), and the per-organization snapshot version.
--
-- The snapshot version is kept by triggers, not by Go code: every change
-- that can change what a gateway enforces bumps it, from any replica and
-- any code path (the sweep included), in the transaction that makes the
-- change, and tells every replica over NOTIFY knaight_snapshot so that long
-- polls held anywhere wake when the change commits.

CREATE TABLE gateways (
    id                    uuid PRIMARY KEY,
    organization_id       uuid NOT NULL REFERENCES organizations (id),
    environment           text NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    name                  text NOT NULL,
    -- SHA-256 of the credential's 32-byte secret; the secret is never stored.
    credential_hash       bytea NOT NULL,
    -- The AES-256 key snapshots are sealed to this gateway with (derived
    -- from the secret), sealed with the KEK and bound to the row.
    seal_key_sealed       bytea NOT NULL,
    created_at            timestamptz NOT NULL,
    credential_rotated_at timestamptz,
    revoked_at            timestamptz,
    last_seen_at          timestamptz,
    UNIQUE (organization_id, id)
);
-- Names are unique among an organization's live gateways.
CREATE UNIQUE INDEX gateways_name ON gateways (organization_id, name) WHERE revoked_at IS NULL;

-- Ed25519 keys that sign snapshots, one active per organization. A retired
-- key stays listed for an overlap, so gateways configured with both keep
-- working through a rotation.
CREATE TABLE snapshot_signing_keys (
    kid             text PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    public_key      bytea NOT NULL,
    private_sealed  bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    retired_at      timestamptz
);
CREATE UNIQUE INDEX snapshot_signing_keys_active ON snapshot_signing_keys (organization_id) WHERE retired_at IS NULL;

-- HMAC-SHA256 keys gateways sign forwarded requests with, one active per
-- organization and environment; upstream MCP servers verify with them.
CREATE TABLE upstream_keys (
    kid             text PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    environment     text NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    secret_sealed   bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    retired_at      timestamptz
);
CREATE UNIQUE INDEX upstream_keys_active ON upstream_keys (organization_id, environment) WHERE retired_at IS NULL;

-- Decision records reported by gateways, one row per record; the primary
-- key makes ingest idempotent on the id the filter made.
CREATE TABLE enforcement_calls (
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    id               text NOT NULL,
    gateway_id       uuid NOT NULL,
    environment      text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('decision', 'gap')),
    decided_at       timestamptz NOT NULL,
    agent            text NOT NULL,
    token_id         text NOT NULL,
    http_method      text NOT NULL,
    path             text NOT NULL,
    mcp_method       text NOT NULL,
    name             text NOT NULL,
    allow            boolean NOT NULL,
    reason           text NOT NULL,
    message          text NOT NULL,
    status           integer NOT NULL,
    trust_level      text NOT NULL,
    trust_score      double precision NOT NULL,
    policy_id        text NOT NULL,
    bundle_revision  text NOT NULL,
    snapshot_version bigint NOT NULL,
    latency_us       bigint NOT NULL,
    lost             bigint NOT NULL,
    lost_from        timestamptz,
    lost_to          timestamptz,
    received_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateways (organization_id, id)
);
CREATE INDEX enforcement_calls_time ON enforcement_calls (organization_id, decided_at DESC, id);
CREATE INDEX enforcement_calls_agent ON enforcement_calls (organization_id, agent, decided_at DESC);

-- The snapshot version of each organization.
CREATE TABLE snapshot_versions (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    version         bigint NOT NULL,
    -- The transaction that last bumped the version, so that a transaction
    -- bumps it once however many rows it changes.
    bumped_by       xid8
);
INSERT INTO snapshot_versions (organization_id, version) SELECT id, 1 FROM organizations;

-- snapshot_bump moves the organization's snapshot version once per
-- transaction and notifies the replicas. It locks the ledger head first:
-- every writer of an organization takes the ledger head, so taking it
-- before the version row keeps one lock order and no deadlock.
CREATE FUNCTION snapshot_bump(org uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM snapshot_versions WHERE organization_id = org AND bumped_by = pg_current_xact_id()) THEN
        RETURN;
    END IF;
    PERFORM 1 FROM ledger_heads WHERE organization_id = org FOR UPDATE;
    UPDATE snapshot_versions SET version = version + 1, bumped_by = pg_current_xact_id() WHERE organization_id = org;
    -- NOTIFY is delivered at commit, once per distinct payload.
    PERFORM pg_notify('knaight_snapshot', org::text);
END
$$;

-- snapshot_changed is the trigger of tenant tables (organization_id).
CREATE FUNCTION snapshot_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM snapshot_bump(OLD.organization_id);
    ELSE
        PERFORM snapshot_bump(NEW.organization_id);
    END IF;
    RETURN NULL;
END
$$;

-- organization_snapshot_changed is the trigger of organizations (id).
CREATE FUNCTION organization_snapshot_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO snapshot_versions (organization_id, version) VALUES (NEW.id, 1);
    ELSE
        PERFORM snapshot_bump(NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER organizations_snapshot_created AFTER INSERT ON organizations
    FOR EACH ROW EXECUTE FUNCTION organization_snapshot_changed();
-- Token settings: the issuer's audiences and algorithm, the slug.
CREATE TRIGGER organizations_snapshot AFTER UPDATE ON organizations
    FOR EACH ROW WHEN (OLD.slug IS DISTINCT FROM NEW.slug
        OR OLD.token_algorithm IS DISTINCT FROM NEW.token_algorithm
        OR OLD.token_audiences IS DISTINCT FROM NEW.token_audiences)
    EXECUTE FUNCTION organization_snapshot_changed();

-- Agents: existence, role template, environment, trust.
CREATE TRIGGER role_agents_snapshot_rows AFTER INSERT OR DELETE ON role_agents
    FOR EACH ROW EXECUTE FUNCTION snapshot_changed();
CREATE TRIGGER role_agents_snapshot AFTER UPDATE ON role_agents
    FOR EACH ROW WHEN (OLD.trust_level IS DISTINCT FROM NEW.trust_level
        OR OLD.trust_score IS DISTINCT FROM NEW.trust_score
        OR OLD.role_template_id IS DISTINCT FROM NEW.role_template_id
        OR OLD.environment IS DISTINCT FROM NEW.environment)
    EXECUTE FUNCTION snapshot_changed();

-- Role template names: policies name role templates.
CREATE TRIGGER role_templates_snapshot AFTER UPDATE ON role_templates
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION snapshot_changed();

-- ANS registrations: name and status.
CREATE TRIGGER ans_registrations_snapshot_rows AFTER INSERT OR DELETE ON ans_registrations
    FOR EACH ROW EXECUTE FUNCTION snapshot_changed();
CREATE TRIGGER ans_registrations_snapshot AFTER UPDATE ON ans_registrations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION snapshot_changed();

-- Agents' HMAC keys: new keys, and the expiry a rotation sets.
CREATE TRIGGER agent_hmac_keys_snapshot_rows AFTER INSERT OR DELETE ON agent_hmac_keys
    FOR EACH ROW EXECUTE FUNCTION snapshot_changed();
CREATE TRIGGER agent_hmac_keys_snapshot AFTER UPDATE ON agent_hmac_keys
    FOR EACH ROW WHEN (OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.secret_sealed IS DISTINCT FROM NEW.secret_sealed)
    EXECUTE FUNCTION snapshot_changed();

-- Token revocation. Issuing a token changes no snapshot, so INSERT does
-- not bump.
CREATE TRIGGER gateway_tokens_snapshot AFTER UPDATE ON gateway_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION snapshot_changed();

-- Token signing keys: creation and retirement.
CREATE TRIGGER signing_keys_snapshot_rows AFTER INSERT OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION snapshot_changed();
CREATE TRIGGER signing_keys_snapshot AFTER UPDATE ON signing_keys
    FOR EACH ROW WHEN (OLD.retired_at IS DISTINCT FROM NEW.retired_at)
    EXECUTE FUNCTION snapshot_changed();

-- Bundles: only what enters or leaves ACTIVE.
CREATE TRIGGER policy_bundles_snapshot_insert AFTER INSERT ON policy_bundles
    FOR EACH ROW WHEN (NEW.status = 'ACTIVE')
    EXECUTE FUNCTION snapshot_changed();
CREATE TRIGGER policy_bundles_snapshot_delete AFTER DELETE ON policy_bundles
    FOR EACH ROW WHEN (OLD.status = 'ACTIVE')
    EXECUTE FUNCTION snapshot_changed();
CREATE TRIGGER policy_bundles_snapshot AFTER UPDATE ON policy_bundles
    FOR EACH ROW WHEN ((OLD.status IS DISTINCT FROM NEW.status AND (OLD.status = 'ACTIVE' OR NEW.status = 'ACTIVE'))
        OR (NEW.status = 'ACTIVE' AND OLD.content_hash IS DISTINCT FROM NEW.content_hash))
    EXECUTE FUNCTION snapshot_changed();

-- Snapshot and upstream keys.
CREATE TRIGGER snapshot_signing_keys_snapshot AFTER INSERT OR UPDATE OR DELETE ON snapshot_signing_keys
    FOR EACH ROW EXECUTE FUNCTION snapshot_changed();
CREATE TRIGGER upstream_keys_snapshot AFTER INSERT OR UPDATE OR DELETE ON upstream_keys
    FOR EACH ROW EXECUTE FUNCTION snapshot_changed();
