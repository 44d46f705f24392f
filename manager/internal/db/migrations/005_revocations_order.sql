-- The snapshot lists an organization's live revocations ordered by expiry
-- and token id. With the token id in the index PostgreSQL reads them in that
-- order instead of sorting them: for 100,000 revocations the sort spilled to
-- disk and took four times as long as the read.
CREATE INDEX gateway_tokens_revoked_order ON gateway_tokens (organization_id, expires_at, jti) WHERE revoked_at IS NOT NULL;
DROP INDEX gateway_tokens_revoked;
