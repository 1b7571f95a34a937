-- Advertisers, their ads, and the reconciliation reports. Shared by plain PostgreSQL and TimescaleDB.
CREATE TABLE IF NOT EXISTS advertisers (
    advertiser_id bigint PRIMARY KEY,
    name          text        NOT NULL,
    -- SHA-256 of the advertiser's API key; the key itself is never stored.
    api_key_hash  bytea       UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ads (
    ad_id         bigint PRIMARY KEY,
    advertiser_id bigint      NOT NULL REFERENCES advertisers (advertiser_id),
    redirect_url  text        NOT NULL CHECK (redirect_url ~ '^https?://[^\s/$.?#].[^\s]*$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE INDEX IF NOT EXISTS ads_advertiser_id ON ads (advertiser_id);

CREATE TABLE IF NOT EXISTS reconciliation_runs (
    run_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    range_from          timestamptz NOT NULL,
    range_to            timestamptz NOT NULL,
    ad_id               bigint,
    dry_run             boolean     NOT NULL DEFAULT false,
    raw_clicks          bigint,
    db_clicks           bigint,
    windows_checked     bigint,
    windows_corrected   bigint,
    status              text        NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    report              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);
CREATE INDEX IF NOT EXISTS reconciliation_runs_started_at ON reconciliation_runs (started_at DESC);
