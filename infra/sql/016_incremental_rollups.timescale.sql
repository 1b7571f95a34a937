-- Marks the rollups dirty for a change of minutes (see 015_rollup_dirty_ads.sql): the UTC hours of p_hours, one mark
-- each, in hour order so concurrent writers lock them in the same order. p_ad_ids (the ad of each entry of p_hours) is
-- not needed here: TimescaleDB's continuous aggregates refresh whole hours.
CREATE OR REPLACE FUNCTION mark_rollups_dirty(p_hours timestamptz[], p_ad_ids bigint[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rollup_dirty AS d (hour)
    SELECT DISTINCT hour FROM unnest(p_hours) AS m (hour) ORDER BY hour
    ON CONFLICT (hour) DO UPDATE SET version = EXCLUDED.version, marked_at = now()
$$;
