-- Per-minute click counts on TimescaleDB: a hypertable with 1-day chunks, compressed after 2 days,
-- kept 30 days. Same columns and key as the plain PostgreSQL table.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS ad_clicks_minute (
    ad_id      bigint      NOT NULL,
    minute     timestamptz NOT NULL,
    salt       smallint    NOT NULL DEFAULT 0,
    clicks     bigint      NOT NULL CHECK (clicks >= 0),
    final      boolean     NOT NULL DEFAULT false,
    emitted_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ad_id, minute, salt)
);

SELECT create_hypertable('ad_clicks_minute', by_range('minute', INTERVAL '1 day'), if_not_exists => TRUE);

ALTER TABLE ad_clicks_minute SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'ad_id',
    timescaledb.compress_orderby = 'minute, salt'
);
SELECT add_compression_policy('ad_clicks_minute', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_retention_policy('ad_clicks_minute', INTERVAL '30 days', if_not_exists => TRUE);

-- Hypertables create their chunks on insert; these keep the callers identical on both paths.
CREATE OR REPLACE FUNCTION ensure_ad_clicks_minute_partitions(p_from timestamptz, p_to timestamptz)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;

CREATE OR REPLACE FUNCTION drop_ad_clicks_minute_partitions(p_before timestamptz)
RETURNS integer LANGUAGE sql AS $$ SELECT count(*)::integer FROM drop_chunks('ad_clicks_minute', older_than => p_before) $$;
