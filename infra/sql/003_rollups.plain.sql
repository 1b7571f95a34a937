-- Hourly and daily rollups on plain PostgreSQL: tables kept fresh by refresh_ad_clicks_rollups(),
-- which the rollup refresh job calls for the ranges the sink or the reconciler touched.
CREATE TABLE IF NOT EXISTS ad_clicks_hourly (
    ad_id  bigint      NOT NULL,
    hour   timestamptz NOT NULL,
    clicks bigint      NOT NULL,
    PRIMARY KEY (ad_id, hour)
);

CREATE TABLE IF NOT EXISTS ad_clicks_daily (
    ad_id  bigint      NOT NULL,
    day    timestamptz NOT NULL,
    clicks bigint      NOT NULL,
    PRIMARY KEY (ad_id, day)
);

-- Recomputes both rollups for the whole UTC days that overlap [p_from, p_to), so corrections and late
-- counts are picked up. Idempotent; returns the number of hourly rows written.
CREATE OR REPLACE FUNCTION refresh_ad_clicks_rollups(p_from timestamptz, p_to timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    day_from timestamptz := date_bin('1 day', p_from, timestamptz '2000-01-01 00:00:00+00');
    day_to   timestamptz := date_bin('1 day', p_to - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') + interval '1 day';
    written  bigint;
BEGIN
    DELETE FROM ad_clicks_hourly WHERE hour >= day_from AND hour < day_to;
    INSERT INTO ad_clicks_hourly (ad_id, hour, clicks)
    SELECT ad_id, date_bin('1 hour', minute, timestamptz '2000-01-01 00:00:00+00'), sum(clicks)
    FROM ad_clicks_minute
    WHERE minute >= day_from AND minute < day_to
    GROUP BY 1, 2;
    GET DIAGNOSTICS written = ROW_COUNT;

    DELETE FROM ad_clicks_daily WHERE day >= day_from AND day < day_to;
    INSERT INTO ad_clicks_daily (ad_id, day, clicks)
    SELECT ad_id, date_bin('1 day', hour, timestamptz '2000-01-01 00:00:00+00'), sum(clicks)
    FROM ad_clicks_hourly
    WHERE hour >= day_from AND hour < day_to
    GROUP BY 1, 2;
    RETURN written;
END $$;
