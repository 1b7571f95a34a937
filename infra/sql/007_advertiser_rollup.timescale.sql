-- Clicks per advertiser and hour on TimescaleDB: a hierarchical continuous aggregate over ad_clicks_hourly joined
-- with ads (joins in hierarchical continuous aggregates need TimescaleDB 2.11 or newer), real-time like the others.
-- Same name and columns as the plain PostgreSQL table.
CREATE MATERIALIZED VIEW IF NOT EXISTS advertiser_clicks_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT a.advertiser_id, time_bucket(INTERVAL '1 hour', h.hour) AS hour, sum(h.clicks)::bigint AS clicks
FROM ad_clicks_hourly h
JOIN ads a ON a.ad_id = h.ad_id
GROUP BY a.advertiser_id, time_bucket(INTERVAL '1 hour', h.hour)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('advertiser_clicks_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute',
    if_not_exists => TRUE);
SELECT add_retention_policy('advertiser_clicks_hourly', INTERVAL '400 days', if_not_exists => TRUE);
