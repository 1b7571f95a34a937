-- Incremental rollup refresh on plain PostgreSQL. The sink marks every UTC hour a batch changed in
-- rollup_dirty, in the same transaction as the minute rows, so a crash can never lose a mark; the
-- rollup job recomputes just those hours and deletes a mark only if nobody re-marked it meanwhile.
CREATE SEQUENCE IF NOT EXISTS rollup_dirty_version;

CREATE TABLE IF NOT EXISTS rollup_dirty (
    hour    timestamptz PRIMARY KEY,
    -- Taken again from the sequence at every mark, so the job can tell a mark it refreshed from a newer one.
    version bigint      NOT NULL DEFAULT nextval('rollup_dirty_version'),
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- Refreshes and retention select rollup rows by time, not by ad.
CREATE INDEX IF NOT EXISTS ad_clicks_hourly_hour ON ad_clicks_hourly (hour);
CREATE INDEX IF NOT EXISTS ad_clicks_daily_day ON ad_clicks_daily (day);

-- Recomputes the hourly rollup for the UTC hours that overlap [p_from, p_to) from the minutes, then the
-- daily rollup for the UTC days that overlap it from the hourly rollup. Serialised by an advisory lock so
-- concurrent refreshes of the same range never collide. Returns the number of hourly rows written.
CREATE OR REPLACE FUNCTION refresh_ad_clicks_rollup_hours(p_from timestamptz, p_to timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    origin    constant timestamptz := timestamptz '2000-01-01 00:00:00+00';
    hour_from timestamptz := date_bin('1 hour', p_from, origin);
    hour_to   timestamptz := date_bin('1 hour', p_to - interval '1 microsecond', origin) + interval '1 hour';
    day_from  timestamptz := date_bin('1 day', p_from, origin);
    day_to    timestamptz := date_bin('1 day', p_to - interval '1 microsecond', origin) + interval '1 day';
    written   bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('refresh_ad_clicks_rollups'));

    DELETE FROM ad_clicks_hourly WHERE hour >= hour_from AND hour < hour_to;
    INSERT INTO ad_clicks_hourly (ad_id, hour, clicks)
    SELECT ad_id, date_bin('1 hour', minute, origin), sum(clicks)
    FROM ad_clicks_minute
    WHERE minute >= hour_from AND minute < hour_to
    GROUP BY 1, 2;
    GET DIAGNOSTICS written = ROW_COUNT;

    DELETE FROM ad_clicks_daily WHERE day >= day_from AND day < day_to;
    INSERT INTO ad_clicks_daily (ad_id, day, clicks)
    SELECT ad_id, date_bin('1 day', hour, origin), sum(clicks)
    FROM ad_clicks_hourly
    WHERE hour >= day_from AND hour < day_to
    GROUP BY 1, 2;
    RETURN written;
END $$;

-- Same contract as before (whole UTC days overlapping [p_from, p_to)), now through the locked hourly refresh.
CREATE OR REPLACE FUNCTION refresh_ad_clicks_rollups(p_from timestamptz, p_to timestamptz)
RETURNS bigint LANGUAGE sql AS $$
    SELECT refresh_ad_clicks_rollup_hours(
        date_bin('1 day', p_from, timestamptz '2000-01-01 00:00:00+00'),
        date_bin('1 day', p_to - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') + interval '1 day')
$$;
