-- Refresh of the rollups for some ads only: the reconciler corrects a few hundred ads of an hour that
-- holds a hundred thousand, and recomputing the whole hour for them would cost the whole hour's minutes.
-- Same bounds and the same advisory lock as refresh_ad_clicks_rollup_hours, so the two never interleave.
CREATE OR REPLACE FUNCTION refresh_ad_clicks_rollups_for_ads(p_ad_ids bigint[], p_from timestamptz, p_to timestamptz)
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

    DELETE FROM ad_clicks_hourly WHERE ad_id = ANY (p_ad_ids) AND hour >= hour_from AND hour < hour_to;
    INSERT INTO ad_clicks_hourly (ad_id, hour, clicks)
    SELECT ad_id, date_bin('1 hour', minute, origin), sum(clicks)
    FROM ad_clicks_minute
    WHERE ad_id = ANY (p_ad_ids) AND minute >= hour_from AND minute < hour_to
    GROUP BY 1, 2;
    GET DIAGNOSTICS written = ROW_COUNT;

    DELETE FROM ad_clicks_daily WHERE ad_id = ANY (p_ad_ids) AND day >= day_from AND day < day_to;
    INSERT INTO ad_clicks_daily (ad_id, day, clicks)
    SELECT ad_id, date_bin('1 day', hour, origin), sum(clicks)
    FROM ad_clicks_hourly
    WHERE ad_id = ANY (p_ad_ids) AND hour >= day_from AND hour < day_to
    GROUP BY 1, 2;
    RETURN written;
END $$;
