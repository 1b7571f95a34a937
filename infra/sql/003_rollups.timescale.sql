-- Hourly and daily rollups on TimescaleDB: hierarchical continuous aggregates with real-time
-- aggregation (materialized_only = false), refresh and retention policies. Same names and columns
-- as the plain PostgreSQL tables.
CREATE MATERIALIZED VIEW IF NOT EXISTS ad_clicks_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT ad_id, time_bucket(INTERVAL '1 hour', minute) AS hour, sum(clicks)::bigint AS clicks
FROM ad_clicks_minute
GROUP BY ad_id, time_bucket(INTERVAL '1 hour', minute)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS ad_clicks_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT ad_id, time_bucket(INTERVAL '1 day', hour) AS day, sum(clicks)::bigint AS clicks
FROM ad_clicks_hourly
GROUP BY ad_id, time_bucket(INTERVAL '1 day', hour)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('ad_clicks_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute',
    if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('ad_clicks_daily',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes',
    if_not_exists => TRUE);
SELECT add_retention_policy('ad_clicks_hourly', INTERVAL '400 days', if_not_exists => TRUE);
SELECT add_retention_policy('ad_clicks_daily', INTERVAL '400 days', if_not_exists => TRUE);
