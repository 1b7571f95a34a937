-- Indexes for the query API on plain PostgreSQL.
-- GET /v1/top ranks every ad over the last few minutes: without an index leading on minute it would scan the whole
-- day's partition (the primary key leads on ad_id).
CREATE INDEX IF NOT EXISTS ad_clicks_minute_minute_idx ON ad_clicks_minute (minute);

-- An advertiser's week by hour reads ~100 rows for each of its ads, spread over the whole heap (the refresh job
-- writes rows in hash order): covering indexes turn that into index-only range scans, one per ad.
CREATE INDEX IF NOT EXISTS ad_clicks_hourly_ad_hour_clicks ON ad_clicks_hourly (ad_id, hour) INCLUDE (clicks);
CREATE INDEX IF NOT EXISTS ad_clicks_daily_ad_day_clicks ON ad_clicks_daily (ad_id, day) INCLUDE (clicks);
