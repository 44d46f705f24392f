-- Decision ingest writes a ledger event and an enforcement_calls row per
-- gateway decision, and each foreign key below cost a lookup per row (about
-- an eighth of a batch's insert). Both are implied by another constraint:
-- an enforcement call's (organization, gateway) must name a gateway, and a
-- gateway names its organization; every ledger event is appended while its
-- organization's ledger head (which names the organization) is locked.
-- Organizations are never deleted.
ALTER TABLE enforcement_calls DROP CONSTRAINT enforcement_calls_organization_id_fkey;
ALTER TABLE ledger_events DROP CONSTRAINT ledger_events_organization_id_fkey;
